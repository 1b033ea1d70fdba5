from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import ValidationError
from syncapp.management.lookups import tenant_or_error
from syncapp.management.progress import add_progress_argument, progress_bar
from syncapp.services.contacts_csv import contacts_csv_check, contacts_export_csv, contacts_import_csv


class Command(BaseCommand):
    help = (
        "Import or export a tenant's contacts as CSV with the header "
        "email,first_name,last_name,phone,job_title,pronouns. An import reports each rejected row on stderr "
        "and exits 1 if any was rejected."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, help="What to do (ACTION -h for its options).")
        imports = actions.add_parser("import", help="Create or update contacts (matched by email) from a CSV file.")
        imports.add_argument("--tenant", required=True, help="Slug of the tenant whose contacts these are.")
        imports.add_argument("file", help="The UTF-8 CSV file to import.")
        add_progress_argument(imports)
        exports = actions.add_parser("export", help="Write live contacts as CSV to FILE, or to stdout.")
        exports.add_argument("--tenant", required=True, help="Slug of the tenant whose contacts to export.")
        exports.add_argument("file", nargs="?", help="The CSV file to write (replaced if it exists); default stdout.")

    def handle(self, *args, action, tenant, file, **options):
        tenant = tenant_or_error(tenant)
        if action == "import":
            self._import(tenant, file, progress=options["progress"])
        elif file:
            try:
                with open(file, "w", newline="", encoding="utf-8") as stream:
                    count = contacts_export_csv(tenant=tenant, stream=stream)
            except OSError as exc:
                raise CommandError(f"Cannot write {file}: {exc.strerror}.") from exc
            self.stderr.write(f"Exported {count} contacts to {file}.")
        else:
            contacts_export_csv(tenant=tenant, stream=self.stdout)

    def _import(self, tenant, file, *, progress):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        with stream:
            try:
                # A first pass reads the whole file, so a bad byte or header stops it before any row.
                rows = contacts_csv_check(stream=stream)
                stream.seek(0)
                with progress_bar(self, enabled=progress, unit="rows", total=rows) as advance:
                    report = contacts_import_csv(tenant=tenant, stream=stream, progress=advance)
            except ValidationError as exc:
                raise CommandError(f"{file}: {exc}") from exc
        for line, reason in report.errors:
            self.stderr.write(f"{file}:{line}: {reason}")
        self.stdout.write(
            f"Imported {file}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.errors)} rejected."
        )
        if report.errors:
            raise CommandError(f"{file}: {len(report.errors)} rejected, each listed above with its line.")
