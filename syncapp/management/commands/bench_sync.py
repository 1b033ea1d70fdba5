import json
import platform
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.sandbox.bench import Bench, free_port, render, sandbox_process
from syncapp.sandbox.bench_fairness import fairness, fairness_unsupported, render_fairness
from syncapp.sandbox.bench_tenants import TenantsBench, render_tenants, tenants_bench_refusal
from syncapp.sandbox.client import SandboxClient, SandboxControlError

PARTS = ("initial", "naive", "incremental", "queries", "webhooks", "tenants", "fairness")
# Run only when named: they need PostgreSQL and Redis.
OPT_IN_PARTS = ("tenants", "fairness")
PROVIDERS = ("hubspot", "pipedrive")


class Command(BaseCommand):
    help = (
        "Benchmark sync against the CRM sandbox with rate limits on: initial sync vs the minimum calls and the "
        "rate-limit bound, a naive one-call-per-contact baseline, incremental syncs among many linked contacts, "
        "and webhook ingest under gunicorn. Prints a table (or --json); --record appends it to docs/benchmarks.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=10_000, help="Contacts per side for the initial sync.")
        parser.add_argument("--linked", type=int, default=100_000, help="Linked contacts for the incremental part.")
        parser.add_argument("--changes", type=int, default=10, help="Changes in the incremental part.")
        parser.add_argument(
            "--providers", default=",".join(PROVIDERS), help=f"Comma-separated providers, of {', '.join(PROVIDERS)}."
        )
        parser.add_argument(
            "--naive-contacts", type=int, default=0, help="Run the naive baseline on this many app contacts only "
            "(and extrapolate linearly); default all."
        )  # fmt: skip
        parser.add_argument(
            "--only",
            default=",".join(part for part in PARTS if part not in OPT_IN_PARTS),
            help=f"Parts to run, of {', '.join(PARTS)} (default all but {', '.join(OPT_IN_PARTS)}).",
        )
        parser.add_argument("--tenants", type=int, default=200, help="Tenants in the tenants part.")
        parser.add_argument(
            "--tenant-contacts", type=int, default=1_000, help="Contacts per side and tenant in the tenants part."
        )
        parser.add_argument(
            "--tenant-changes", type=int, default=10, help="Edits per side and tenant in the tenants part."
        )
        parser.add_argument(
            "--workers", default="1,2,4", help="Worker processes (clusters of one) to run the tenants part with."
        )
        parser.add_argument(
            "--tenant-timeout", type=float, default=3600, help="Seconds each phase of the tenants part may take."
        )
        parser.add_argument(
            "--fairness-contacts", type=int, default=100_000, help="Contacts per side of the fairness part's large "
            "initial sync; 5 small tenants of 200 contacts each receive webhook-driven edits meanwhile."
        )  # fmt: skip
        parser.add_argument(
            "--webhook-batches", type=int, default=100, help="Webhook deliveries (of 100 events) in the latency part."
        )
        parser.add_argument(
            "--webhook-updates", type=int, default=20, help="CRM edits timed from edit to app in the latency part."
        )
        parser.add_argument(
            "--webhook-rate", type=float, default=5, help="Batches of 100 per second for the latency part."
        )
        parser.add_argument(
            "--hubspot-tier",
            default="free",
            help="The HubSpot sandbox account's tier: free or starter (100 requests per 10 s, the default), "
            "professional or enterprise (190, HubSpot's highest published limit).",
        )
        parser.add_argument("--sandbox-url", default="", help="Use this running sandbox instead of starting one.")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON instead of a table.")
        parser.add_argument(
            "--record",
            nargs="?",
            const=str(settings.BASE_DIR / "docs" / "benchmarks.md"),
            default="",
            metavar="FILE",
            help="Append the table to FILE (default docs/benchmarks.md).",
        )

    def handle(self, *args, **options):
        if settings.IS_PRODUCTION:
            raise CommandError(
                "bench_sync creates and deletes tenants: it does not run with DJANGO_ENV=production. "
                "Point it at a development database."
            )
        parts = [part for part in options["only"].split(",") if part]
        unknown = set(parts) - set(PARTS)
        if unknown:
            raise CommandError(f"Unknown parts: {', '.join(sorted(unknown))}; choose among {', '.join(PARTS)}.")
        if "fairness" in parts and fairness_unsupported():
            raise CommandError(fairness_unsupported())
        providers = [p for p in options["providers"].split(",") if p]
        unknown = set(providers) - set(PROVIDERS)
        if unknown:
            raise CommandError(f"Unknown providers: {', '.join(sorted(unknown))}; choose among {', '.join(PROVIDERS)}.")
        if "tenants" in parts and tenants_bench_refusal():
            raise CommandError(tenants_bench_refusal())
        process = None
        url = options["sandbox_url"]
        if not url:
            port = free_port()
            process = sandbox_process(port)
            url = f"http://127.0.0.1:{port}"
        bench = Bench(
            SandboxClient(url), progress=lambda line: self.stderr.write(line), hubspot_tier=options["hubspot_tier"]
        )
        results: dict = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
            "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "broker": "redis" if settings.REDIS_URL else "orm",
        }
        try:
            for provider in providers:
                if "initial" in parts:
                    results.setdefault("initial", []).append(bench.initial(provider, options["contacts"]))
                if "naive" in parts:
                    sample = options["naive_contacts"] or options["contacts"]
                    results.setdefault("naive", []).append(bench.naive(provider, options["contacts"], sample))
                if "incremental" in parts:
                    results.setdefault("incremental", []).append(
                        bench.incremental(provider, options["linked"], options["changes"])
                    )
                if "queries" in parts:
                    sizes = [1_000, 10_000]
                    results.setdefault("queries", {})[provider] = bench.queries_by_size(
                        provider, sizes, options["changes"]
                    )
            if "webhooks" in parts:
                results["webhooks"] = bench.webhooks(
                    10_000,
                    batches=options["webhook_batches"],
                    concurrency=8,
                    rate=options["webhook_rate"],
                    updates=options["webhook_updates"],
                )
            if "tenants" in parts:
                results["tenants"] = TenantsBench(
                    bench.sandbox, sandbox_pid=process.pid if process else None, progress=bench.progress
                ).run(
                    tenants=options["tenants"],
                    contacts=options["tenant_contacts"],
                    changes=options["tenant_changes"],
                    workers=[int(count) for count in options["workers"].split(",") if count],
                    timeout=options["tenant_timeout"],
                )
            if "fairness" in parts:
                results["fairness"] = fairness(
                    bench, contacts=options["fairness_contacts"], tenants=5, tenant_contacts=200, max_rounds=100
                )
        except SandboxControlError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bench.cleanup()
            if process:
                process.terminate()
                process.wait(timeout=30)
        table = render(results) + render_tenants(results.get("tenants"))
        if "fairness" in results:
            table += "\n".join(render_fairness(results["fairness"]))
        self.stdout.write(json.dumps(results, indent=2) if options["json"] else table)
        if options["record"]:
            with open(options["record"], "a") as docs:
                docs.write(f"\n## {results['date']}\n\n{table}\n")
            self.stderr.write(f"Recorded in {options['record']}.")
