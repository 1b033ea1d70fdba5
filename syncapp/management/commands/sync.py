from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import SyncError
from syncapp.management.lookups import connection_or_error
from syncapp.management.progress import add_progress_argument, progress_bar
from syncapp.models import SyncRun
from syncapp.services.sync import connection_sync


class Command(BaseCommand):
    help = (
        "Sync one connection now in the foreground, recorded as a manual run, and print its counts: by default "
        "an incremental sync from the saved cursor, then the outbox. --dry-run prints the plan and writes "
        "nothing. Exits 1 if the run failed or could not start (paused, disconnected, waiting for the CRM's "
        "daily limit, or another sync holds the connection)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True, help="Connection id (see `connection list`).")
        parser.add_argument("--full", action="store_true", help="List every CRM record instead of recent changes.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Plan the run and print a plan: line per pair with writes; change no contact or CRM record.",
        )
        add_progress_argument(parser)

    def handle(self, *args, connection, full, dry_run, progress, **options):
        target = connection_or_error(connection)
        try:
            with progress_bar(self, enabled=progress, unit="records") as advance:
                run = connection_sync(
                    connection=target, trigger=SyncRun.Trigger.MANUAL, full=full, dry_run=dry_run, progress=advance
                )
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
            f"errors {run.errors}, not written yet {run.pending}, excluded {run.excluded}, API calls {run.api_calls}."
        )
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"Sync failed: {run.error}")
