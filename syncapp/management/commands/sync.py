from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import SyncError
from syncapp.models import CrmConnection, SyncRun
from syncapp.services.sync import connection_sync


class Command(BaseCommand):
    help = "Sync one connection now and print the run's counts; --dry-run prints the plan and writes nothing."

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True, help="Connection id (see `connection list`).")
        parser.add_argument("--full", action="store_true", help="List every CRM record instead of recent changes.")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, connection, full, dry_run, **options):
        try:
            target = CrmConnection.objects.get(pk=connection)
        except CrmConnection.DoesNotExist:
            raise CommandError(f"No connection {connection}.") from None
        try:
            run = connection_sync(connection=target, trigger=SyncRun.Trigger.MANUAL, full=full, dry_run=dry_run)
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        for pair in run.plan:
            self.stdout.write(
                f"plan: contact {pair.contact_id or '(new)'} <-> record {pair.remote_id or '(new)'}: "
                f"app {pair.local_op or '-'} {pair.local_values or ''} / crm {pair.remote_op or '-'} "
                f"{pair.remote_values or ''}"
            )
        self.stdout.write(
            f"{'Planned' if dry_run else 'Ran'} {run.trigger} sync {run.pk}: {run.status}; created {run.created}, "
            f"updated {run.updated}, deleted {run.deleted}, unchanged {run.unchanged}, conflicts {run.conflicts}, "
            f"errors {run.errors}, excluded {run.excluded}, API calls {run.api_calls}."
        )
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"Sync failed: {run.error}")
