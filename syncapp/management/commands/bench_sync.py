import json
import platform
from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from syncapp.sandbox.bench import Bench, free_port, sandbox_process
from syncapp.sandbox.client import SandboxClient, SandboxControlError

PARTS = ("initial", "naive", "incremental", "queries", "webhooks")


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
        parser.add_argument("--providers", default="hubspot,pipedrive")
        parser.add_argument(
            "--naive-contacts", type=int, default=0, help="Run the naive baseline on this many app contacts only "
            "(and extrapolate linearly); default all."
        )  # fmt: skip
        parser.add_argument("--only", default=",".join(PARTS), help=f"Parts to run, of {', '.join(PARTS)}.")
        parser.add_argument("--webhook-batches", type=int, default=100)
        parser.add_argument("--webhook-updates", type=int, default=20)
        parser.add_argument(
            "--webhook-rate", type=float, default=5, help="Batches of 100 per second for the latency part."
        )
        parser.add_argument("--sandbox-url", default="", help="Use this running sandbox instead of starting one.")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--record", nargs="?", const=str(settings.BASE_DIR / "docs" / "benchmarks.md"), default="")

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
        providers = [p for p in options["providers"].split(",") if p]
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
        except SandboxControlError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bench.cleanup()
            if process:
                process.terminate()
                process.wait(timeout=30)
        table = render(results)
        self.stdout.write(json.dumps(results, indent=2) if options["json"] else table)
        if options["record"]:
            with open(options["record"], "a") as docs:
                docs.write(f"\n## {results['date']}\n\n{table}\n")
            self.stderr.write(f"Recorded in {options['record']}.")


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def render(results: dict) -> str:
    lines = [f"{results['machine']}; database {results['database']}, broker {results['broker']}.", ""]
    naive = {item["provider"]: item for item in results.get("naive", [])}
    if results.get("initial"):
        lines += [
            "Initial sync (half of each side overlapping):",
            "",
            _row(
                [
                    "provider",
                    "contacts/side",
                    "status",
                    "seconds",
                    "API calls",
                    "minimum",
                    "calls/min",
                    "rate-limit bound s",
                    "time/bound",
                    "naive s",
                    "naive/ours",
                    "DB queries",
                    "peak RSS MB",
                ]
            ),  # fmt: skip
            _row(["---"] * 13),
        ]
        for item in results["initial"]:
            base = naive.get(item["provider"])
            naive_seconds = base["extrapolated_seconds"] if base else ""
            ratio = round(naive_seconds / item["seconds"], 1) if base and item["seconds"] else ""
            lines.append(
                _row(
                    [
                        item["provider"],
                        item["contacts_per_side"],
                        item["status"],
                        item["seconds"],
                        item["api_calls"],
                        item["minimum_calls"],
                        item["calls_vs_minimum"],
                        item["rate_limit_bound_seconds"],
                        item["time_vs_bound"],
                        naive_seconds,
                        ratio,
                        item["db_queries"],
                        item["peak_rss_mb"],
                    ]
                )  # fmt: skip
            )
        lines.append("")
        for item in results["initial"]:
            lines.append(f"- {item['provider']} calls by endpoint: {_endpoints(item['api_calls_by_endpoint'])}")
        lines.append("")
    if naive:
        lines += ["Naive baseline (one API call per contact, same data):", ""]
        for item in naive.values():
            lines.append(
                f"- {item['provider']}: {item['contacts_run']} of {item['contacts_per_side']} app contacts in "
                f"{item['seconds']} s with {item['api_calls']} calls ({_endpoints(item['api_calls_by_endpoint'])}); "
                f"for all: {item['extrapolated_seconds']} s, {item['extrapolated_api_calls']} calls"
                + (" (extrapolated linearly)" if item["contacts_run"] < item["contacts_per_side"] else "")
            )
        lines.append("")
    if results.get("incremental"):
        lines += [
            "Incremental sync among linked contacts:",
            "",
            _row(
                [
                    "provider",
                    "linked",
                    "link sync s",
                    "link sync calls",
                    "link sync peak RSS MB",
                    "changes",
                    "pull calls",
                    "pull queries",
                    "pull s",
                    "push calls",
                    "push queries",
                    "push s",
                ]
            ),  # fmt: skip
            _row(["---"] * 12),
        ]
        for item in results["incremental"]:
            link, pull, push = item["link_sync"], item["pull"], item["push"]
            lines.append(
                _row(
                    [
                        item["provider"],
                        item["linked"],
                        link["seconds"],
                        link["api_calls"],
                        link["peak_rss_mb"],
                        item["changes"],
                        pull["api_calls"],
                        pull["db_queries"],
                        pull["seconds"],
                        push["api_calls"],
                        push["db_queries"],
                        push["seconds"],
                    ]
                )  # fmt: skip
            )
        lines.append("")
        for item in results["incremental"]:
            lines.append(
                f"- {item['provider']} pull: {_endpoints(item['pull']['api_calls_by_endpoint'])}; "
                f"push: {_endpoints(item['push']['api_calls_by_endpoint'])}"
            )
        lines.append("")
    if results.get("queries"):
        lines += ["Queries of the same incremental sync at other sizes (they must not grow with N):", ""]
        for provider, sizes in results["queries"].items():
            shown = ", ".join(
                f"N={size}: pull {q['pull_queries']}, push {q['push_queries']}" for size, q in sizes.items()
            )
            lines.append(f"- {provider}: {shown}")
        lines.append("")
    if results.get("webhooks"):
        hooks = results["webhooks"]
        lines += [
            "HubSpot webhooks under gunicorn:",
            "",
            f"- ingest: {hooks['accepted_batches']}/{2 * hooks['batches']} batches of 100 accepted; "
            f"{hooks['events_per_second']} events/s with 8 senders as fast as answered; at "
            f"{hooks['offered_events_per_second']:g} events/s offered, acknowledgement p50 {hooks['ack_p50_ms']} ms, "
            f"p99 {hooks['ack_p99_ms']} ms ({hooks['gunicorn_workers']} gunicorn workers)",
            f"- webhook to contact updated (django-q2 cluster): p50 {hooks['update_latency_p50_ms']} ms, "
            f"p95 {hooks['update_latency_p95_ms']} ms ({hooks['updates_seen']}/{hooks['updates_sent']} seen)",
            "",
        ]
    return "\n".join(lines)


def _endpoints(calls: dict) -> str:
    return ", ".join(f"{name} x{count}" for name, count in sorted(calls.items(), key=lambda kv: -kv[1]))
