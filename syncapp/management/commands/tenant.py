from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import ValidationError
from syncapp.services.tenants import tenant_create


class Command(BaseCommand):
    help = (
        "Manage tenants: `tenant create SLUG [--name NAME] [--user NAME [--password PW] "
        "[--add-existing-user] [--reset-password]]`."
    )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, help="What to do (ACTION -h for its options).")
        create = actions.add_parser("create", help="Create a tenant, optionally with a member who can log in.")
        create.add_argument("slug", help="Short unique name of the tenant, used by the other commands.")
        create.add_argument("--name", default="", help="Display name (default: the slug).")
        create.add_argument("--user", default="", help="Username of a member (created if missing).")
        create.add_argument("--password", default="", help="Password for a new --user (checked by the validators).")
        create.add_argument(
            "--add-existing-user",
            action="store_true",
            help="--user already exists (maybe in another tenant): make them a member of this tenant too.",
        )
        create.add_argument(
            "--reset-password",
            action="store_true",
            help="--user already exists: replace their password with --password.",
        )

    def handle(self, *args, action, **options):
        if options["password"] and not options["user"]:
            raise CommandError("--password needs --user.")
        if options["add_existing_user"] and not options["user"]:
            raise CommandError("--add-existing-user needs --user.")
        if options["reset_password"] and not options["password"]:
            raise CommandError("--reset-password needs --password.")
        try:
            tenant = tenant_create(
                slug=options["slug"],
                name=options["name"],
                username=options["user"],
                password=options["password"],
                add_existing_user=options["add_existing_user"],
                reset_password=options["reset_password"],
            )
        except ValidationError as exc:
            raise CommandError(str(exc)) from exc
        member = f" with member {options['user']}" if options["user"] else ""
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} (id {tenant.pk}){member}."))
