import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.sandbox.server import Faults, SandboxServer


class Command(BaseCommand):
    help = (
        "Serve the CRM sandbox: HubSpot and Pipedrive accounts on loopback that speak the real APIs "
        "(docs/sandbox.md). Ctrl-C stops it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument(
            "--port", type=int, default=8765, help="Port to listen on (default 8765; 0 for any free one)."
        )
        parser.add_argument(
            "--account",
            action="append",
            default=[],
            metavar="PROVIDER[:ID[:TOKEN]]",
            help="Create an account at start (repeatable), e.g. hubspot:62515:pat-demo or pipedrive.",
        )
        parser.add_argument("--webhook-target", default="", help="The app's base URL; CRM changes are delivered there.")
        parser.add_argument("--webhook-secret", default="", help="HubSpot's app secret, which signs deliveries.")
        parser.add_argument("--no-rate-limits", action="store_true", help="Serve without the CRMs' rate limits.")
        parser.add_argument("--fault-rate", type=float, default=0.0, help="Share of API requests that fail (0-1).")
        parser.add_argument("--latency-ms", type=int, default=0, help="Added to every API request.")
        parser.add_argument("--seed", type=int, default=None, help="Seed for faults and webhook disorder.")
        parser.add_argument("--request-log", default=None, metavar="FILE", help="Append every request as a JSON line.")

    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            raise CommandError(
                "The CRM sandbox hands out CRM accounts and signs webhooks for whoever reaches its control API: it "
                "does not run with DJANGO_ENV=production. Run it on a development machine."
            )
        try:
            server = SandboxServer(
                host=options["host"],
                port=options["port"],
                seed=options["seed"],
                request_log=options["request_log"],
                faults=Faults(rate=options["fault_rate"], latency_ms=options["latency_ms"]),
                webhook_target=options["webhook_target"],
                webhook_secret=options["webhook_secret"],
            )
        except (OSError, ValueError) as exc:
            raise CommandError(f"The sandbox could not start: {exc}") from exc
        for spec in options["account"]:
            provider, _, rest = spec.partition(":")
            account_id, _, token = rest.partition(":")
            try:
                account = server.sandbox.account_create(
                    provider, account_id=account_id, token=token, rate_limits=not options["no_rate_limits"]
                )
            except Exception as exc:
                server.stop()
                raise CommandError(f"--account {spec}: {getattr(exc, 'body', exc)}") from exc
            self.stdout.write(json.dumps(server.sandbox.describe_account(account)))
        self.stdout.write(f"CRM sandbox listening on {server.url} (control API: {server.url}/_sandbox/)")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("Stopping the sandbox.")
        finally:
            server.stop()
