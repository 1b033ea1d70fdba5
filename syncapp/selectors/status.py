"""Reads for the status page: one summary per connection of a tenant, and the badge that sums it up."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone
from django_q.models import Schedule

from syncapp.exceptions import ProviderNotConfiguredError
from syncapp.models import ContactLink, CrmConnection, ExcludedRecord, OutboxEntry, SyncConflict, SyncRun, Tenant
from syncapp.providers import get_adapter_class

HEALTHY, SYNCING, DEGRADED, RETRYING, RATE_LIMITED, ERROR, NEEDS_SETUP, PAUSED, DISCONNECTED = (
    "healthy",
    "syncing",
    "degraded",
    "retrying",
    "rate-limited",
    "error",
    "needs-setup",
    "paused",
    "disconnected",
)
BADGE_LABELS = {
    HEALTHY: "Healthy",
    SYNCING: "Syncing",
    DEGRADED: "Degraded",
    RETRYING: "Retrying",
    RATE_LIMITED: "Rate limited",
    ERROR: "Error",
    NEEDS_SETUP: "Needs setup",
    PAUSED: "Paused",
    DISCONNECTED: "Disconnected",
}
CHART_RUNS = 20
LISTED_RECORDS = 50  # excluded and failing records shown per card; the rest are counted


def connection_badge(
    *,
    status: str,
    pronouns_configured: bool,
    running: bool,
    last_run_status: str | None,
    last_run_errors: int = 0,
    last_run_pending: int = 0,
    problem_records: int = 0,
) -> str:
    """Return the badge of a connection from its state. Pure: the first matching rule wins.

    A disconnected connection says only that. Then a running sync shows (it is what changes next),
    then what stops syncing (a pause, the CRM's daily limit, an error), then what leaves data out
    (pronouns not set up, records failing or excluded). A failed run that left CRM writes pending
    (the CRM was unavailable for now) is no broken connection: the outbox retries them.
    """
    if status == CrmConnection.Status.DISCONNECTED:
        return DISCONNECTED
    if running:
        return SYNCING
    if status == CrmConnection.Status.PAUSED:
        return PAUSED
    if status == CrmConnection.Status.RATE_LIMITED:
        return RATE_LIMITED
    if status == CrmConnection.Status.ERROR:
        return ERROR
    if last_run_status == SyncRun.Status.FAILED:
        return RETRYING if last_run_pending else ERROR
    if not pronouns_configured:
        return NEEDS_SETUP
    if last_run_errors or problem_records:
        return DEGRADED
    return HEALTHY


@dataclass
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    series: str
    value: int
    title: str


@dataclass
class RunChart:
    width: int
    height: int
    bars: list[ChartBar]
    runs: int
    peak: int
    series: tuple[str, ...] = ("created", "updated", "conflicts", "errors")


def run_chart(runs: list[SyncRun], *, height: int = 80, bar_width: int = 6, gap: int = 8) -> RunChart:
    """Lay out grouped bars (created, updated, conflicts, errors) for ``runs``, oldest first. Pure.

    Bars share one linear scale; a non-zero count is at least 2 px tall so it never disappears.
    """
    series = RunChart.series
    peak = max((getattr(run, name) for run in runs for name in series), default=0)
    group = bar_width * len(series) + gap
    bars = []
    for index, run in enumerate(runs):
        when = f"{timezone.localtime(run.started_at):%Y-%m-%d %H:%M}" if run.started_at else ""
        for offset, name in enumerate(series):
            value = getattr(run, name)
            bar_height = max(2.0, value / peak * height) if value and peak else 0.0
            bars.append(
                ChartBar(
                    x=index * group + offset * bar_width,
                    y=height - bar_height,
                    width=bar_width,
                    height=bar_height,
                    series=name,
                    value=value,
                    title=f"{run.get_trigger_display()} run {when}: {value} {name}",
                )
            )
    return RunChart(width=max(group * len(runs) - gap, 1), height=height, bars=bars, runs=len(runs), peak=peak)


@dataclass
class ConnectionStatus:
    connection: CrmConnection
    badge: str
    running: SyncRun | None
    last_run: SyncRun | None
    last_success: SyncRun | None
    next_poll: datetime | None
    last_event_at: datetime | None
    events_24h: int
    open_conflicts: int
    excluded: list[ExcludedRecord]
    excluded_count: int
    failing: list[ContactLink]
    failing_count: int
    retry_queued: set[int] = field(default_factory=set)  # contact ids with a push waiting
    chart: RunChart | None = None

    @property
    def badge_label(self) -> str:
        return BADGE_LABELS[self.badge]

    @property
    def provider_name(self) -> str:
        return provider_name(self.connection)

    @property
    def last_run_summary(self) -> str:
        return run_summary(self.last_run)

    @property
    def running_summary(self) -> str:
        return running_summary(self.running)

    @property
    def last_success_summary(self) -> str:
        return success_summary(self.last_success)

    @property
    def pronouns_configured(self) -> bool:
        return self.connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED


def provider_name(connection: CrmConnection) -> str:
    """Return the CRM's own name for ``connection`` ("HubSpot"), or its provider id if none is configured."""
    try:
        return get_adapter_class(connection.provider).name or connection.provider
    except ProviderNotConfiguredError:
        return connection.provider


def connection_get_for_tenant(*, tenant: Tenant, connection_id: int) -> CrmConnection | None:
    return CrmConnection.objects.filter(tenant=tenant, pk=connection_id).first()


def failing_link_get(*, connection: CrmConnection, link_id: int) -> ContactLink | None:
    return ContactLink.objects.filter(connection=connection, pk=link_id, status=ContactLink.Status.ERROR).first()


def _badge_for(connection: CrmConnection, running, last_run, problem_records: int) -> str:
    return connection_badge(
        status=connection.status,
        pronouns_configured=connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED,
        running=running is not None,
        last_run_status=last_run.status if last_run else None,
        last_run_errors=last_run.errors if last_run else 0,
        last_run_pending=last_run.pending if last_run else 0,
        problem_records=problem_records,
    )


def connection_status(*, connection: CrmConnection, with_details: bool = True) -> ConnectionStatus:
    """Return what the status page shows for one connection (``with_details``: lists and chart too)."""
    runs = SyncRun.objects.filter(connection=connection).order_by("-started_at", "-pk")
    running = runs.filter(status=SyncRun.Status.RUNNING).first()
    last_run = runs.exclude(status=SyncRun.Status.RUNNING).first()
    excluded = ExcludedRecord.objects.filter(connection=connection).order_by("-seen_at", "pk")
    failing = (
        ContactLink.objects.filter(connection=connection, status=ContactLink.Status.ERROR)
        .select_related("contact")
        .order_by("-last_synced_at", "pk")
    )
    excluded_count, failing_count = excluded.count(), failing.count()
    status = ConnectionStatus(
        connection=connection,
        badge=_badge_for(connection, running, last_run, excluded_count + failing_count),
        running=running,
        last_run=last_run,
        last_success=runs.filter(status=SyncRun.Status.SUCCEEDED).first(),
        next_poll=None,
        last_event_at=None,
        events_24h=0,
        open_conflicts=0,
        excluded=[],
        excluded_count=excluded_count,
        failing=[],
        failing_count=failing_count,
    )
    if not with_details:
        return status
    poll = Schedule.objects.filter(name=CrmConnection.poll_schedule_name(connection.pk))
    status.next_poll = poll.values_list("next_run", flat=True).first()
    events = connection.webhook_events.aggregate(
        last=Max("received_at"), recent=Count("pk", filter=Q(received_at__gte=timezone.now() - timedelta(hours=24)))
    )
    status.last_event_at, status.events_24h = events["last"], events["recent"]
    status.open_conflicts = SyncConflict.objects.filter(
        link__connection=connection, resolution=SyncConflict.Resolution.OPEN
    ).count()
    status.excluded = list(excluded[:LISTED_RECORDS])
    status.failing = list(failing[:LISTED_RECORDS])
    status.retry_queued = set(
        OutboxEntry.objects.filter(
            connection=connection, contact_id__in=[link.contact_id for link in status.failing]
        ).values_list("contact_id", flat=True)
    )
    status.chart = run_chart(list(runs.exclude(status=SyncRun.Status.RUNNING)[:CHART_RUNS])[::-1])
    return status


def connection_status_list(*, tenant: Tenant) -> list[ConnectionStatus]:
    connections = CrmConnection.objects.filter(tenant=tenant).select_related("tenant").order_by("pk")
    return [connection_status(connection=connection) for connection in connections]


def _counts(run: SyncRun) -> str:
    return (
        f"{run.created} created, {run.updated} updated, {run.deleted} deleted, "
        f"{run.conflicts} conflicts, {run.errors} errors" + (f", {run.pending} not written yet" if run.pending else "")
    )


def run_summary(run: SyncRun | None) -> str:
    """One line about a finished run, for the card and its JSON."""
    if run is None:
        return "No sync has finished yet."
    when = f"{timezone.localtime(run.finished_at or run.started_at):%Y-%m-%d %H:%M:%S}"
    line = f"{run.get_trigger_display()} run {run.get_status_display().lower()} at {when}: {_counts(run)}"
    return f"{line}. {run.error}" if run.error else f"{line}."


def running_summary(run: SyncRun | None) -> str:
    """What a running sync has done so far (it saves its counts after every batch), for the card."""
    if run is None:
        return ""
    seconds = int((timezone.now() - run.started_at).total_seconds())
    done = run.created + run.updated + run.deleted + run.unchanged
    return (
        f"A {run.get_trigger_display().lower()} sync is running (started {seconds} s ago): "
        f"{done} records reconciled so far, {_counts(run)}."
    )


def success_summary(run: SyncRun | None) -> str:
    """When the last successful run finished and what it did, for the card and its JSON."""
    if run is None:
        return "never"
    return f"{timezone.localtime(run.finished_at or run.started_at):%Y-%m-%d %H:%M} ({_counts(run)})"


def connection_status_json(*, connection: CrmConnection) -> dict:
    """What the page polls every two seconds: the badge, whether a sync runs, the last and last good run."""
    status = connection_status(connection=connection, with_details=False)
    last = status.last_run
    return {
        "id": connection.pk,
        "badge": status.badge,
        "badge_label": status.badge_label,
        "running": status.running is not None,
        "running_since": status.running.started_at.isoformat() if status.running else None,
        "running_summary": status.running_summary,
        "last_run": None
        if last is None
        else {
            "status": last.status,
            "trigger": last.trigger,
            "started_at": last.started_at.isoformat(),
            "finished_at": last.finished_at.isoformat() if last.finished_at else None,
            **{
                name: getattr(last, name)
                for name in ("created", "updated", "deleted", "conflicts", "errors", "pending")
            },
            "error": last.error,
        },
        "last_run_summary": run_summary(last),
        "last_success_summary": status.last_success_summary,
    }
