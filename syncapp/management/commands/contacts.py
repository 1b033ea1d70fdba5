import io
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import ValidationError
from syncapp.models import Tenant
from syncapp.services.contacts_csv import contacts_export_csv, contacts_import_csv


class Command(BaseCommand):
    help = (
        "Import or export a tenant's contacts as CSV with the header "
        "email,first_name,last_name,phone,job_title,pronouns."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        imports = actions.add_parser("import", help="Create or update contacts (matched by email) from a CSV file.")
        imports.add_argument("--tenant", required=True)
        imports.add_argument("file")
        exports = actions.add_parser("export", help="Write live contacts as CSV to FILE, or to stdout.")
        exports.add_argument("--tenant", required=True)
        exports.add_argument("file", nargs="?")

    def handle(self, *args, action, tenant, file, **options):
        try:
            tenant = Tenant.objects.get(slug=tenant)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant '{tenant}'.") from None
        if action == "import":
            self._import(tenant, file)
        elif file:
            with open(file, "w", newline="", encoding="utf-8") as stream:
                count = contacts_export_csv(tenant=tenant, stream=stream)
            self.stderr.write(f"Exported {count} contacts to {file}.")
        else:
            contacts_export_csv(tenant=tenant, stream=self.stdout)

    def _import(self, tenant, file):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            # Decode the whole file first, so a bad byte anywhere stops the import before any row.
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CommandError(f"{file} is not UTF-8 text (byte {exc.start}: {exc.reason}).") from exc
        try:
            report = contacts_import_csv(tenant=tenant, stream=io.StringIO(text, newline=""))
        except ValidationError as exc:
            raise CommandError(f"{file}: {exc}") from exc
        for line, reason in report.errors:
            self.stderr.write(f"{file}:{line}: {reason}")
        self.stdout.write(
            f"Imported {file}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.errors)} rejected."
        )
        if report.errors:
            sys.exit(1)
