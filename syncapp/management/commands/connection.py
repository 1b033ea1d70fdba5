import json

from django.core.management.base import BaseCommand, CommandError

from syncapp.exceptions import SyncError
from syncapp.management.lookups import tenant_or_error
from syncapp.providers import provider_ids
from syncapp.selectors.connections import connection_describe, connection_list
from syncapp.services.connections import connection_connect_token


class Command(BaseCommand):
    help = "Connect a CRM account to a tenant (`connection add`) or list connections (`connection list`)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, help="What to do (ACTION -h for its options).")
        add = actions.add_parser(
            "add",
            help="Connect a CRM account with an API or private-app token, after asking the CRM which account it opens.",
        )
        add.add_argument("--tenant", required=True, help="Slug of the tenant to connect.")
        add.add_argument("--provider", required=True, choices=provider_ids(), help="The CRM.")
        add.add_argument(
            "--account-id",
            default="",
            help="HubSpot portal id or Pipedrive company id; optional where the CRM names the token's account "
            "(HubSpot and Pipedrive do), and then it must match.",
        )
        add.add_argument("--token", required=True, help="Private-app token (HubSpot) or API token (Pipedrive).")
        add.add_argument("--api-base", default="", help="API base URL, for example the CRM sandbox's.")
        listing = actions.add_parser("list", help="Print one JSON object per connection.")
        listing.add_argument("--tenant", default=None, help="Only this tenant's connections (its slug).")

    def handle(self, *args, action, **options):
        if action == "list":
            if options["tenant"]:
                tenant_or_error(options["tenant"])
            for connection in connection_list(tenant_slug=options["tenant"]):
                self.stdout.write(json.dumps(connection_describe(connection=connection)))
            return
        tenant = tenant_or_error(options["tenant"])
        try:
            connection = connection_connect_token(
                tenant=tenant,
                provider=options["provider"],
                token=options["token"],
                account_id=options["account_id"],
                api_base_url=options["api_base"],
            )
        except SyncError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(connection_describe(connection=connection)))
