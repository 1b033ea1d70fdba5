from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import SyncError
from syncapp.management.lookups import connection_or_error
from syncapp.models import CrmConnection
from syncapp.services.pronouns import connection_setup_pronouns


class Command(BaseCommand):
    help = "Make sure a connection's CRM has the pronouns contact field (creates it once; safe to repeat)."

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True, help="Connection id (see `connection list`).")
        choice = parser.add_mutually_exclusive_group()
        choice.add_argument("--map-existing", default="", metavar="KEY", help="Use this existing field as pronouns.")
        choice.add_argument(
            "--create", action="store_true", help="Create 'pronouns' even if another field is labelled so."
        )

    def handle(self, *args, connection, map_existing, create, **options):
        target = connection_or_error(connection)
        try:
            setup = connection_setup_pronouns(connection=target, map_existing=map_existing, create=create)
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        if setup.state != CrmConnection.PronounsState.CONFIGURED:
            raise CommandError(setup.message)
        self.stdout.write(self.style.SUCCESS(setup.message))
