from django.core.management.base import BaseCommand

from syncapp.management.lookups import connection_or_error
from syncapp.models import WebhookEvent
from syncapp.services.webhooks import webhook_events_retry


class Command(BaseCommand):
    help = "Put stored webhook events of a status (failed by default) back to be processed, with a fresh budget."

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            default=WebhookEvent.Status.FAILED,
            choices=[choice.value for choice in WebhookEvent.Status],
            help="Replay the events with this status (default: failed).",
        )
        parser.add_argument(
            "--connection", type=int, default=None, help="Only this connection's events (see `connection list`)."
        )

    def handle(self, *args, status, connection, **options):
        target = None
        if connection is not None:
            target = connection_or_error(connection)
        count = webhook_events_retry(status=status, connection=target)
        scope = f" of connection {target.pk}" if target is not None else ""
        noun = "event" if count == 1 else "events"
        self.stdout.write(self.style.SUCCESS(f"Replayed {count} {status} webhook {noun}{scope}."))
