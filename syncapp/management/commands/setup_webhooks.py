from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import SyncError
from syncapp.management.lookups import connection_or_error
from syncapp.services.webhook_setup import connection_setup_webhooks, webhook_subscription_url


class Command(BaseCommand):
    help = (
        "Register a connection's webhooks in its CRM (Pipedrive: person create, change, delete) with new "
        "Basic credentials; replaces the ones registered before for the same URL, so it is safe to repeat."
    )

    def add_arguments(self, parser):
        parser.add_argument("--connection", type=int, required=True, help="Connection id (see `connection list`).")
        parser.add_argument(
            "--base-url",
            required=True,
            help="Public http(s) URL of this app as the CRM reaches it, e.g. https://sync.example.com",
        )

    def handle(self, *args, connection, base_url, **options):
        target = connection_or_error(connection)
        try:
            subscription_url = webhook_subscription_url(connection=target, base_url=base_url)
            webhooks = connection_setup_webhooks(connection=target, base_url=base_url)
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Subscription URL: {subscription_url}")
        for webhook in webhooks:
            action = webhook.get("event_action", "")
            target_object = webhook.get("event_object", "")
            self.stdout.write(f"Registered webhook {webhook.get('id')} ({target_object}.{action})")
        self.stdout.write(self.style.SUCCESS(f"{len(webhooks)} webhook(s) registered for connection {target.pk}."))
