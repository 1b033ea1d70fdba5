import json
import platform
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.sandbox.bench import Bench, free_port, render, sandbox_process
from syncapp.sandbox.bench_fairness import fairness, fairness_unsupported, render_fairness
from syncapp.sandbox.client import SandboxClient, SandboxControlError

PARTS = ("initial", "naive", "incremental", "queries", "webhooks")
# Parts run only when --only names them (they need PostgreSQL and Redis).
EXTRA_PARTS = ("fairness",)
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
            "--only", default=",".join(PARTS), help=f"Parts to run, of {', '.join(PARTS + EXTRA_PARTS)}."
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
        unknown = set(parts) - set(PARTS + EXTRA_PARTS)
        if unknown:
            raise CommandError(
                f"Unknown parts: {', '.join(sorted(unknown))}; choose among {', '.join(PARTS + EXTRA_PARTS)}."
            )
        if "fairness" in parts and fairness_unsupported():
            raise CommandError(fairness_unsupported())
        providers = [p for p in options["providers"].split(",") if p]
        unknown = set(providers) - set(PROVIDERS)
        if unknown:
            raise CommandError(f"Unknown providers: {', '.join(sorted(unknown))}; choose among {', '.join(PROVIDERS)}.")
        process = None
        url = options["sandbox_url"]
        if not url:
            port = free_port()
            process = sandbox_process(port)
            url = f"http://127.0.0.1:{port}"
        bench = Bench(SandboxClient(url), progress=lambda line: self.stderr.write(line))
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
        table = render(results) + ("\n".join(render_fairness(results["fairness"])) if "fairness" in results else "")
        self.stdout.write(json.dumps(results, indent=2) if options["json"] else table)
        if options["record"]:
            with open(options["record"], "a") as docs:
                docs.write(f"\n## {results['date']}\n\n{table}\n")
            self.stderr.write(f"Recorded in {options['record']}.")
