"""bench_sync's fairness part: small tenants' webhook-driven updates while another tenant's initial sync runs.

Everything runs as in production: the web app under gunicorn receives the sandbox's webhooks, and
two django-q2 clusters run as separate processes, the default one (notifications, pushes, polls)
and the bulk one (listings, in slices of SYNC_SLICE_PAGES pages). The large tenant's initial sync
starts as it would in production: the default cluster's scheduler runs its first poll, which hands
the listing to the bulk cluster.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time

from django.conf import settings

from syncapp.models import CrmConnection, SyncRun
from syncapp.sandbox.bench import (
    Bench,
    free_port,
    fully_linked,
    gunicorn_process,
    half_overlapping,
    percentile,
    qcluster_process,
    stop,
    wait_for_port,
    worker_environ,
)
from syncapp.services.sync import connection_sync

BULK = "bulk"
# Seconds the large tenant's first slice may take to start: the default cluster's scheduler runs the poll.
START_TIMEOUT = 120
# Seconds the rest of the initial sync may take once the edits are timed.
FINISH_TIMEOUT = 3600


def fairness_unsupported() -> str:
    """Return why this database and broker cannot run the fairness part, or "" when they can."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        return (
            "The fairness part needs PostgreSQL and Redis (DATABASE_URL=postgres://..., REDIS_URL=redis://...): "
            "on SQLite every tenant's writes wait for one database lock, and the ORM broker's queue is "
            "that database, so neither would measure how tenants share the workers."
        )
    return ""


def fairness(bench: Bench, *, contacts: int, tenants: int, tenant_contacts: int, max_rounds: int) -> dict:
    """Time CRM edits of ``tenants`` small HubSpot tenants, webhook to app, while a ``contacts`` initial sync runs."""
    secret = secrets.token_urlsafe(16)
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/hubspot/"
    small = []
    for number in range(tenants):
        connection, account = bench.setup(
            "hubspot", fully_linked(tenant_contacts), label=f"fair{number}", identical=True, url=url, secret=secret
        )
        connection_sync(connection=connection, full=True)
        small.append((connection, account, bench.sandbox.records("hubspot", account["account_id"])))
    large, _ = bench.setup("hubspot", half_overlapping(contacts), label="fair-large")
    env = worker_environ(
        HUBSPOT_WEBHOOK_SECRET=secret, BULK_CLUSTER=BULK, SYNC_SLICE_PAGES=str(settings.SYNC_SLICE_PAGES)
    )
    processes = [gunicorn_process(port, env, workers=os.cpu_count() * 2 + 1)]
    latencies: list[float] = []
    sent = 0
    try:
        wait_for_port(port)
        processes += [qcluster_process(env), qcluster_process({**env, "Q_CLUSTER_NAME": BULK})]
        bench.progress(f"  waiting for the initial sync of {contacts} contacts per side to start on the bulk cluster")
        _wait(lambda: SyncRun.objects.filter(connection=large).exists(), START_TIMEOUT)
        bench.progress(f"  timing CRM edits of {tenants} small tenants, webhook to contact, while it runs")
        for number in range(max_rounds):
            if _listed(large):
                break
            seen = len(latencies)
            for connection, account, records in small:
                latencies += bench._end_to_end(connection, account, records, updates=1, first=number)
                sent += 1
            if len(latencies) == seen:
                raise RuntimeError("No CRM edit of a round reached the app: is the default django-q2 cluster failing?")
        during = not _listed(large)
        bench.progress("  waiting for the initial sync to finish")
        _wait(lambda: _listed(large) or _failed(large), FINISH_TIMEOUT)
    finally:
        for process in processes:
            stop(process)
    runs = list(SyncRun.objects.filter(connection=large).order_by("pk"))
    return {
        "contacts_per_side": contacts,
        "small_tenants": tenants,
        "small_tenant_contacts": tenant_contacts,
        "slice_pages": settings.SYNC_SLICE_PAGES,
        "initial_sync_status": runs[-1].status if runs else "not started",
        "initial_sync_seconds": round((runs[-1].finished_at - runs[0].started_at).total_seconds(), 1),
        "initial_sync_slices": len(runs),
        "edits_sent": sent,
        "edits_seen": len(latencies),
        "edits_all_during_sync": during,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p95_ms": round(percentile(latencies, 0.95) * 1000, 1) if latencies else None,
        "latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
    }


def _listed(connection: CrmConnection) -> bool:
    return CrmConnection.objects.filter(pk=connection.pk, last_full_sync_at__isnull=False).exists()


def _failed(connection: CrmConnection) -> bool:
    """Whether the large tenant's latest slice failed and queued no continuation: a later poll would resume it."""
    latest = SyncRun.objects.filter(connection=connection).order_by("-pk").first()
    return bool(latest and latest.status == SyncRun.Status.FAILED and not latest.continues)


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Gave up after {timeout} s: is a django-q2 cluster failing to start?")
        time.sleep(0.5)


def render_fairness(result: dict) -> list[str]:
    """The fairness part's lines of the Markdown report."""
    return [
        "Fairness (PostgreSQL, Redis; default and bulk django-q2 clusters as separate processes):",
        "",
        f"- initial sync of {result['contacts_per_side']} contacts per side (HubSpot) on the bulk cluster: "
        f"{result['initial_sync_status']} in {result['initial_sync_seconds']} s, {result['initial_sync_slices']} "
        f"slices of at most {result['slice_pages']} pages",
        f"- meanwhile, CRM edits of {result['small_tenants']} small tenants ({result['small_tenant_contacts']} "
        f"contacts each), webhook to contact updated: p50 {result['latency_p50_ms']} ms, p95 "
        f"{result['latency_p95_ms']} ms, max {result['latency_max_ms']} ms ({result['edits_seen']}/"
        f"{result['edits_sent']} seen"
        + (", all while the initial sync ran)" if result["edits_all_during_sync"] else ")"),
        "",
    ]
