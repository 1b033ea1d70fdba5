"""The sync benchmark against the CRM sandbox, with the CRMs' rate limits on (docs/benchmarks.md).

Each part seeds its own tenant and sandbox account, runs the product's own sync services, and
measures wall time, API calls by endpoint (the sandbox's counters), database queries and peak
memory (RSS sampled while the part runs). Seeding is not measured.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection as db_connection
from django.db import connections
from django_q.brokers import get_broker

from syncapp.models import Contact, CrmConnection, Tenant, WebhookEvent
from syncapp.providers import get_adapter
from syncapp.providers.hubspot.webhooks import signature_uri, signature_v3
from syncapp.sandbox.client import SandboxClient, sandbox_api_allow, sandbox_api_environ
from syncapp.services.connections import connection_create
from syncapp.services.contacts import contact_update
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create

# The benchmark's accounts: a HubSpot Free private app (the client's default limit) and Pipedrive Premium.
ACCOUNT_OPTIONS = {"hubspot": {"tier": "free"}, "pipedrive": {"plan": "premium", "seats": 5}}
SEED_CHUNK = 5_000
WEBHOOK_RECORDS = 100  # records a webhook-driven update names, in the queries part
BACKDATE = 3600  # seconds: seeded CRM records are an hour old, as existing data is


# Measuring -----------------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Measurement:
    seconds: float = 0.0
    queries: int = 0
    peak_rss_mb: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def api_calls(self) -> int:
        return sum(self.calls.values())


@contextmanager
def measured(sandbox: SandboxClient, account: dict):
    """Measure the block: wall time, queries on the default database, peak RSS, the account's API calls."""
    result = Measurement()
    before = _calls(sandbox, account)
    peak = [_rss_mb()]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_mb())

    def count(execute, sql, params, many, context):
        result.queries += 1
        return execute(sql, params, many, context)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        with db_connection.execute_wrapper(count):
            yield result
    finally:
        result.seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        result.peak_rss_mb = max(peak[0], _rss_mb())
        after = _calls(sandbox, account)
        result.calls = {name: after[name] - before.get(name, 0) for name in after if after[name] - before.get(name, 0)}


def _calls(sandbox: SandboxClient, account: dict) -> Counter:
    for item in sandbox.accounts():
        if (item["provider"], item["account_id"]) == (account["provider"], account["account_id"]):
            return Counter(item["calls"])
    return Counter()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


# The data ---------------------------------------------------------------------------------------


def contact_values(index: int, *, side: str) -> dict[str, str]:
    """Contact ``index``; where both sides hold it, one in ten conflicts and one in ten lacks the phone in the CRM."""
    values = {
        "email": f"bench{index:07d}@example.com",
        "first_name": f"First{index}",
        "last_name": f"Last{index}",
        "phone": f"+1 555 {index:07d}",
        "job_title": "Engineer",
        "pronouns": "they/them",
    }
    if side == "crm" and index % 10 == 0:
        values["job_title"] = "Engineering Manager"  # both sides hold a value: the CRM wins, nothing is pushed
    if side == "crm" and index % 10 == 1:
        values["phone"] = ""  # the app's phone is pushed
    return values


@dataclass
class Dataset:
    app: range
    crm: range

    @property
    def overlap(self) -> range:
        return range(max(self.app.start, self.crm.start), min(self.app.stop, self.crm.stop))

    def minimum_calls(self, profile: dict) -> int:
        """Listing pages of the largest size, then creates and pushed updates in the largest batches."""
        app_only = len(self.app) - len(self.overlap)
        pushed = sum(1 for index in self.overlap if index % 10 == 1)
        batch = profile["write_batch_limit"]
        return (
            math.ceil(len(self.crm) / profile["list_page_limit"])
            + math.ceil(app_only / batch)
            + math.ceil(pushed / batch)
        )


def half_overlapping(count: int) -> Dataset:
    return Dataset(app=range(0, count), crm=range(count // 2, count + count // 2))


def fully_linked(count: int) -> Dataset:
    return Dataset(app=range(0, count), crm=range(0, count))


class Bench:
    def __init__(self, sandbox: SandboxClient, *, progress=print, hubspot_tier: str = "free"):
        self.sandbox = sandbox
        self.progress = progress
        self.tenants: list[Tenant] = []
        # HubSpot's tiers differ in their limit: Free and Starter 100, Professional and Enterprise 190 per 10 s.
        self.account_options = {**ACCOUNT_OPTIONS, "hubspot": {"tier": hubspot_tier}}

    # Setting up --------------------------------------------------------------------------------

    def setup(self, provider: str, data: Dataset, *, label: str, identical: bool = False, **webhooks):
        """A fresh tenant and sandbox account holding ``data``, connected, with the pronouns field set up."""
        tenant = tenant_create(slug=f"bench-{label}-{secrets.token_hex(3)}")
        self.tenants.append(tenant)
        self.progress(f"  seeding {len(data.app)} app contacts and {len(data.crm)} {provider} records")
        connection, account = self.connect(tenant, provider, data.crm, side="app" if identical else "crm", **webhooks)
        # The setup's calls leave the CRM's rate-limit window before a part measures: the account lookup of
        # connection_create, made before the connection's bucket existed, would cost the sync a 429.
        window_ends = time.monotonic() + account["api_profile"]["window_ms"] / 1000
        Contact.objects.bulk_create(
            [Contact(tenant=tenant, **contact_values(i, side="app")) for i in data.app], batch_size=2000
        )
        time.sleep(max(window_ends - time.monotonic(), 0))
        return connection, account

    def connect(self, tenant: Tenant, provider: str, crm: range, *, side: str = "crm", **webhooks):
        """A sandbox account holding the records ``crm`` (values of ``side``), connected to ``tenant``."""
        account = self.sandbox.account_create(
            provider, rate_limits=True, webhooks=webhooks, **self.account_options[provider]
        )
        profile = account["api_profile"]
        sandbox_api_allow(account["base_url"])
        connection = connection_create(
            tenant=tenant,
            provider=provider,
            account_id=account["account_id"],
            credentials={"access_token": account["token"]},
            api_base_url=account["base_url"],
        )
        # The client paces itself at the account's own limit: requests per the account's window, which is
        # the window each client counts over (HubSpot's RATE_LIMIT_WINDOW is 10 s by default, as HubSpot's).
        connection.rate_limit = round(profile["requests_per_second"] * profile["window_ms"] / 1000)
        connection.save(update_fields=["rate_limit"])
        connection_setup_pronouns(connection=connection)
        for start in range(crm.start, crm.stop, SEED_CHUNK):
            chunk = range(start, min(start + SEED_CHUNK, crm.stop))
            records = [contact_values(i, side=side) for i in chunk]
            self.sandbox.records_load(provider, account["account_id"], records, age=BACKDATE)
        return connection, account

    def cleanup(self) -> None:
        for tenant in self.tenants:
            tenant.delete()

    # Parts ----------------------------------------------------------------------------------------

    def initial(self, provider: str, count: int) -> dict:
        data = half_overlapping(count)
        connection, account = self.setup(provider, data, label=f"{provider}-initial")
        self.progress(f"  initial full sync of {count} contacts per side ({provider})")
        with measured(self.sandbox, account) as measure:
            run = connection_sync(connection=connection, full=True)
        minimum = data.minimum_calls(account["api_profile"])
        bound = minimum / account["api_profile"]["requests_per_second"]
        return {
            "provider": provider,
            "contacts_per_side": count,
            "status": run.status,
            "error": run.error,
            "created": run.created,
            "updated": run.updated,
            "conflicts": run.conflicts,
            "seconds": round(measure.seconds, 2),
            "api_calls": measure.api_calls,
            "api_calls_by_endpoint": measure.calls,
            "minimum_calls": minimum,
            "calls_vs_minimum": round(measure.api_calls / minimum, 3),
            "rate_limit_bound_seconds": round(bound, 2),
            "time_vs_bound": round(measure.seconds / bound, 3) if bound else None,
            "db_queries": measure.queries,
            "queries_per_contact": round(measure.queries / len(set(data.app) | set(data.crm)), 3),
            "peak_rss_mb": round(measure.peak_rss_mb, 1),
            "tier": self.account_options[provider].get("tier", ""),
        }

    def naive(self, provider: str, count: int, sample: int) -> dict:
        """The same data synced one API call per contact (the adapter's calls with batches of one)."""
        data = half_overlapping(count)
        connection, account = self.setup(provider, data, label=f"{provider}-naive")
        adapter = get_adapter(connection)
        sampled = list(Contact.objects.filter(tenant=connection.tenant).order_by("pk")[:sample])
        self.progress(f"  naive sync of {len(sampled)} of {count} app contacts, one call per contact ({provider})")
        with measured(self.sandbox, account) as measure:
            for contact in sampled:
                found = adapter.find_by_emails([contact.email])
                record = contact.to_record()
                if not found:
                    adapter.create_many([record])
                    continue
                remote = found[0].record.as_dict()
                missing = {k: v for k, v in record.as_dict().items() if v and not remote.get(k)}
                if missing:
                    adapter.update_many([(found[0].remote_id, missing)])
            crm_pages = math.ceil(
                len(data.crm) * len(sampled) / len(data.app) / account["api_profile"]["list_page_limit"]
            )
            for number, page in enumerate(adapter.list_all(), 1):
                for remote in page.records:
                    if not Contact.objects.filter(tenant=connection.tenant, email=remote.record.email).exists():
                        Contact.objects.create(tenant=connection.tenant, **remote.record.as_dict())
                if number >= crm_pages:
                    break
        scale = len(data.app) / len(sampled)
        return {
            "provider": provider,
            "contacts_per_side": count,
            "contacts_run": len(sampled),
            "seconds": round(measure.seconds, 2),
            "api_calls": measure.api_calls,
            "api_calls_by_endpoint": measure.calls,
            "extrapolated_seconds": round(measure.seconds * scale, 1),
            "extrapolated_api_calls": round(measure.api_calls * scale),
        }

    def incremental(self, provider: str, linked: int, changes: int) -> dict:
        data = fully_linked(linked)
        connection, account = self.setup(provider, data, label=f"{provider}-linked", identical=True)
        self.progress(f"  full sync linking {linked} contacts ({provider})")
        with measured(self.sandbox, account) as first:
            run = connection_sync(connection=connection, full=True)
        result = {
            "provider": provider,
            "linked": linked,
            "changes": changes,
            "link_sync": {
                "status": run.status,
                "seconds": round(first.seconds, 2),
                "api_calls": first.api_calls,
                "db_queries": first.queries,
                "peak_rss_mb": round(first.peak_rss_mb, 1),
            },
        }
        result.update(self._changes(connection, account, changes))
        return result

    def _changes(self, connection: CrmConnection, account: dict, changes: int) -> dict:
        """K edits in the CRM pulled by an incremental sync, then K app edits pushed."""
        records = self.sandbox.records(account["provider"], account["account_id"])
        step = max(len(records) // changes, 1)
        for n, record in enumerate(records[::step][:changes]):
            self.sandbox.record_update(
                account["provider"], account["account_id"], record["id"], {"job_title": f"CRM {n}"}
            )
        with measured(self.sandbox, account) as pull:
            pulled = connection_sync(connection=connection)
        contacts = list(Contact.objects.filter(tenant=connection.tenant).order_by("pk")[::step][:changes])
        for n, contact in enumerate(contacts):
            contact_update(contact=contact, values={"last_name": f"App {n}"})
        with measured(self.sandbox, account) as push:
            pushed = connection_sync(connection=connection, trigger="push")
        return {
            "pull": {
                "updated": pulled.updated,
                "api_calls": pull.api_calls,
                "api_calls_by_endpoint": pull.calls,
                "db_queries": pull.queries,
                "seconds": round(pull.seconds, 3),
            },
            "push": {
                "updated": pushed.updated,
                "api_calls": push.api_calls,
                "api_calls_by_endpoint": push.calls,
                "db_queries": push.queries,
                "seconds": round(push.seconds, 3),
            },
        }

    def queries_by_size(self, provider: str, sizes: list[int], changes: int) -> dict:
        """The incremental sync's queries at several sizes: they must not grow with N."""
        found = {}
        for size in sizes:
            connection, account = self.setup(provider, fully_linked(size), label=f"{provider}-q{size}", identical=True)
            connection_sync(connection=connection, full=True)
            part = self._changes(connection, account, changes)
            found[size] = {
                "pull_queries": part["pull"]["db_queries"],
                "push_queries": part["push"]["db_queries"],
                **self._webhook_update(connection, account, WEBHOOK_RECORDS),
            }
        return found

    def _webhook_update(self, connection: CrmConnection, account: dict, count: int) -> dict:
        """A webhook-driven run that pulls an edit of each of ``count`` records: its queries per record."""
        records = self.sandbox.records(account["provider"], account["account_id"])[:count]
        for record in records:
            self.sandbox.record_update(
                account["provider"], account["account_id"], record["id"], {"first_name": "Hooked"}
            )
        with measured(self.sandbox, account) as hook:
            connection_sync(connection=connection, remote_ids=[str(record["id"]) for record in records])
        return {
            "webhook_records": len(records),
            "webhook_queries": hook.queries,
            "webhook_queries_per_record": round(hook.queries / max(len(records), 1), 3),
        }

    def webhooks(self, linked: int, *, batches: int, concurrency: int, rate: float, updates: int) -> dict:
        """HubSpot webhooks into the app under gunicorn: ingest rate, acknowledgement and end-to-end latency."""
        secret = secrets.token_urlsafe(16)
        port = free_port()
        url = f"http://127.0.0.1:{port}/webhooks/hubspot/"
        connection, account = self.setup(
            "hubspot", fully_linked(linked), label="hubspot-webhooks", identical=True, url=url, secret=secret
        )
        connection_sync(connection=connection, full=True)
        records = self.sandbox.records("hubspot", account["account_id"])
        env = worker_environ(HUBSPOT_WEBHOOK_SECRET=secret)
        workers = os.cpu_count() * 2 + 1
        gunicorn = gunicorn_process(port, env, workers=workers)
        try:
            wait_for_port(port)
            self.progress(
                f"  webhook ingest: {batches} batches of 100 events, {concurrency} senders, {workers} workers"
            )
            ingest = self._ingest(url, secret, account, records, batches=batches, concurrency=concurrency, rate=rate)
            # The ingested events named real contacts; they are not what the latency part measures.
            WebhookEvent.objects.filter(connection=connection).update(status=WebhookEvent.Status.PROCESSED)
            get_broker().purge_queue()
            cluster = qcluster_process(env)
            try:
                time.sleep(3)  # the cluster's workers start
                self.progress(f"  webhook to contact updated: {updates} CRM edits with a django-q2 cluster")
                latencies = self._end_to_end(connection, account, records, updates=updates)
            finally:
                stop(cluster)
        finally:
            stop(gunicorn)
        return {
            **ingest,
            "gunicorn_workers": workers,
            "update_latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "update_latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1),
            "updates_seen": len(latencies),
            "updates_sent": updates,
        }

    def _ingest(self, url, secret, account, records, *, batches: int, concurrency: int, rate: float) -> dict:
        session = requests.Session()
        portal = int(account["account_id"])

        def send(batch: int) -> tuple[float, int]:
            events = [
                {
                    "eventId": batch * 100 + n,
                    "subscriptionId": 102,
                    "portalId": portal,
                    "appId": 1,
                    "occurredAt": int(time.time() * 1000),
                    "subscriptionType": "contact.propertyChange",
                    "attemptNumber": 0,
                    "objectId": int(records[(batch * 100 + n) % len(records)]["id"]),
                    "propertyName": "jobtitle",
                    "propertyValue": "Engineer",
                    "changeSource": "CRM_UI",
                }
                for n in range(100)
            ]
            body = json.dumps(events).encode()
            timestamp = str(int(time.time() * 1000))
            signature = signature_v3(
                secret=secret, method="POST", uri=signature_uri(url), body=body, timestamp=timestamp
            )
            headers = {
                "Content-Type": "application/json",
                "X-HubSpot-Signature-v3": signature,
                "X-HubSpot-Request-Timestamp": timestamp,
            }
            started = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=30)
            return time.perf_counter() - started, response.status_code

        # Throughput: senders as fast as the app answers.
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = list(pool.map(send, range(batches)))
        seconds = time.perf_counter() - started
        accepted = sum(1 for _, status in answers if status == 200)
        # Acknowledgement latency at a steady offered load (batches sent on a clock, not when the last answered).
        interval = 1 / rate
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = []
            clock = time.perf_counter()
            for batch in range(batches, 2 * batches):
                futures.append(pool.submit(send, batch))
                clock += interval
                time.sleep(max(clock - time.perf_counter(), 0))
            paced = [future.result() for future in futures]
        latencies = [latency for latency, _ in paced]
        return {
            "batches": batches,
            "accepted_batches": accepted + sum(1 for _, status in paced if status == 200),
            "events_per_second": round(accepted * 100 / seconds),
            "offered_events_per_second": rate * 100,
            "ack_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "ack_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        }

    def _end_to_end(self, connection, account, records, *, updates: int, first: int = 0) -> list[float]:
        """Edit ``updates`` records in the CRM one at a time; return each edit's seconds until the app shows it."""
        latencies = []
        for n in range(first, first + updates):
            record = records[(n * 7919) % len(records)]
            value = f"Webhook {n}"
            started = time.perf_counter()
            self.sandbox.record_update("hubspot", account["account_id"], record["id"], {"job_title": value})
            deadline = started + 15
            while time.perf_counter() < deadline:
                if Contact.objects.filter(tenant=connection.tenant, email=record["email"], job_title=value).exists():
                    latencies.append(time.perf_counter() - started)
                    break
                time.sleep(0.01)
            time.sleep(0.2)
        return latencies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"Nothing listens on port {port} after {timeout} s.")


def worker_environ(**extra: str) -> dict[str, str]:
    """The environment of a web or worker process this one starts: this process's database (under pytest the
    test database, not DATABASE_URL's), broker and encryption key (tests set their own), and the sandbox's hosts."""
    database = settings.DATABASES["default"]
    environ = {**os.environ, **sandbox_api_environ(), "SYNC_ENCRYPTION_KEY": settings.SYNC_ENCRYPTION_KEY}
    if database["ENGINE"] == "django.db.backends.postgresql":
        user = quote(database["USER"]) + (f":{quote(database['PASSWORD'])}" if database.get("PASSWORD") else "")
        environ["DATABASE_URL"] = f"postgres://{user}@{database['HOST']}:{database['PORT']}/{quote(database['NAME'])}"
    if settings.REDIS_URL:
        environ["REDIS_URL"] = settings.REDIS_URL
    return {**environ, "LOG_LEVEL": "WARNING", **extra}


def gunicorn_process(port: int, env: dict, *, workers: int) -> subprocess.Popen:
    """The web app under gunicorn on loopback; database connections are closed first, as before a fork."""
    connections.close_all()
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "contactsync.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning"],
        cwd=settings.BASE_DIR, env=env,
    )  # fmt: skip


def qcluster_process(env: dict) -> subprocess.Popen:
    """A django-q2 cluster (``Q_CLUSTER_NAME`` in ``env`` picks which), its output discarded."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=settings.BASE_DIR, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def sandbox_process(port: int) -> subprocess.Popen:
    """The sandbox in its own process, so its work and memory are not counted as the sync's."""
    process = subprocess.Popen(
        [sys.executable, "manage.py", "crm_sandbox", "--port", str(port)],
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process


# The report -----------------------------------------------------------------------------------


def _row(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def render(results: dict) -> str:
    """The results as the Markdown that bench_sync prints and --record appends to docs/benchmarks.md."""
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
                    "queries/contact",
                    "peak RSS MB",
                ]
            ),  # fmt: skip
            _row(["---"] * 14),
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
                        item.get("queries_per_contact", ""),
                        item["peak_rss_mb"],
                    ]
                )  # fmt: skip
            )
        lines.append("")
        for item in results["initial"]:
            tier = f" (HubSpot tier {item['tier']})" if item.get("tier") else ""
            lines.append(f"- {item['provider']}{tier} calls by endpoint: {_endpoints(item['api_calls_by_endpoint'])}")
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
                f"N={size}: pull {q['pull_queries']}, push {q['push_queries']}, webhook update of "
                f"{q['webhook_records']} records {q['webhook_queries']} ({q['webhook_queries_per_record']}/record)"
                for size, q in sizes.items()
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
