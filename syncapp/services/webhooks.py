"""The webhook inbox: store verified events, then process them as hints for a sync.

A delivery is answered only after its events are stored, and a stored event stays until a task
has processed it, so a crash in between loses nothing. Processing re-reads the records the events
name instead of trusting their payloads, so duplicated, late and reordered events converge.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from syncapp.exceptions import ConnectionInactiveError, SyncAlreadyRunningError, WebhookPayloadError
from syncapp.models import (
    Contact,
    ContactLink,
    CrmConnection,
    ExcludedRecord,
    Suppression,
    SyncRun,
    WebhookEvent,
    WebhookRejection,
)
from syncapp.providers import get_webhook_handler
from syncapp.providers.base.webhooks import WebhookHandler, WebhookHints, WebhookNotice, shown
from syncapp.services.connections import connection_lock
from syncapp.services.outbox import push_retry_delay
from syncapp.services.schedules import schedule_once_upsert
from syncapp.services.suppressions import person_forget
from syncapp.services.sync import connection_sync
from syncapp.services.task_names import PROCESS_TASK

logger = logging.getLogger(__name__)

# What a stored body becomes once a privacy deletion names its record.
REDACTED_BODY = json.dumps({"redacted": "privacy deletion"})
DEDUPE_KEY_LENGTH = WebhookEvent._meta.get_field("dedupe_key").max_length
# The last_error of an event whose payload does not have the shape its provider documents.
MALFORMED = "Rejected as malformed: {}"


def _scoped_key(notice: WebhookNotice, scope: CrmConnection | None) -> str:
    """Return the key an event is stored under: the provider's key inside the connection receiving it.

    Without the scope, one tenant posting an event id to its own URL would make another tenant's
    event with that id a duplicate. Keys stored before scoping begin with the provider id, so they
    never equal a scoped key.
    """
    prefix = f"connection-{scope.pk}" if scope is not None else f"account-{notice.account_id}"
    key = f"{prefix}/{notice.dedupe_key}"
    if len(key) > DEDUPE_KEY_LENGTH:
        key = f"{prefix[:100]}/sha256-{hashlib.sha256(key.encode()).hexdigest()}"
    return key


def webhook_event_record(
    *, provider: str, notices: list[WebhookNotice], connection: CrmConnection | None = None
) -> list[WebhookEvent]:
    """Store each notice in the inbox; return the events of this delivery that were not stored before it.

    A notice already stored for the same connection (same dedupe key) is a duplicate delivery and
    creates nothing; a notice repeated within the delivery is stored and returned once. In a race
    with a concurrent delivery of the same event both calls may return it, which is harmless:
    processing re-reads the CRM. An event that is not in the inbox after the insert raises
    IntegrityError, so the delivery is answered with a 500 and the CRM retries it. Each event goes
    to the connection of its account; ``connection`` (from a per-connection URL) restricts that to
    one connection and scopes the dedupe keys of everything posted there. An event from an unknown
    account, for a disconnected connection or of a type the provider does not process is stored as
    ignored; a malformed one (``notice.rejected``) as failed, with no retries left.

    Once the events are committed, processing is queued for each connection that got pending ones.
    """
    with transaction.atomic():
        events = _events_store(provider=provider, notices=notices, connection=connection)
        touched = {event.connection_id for event in events if event.status == WebhookEvent.Status.PENDING}
        for connection_id in sorted(touched):
            # robust: the events are stored; a broker outage must not turn the delivery into an error.
            # A lambda, not functools.partial: Django logs a robust callback's failure by its __qualname__.
            transaction.on_commit(lambda pk=connection_id: webhook_process_schedule(connection_id=pk), robust=True)
    return events


def _events_store(*, provider: str, notices: list[WebhookNotice], connection: CrmConnection | None):
    handler = get_webhook_handler(provider)
    connections = CrmConnection.objects.filter(
        provider=provider, account_id__in={notice.account_id for notice in notices if notice.account_id}
    )
    if connection is not None:
        connections = connections.filter(pk=connection.pk)
    by_account = {candidate.account_id: candidate for candidate in connections}
    keyed = [(_scoped_key(notice, connection or by_account.get(notice.account_id)), notice) for notice in notices]
    # One query for the duplicates and one insert for the rest: a delivery holds up to 100 events.
    stored = set(
        WebhookEvent.objects.filter(dedupe_key__in=[key for key, _ in keyed]).values_list("dedupe_key", flat=True)
    )
    created: dict[str, WebhookEvent] = {}
    for key, notice in keyed:
        if key in stored or key in created:
            continue
        target = by_account.get(notice.account_id)
        status, error, attempts = WebhookEvent.Status.PENDING, "", 0
        if notice.rejected:
            # Retrying cannot mend the payload: the budget is spent, an operator may still replay it.
            status, error = WebhookEvent.Status.FAILED, MALFORMED.format(notice.rejected)
            attempts = settings.WEBHOOK_MAX_ATTEMPTS
            logger.warning("%s webhook event stored as failed: %s", provider, notice.rejected)
        elif target is None:
            status = WebhookEvent.Status.IGNORED
            error = f"No {provider} connection for account {notice.account_id}; not applied to any tenant."
            logger.warning("%s webhook event for unknown account %s stored as ignored", provider, notice.account_id)
        elif target.status == CrmConnection.Status.DISCONNECTED:
            status, error = WebhookEvent.Status.IGNORED, "The connection is disconnected."
        elif not handler.handles(notice.event_type):
            status, error = WebhookEvent.Status.IGNORED, f"Event type '{notice.event_type}' is not processed."
        created[key] = WebhookEvent(
            dedupe_key=key,
            provider=provider,
            connection=target,
            body=json.dumps(notice.payload),
            status=status,
            attempts=attempts,
            last_error=error,
        )
    # A concurrent delivery of the same event may have stored it meanwhile: the unique key keeps one.
    WebhookEvent.objects.bulk_create(created.values(), ignore_conflicts=True)
    events = list(WebhookEvent.objects.filter(dedupe_key__in=created).order_by("pk"))
    # SQLite's INSERT OR IGNORE also skips a row that fails NOT NULL or CHECK, without a word.
    missing = created.keys() - {event.dedupe_key for event in events}
    if missing:
        raise IntegrityError(f"{len(missing)} {provider} webhook event(s) were not stored: {sorted(missing)[:5]}")
    return events


def webhook_process_schedule(*, connection_id: int, delay: float = 0) -> None:
    """Queue processing of a connection's stored events: now, or once after ``delay`` seconds."""
    from django_q.tasks import async_task

    if not delay:
        async_task(PROCESS_TASK, connection_id, group=f"webhooks-{connection_id}")
        return
    schedule_once_upsert(
        name=f"contactsync-webhooks-retry-{connection_id}", func=PROCESS_TASK, args=(connection_id,), delay=delay
    )


def webhook_events_process(*, connection: CrmConnection) -> int:
    """Apply the connection's stored events; return how many were processed.

    Takes the pending events and the failed ones with retries left, purges the records privacy
    deletions name, and re-reads the others in one sync run. Events are marked processed, or
    failed with the error (and a retry is scheduled while attempts remain). While another sync
    holds the connection they stay pending and processing is scheduled again shortly. A poison
    event fails alone, with no retries left: one whose payload names no valid id, and one naming a
    record the CRM refuses to read (a 4xx); the others of the batch are applied.
    """
    retryable = Q(status=WebhookEvent.Status.PENDING) | Q(
        status=WebhookEvent.Status.FAILED, attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS
    )
    events = list(WebhookEvent.objects.filter(retryable, connection=connection).order_by("pk"))
    if not events:
        return 0
    handler = get_webhook_handler(connection.provider)
    hints_of, malformed = _event_hints(handler, events)
    for event, reason in malformed.items():
        _events_reject([event], MALFORMED.format(reason))
    events = [event for event in events if event.pk in hints_of]
    if not events:
        return 0
    purge_ids = set().union(*(hints.purge_remote_ids for hints in hints_of.values()))
    error, refused = "", {}
    try:
        if purge_ids:
            with connection_lock(connection):
                webhook_records_purge(connection=connection, remote_ids=purge_ids, handler=handler)
        remote_ids = set().union(*(hints.remote_ids for hints in hints_of.values())) - purge_ids
        if remote_ids:
            run = connection_sync(connection=connection, remote_ids=sorted(remote_ids))
            # Writes the CRM did not take yet are the outbox's to finish; the events were applied.
            if run.status == SyncRun.Status.FAILED and not run.writes_pending_only:
                error = run.error or f"Sync run {run.pk} failed."
            refused = run.refused_remote_ids
    except SyncAlreadyRunningError:
        logger.info("connection %s: a sync is running; processing its webhook events shortly", connection.pk)
        webhook_process_schedule(connection_id=connection.pk, delay=push_retry_delay(attempts=1))
        return 0
    except ConnectionInactiveError as exc:
        # Paused: the events wait; the incremental pull after resuming catches up anyway.
        logger.info("connection %s: %s; webhook events left pending", connection.pk, exc)
        return 0
    except Exception as exc:
        logger.exception("processing webhook events of connection %s failed", connection.pk)
        error = f"{type(exc).__name__}: {exc}"

    done = WebhookEvent.objects.filter(pk__in=[event.pk for event in events])
    if error:
        done.update(status=WebhookEvent.Status.FAILED, attempts=F("attempts") + 1, last_error=error)
        attempts = max(event.attempts for event in events) + 1
        if attempts < settings.WEBHOOK_MAX_ATTEMPTS:
            webhook_process_schedule(connection_id=connection.pk, delay=push_retry_delay(attempts=attempts))
        return 0
    poisoned = set()
    for remote_id, reason in sorted(refused.items()):
        naming = [event for event in events if remote_id in hints_of[event.pk].remote_ids]
        _events_reject(naming, f"The CRM refused to read record {shown(remote_id)}: {reason}")
        poisoned.update(event.pk for event in naming)
    done.exclude(pk__in=poisoned).update(
        status=WebhookEvent.Status.PROCESSED,
        attempts=F("attempts") + 1,
        last_error="",
        processed_at=timezone.now(),
    )
    return len(events) - len(poisoned)


def _event_hints(
    handler: WebhookHandler, events: list[WebhookEvent]
) -> tuple[dict[int, WebhookHints], dict[WebhookEvent, str]]:
    """Return the hints of each event by its id, and the reason of each event that has none.

    Asked one event at a time, so a payload the handler cannot read (stored before its checks
    existed, say) fails alone.
    """
    hints_of, malformed = {}, {}
    for event in events:
        try:
            hints_of[event.pk] = handler.hints([json.loads(event.body)])
        except Exception as exc:  # the payload came from outside: whatever breaks on it, it alone fails
            logger.warning("webhook event %s cannot be processed: %s", event.pk, exc)
            malformed[event] = str(exc) if isinstance(exc, WebhookPayloadError) else f"{type(exc).__name__}: {exc}"
    return hints_of, malformed


def _events_reject(events: list[WebhookEvent], reason: str) -> None:
    """Mark events failed with ``reason`` and no retries left: trying again cannot mend them."""
    WebhookEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        status=WebhookEvent.Status.FAILED, attempts=settings.WEBHOOK_MAX_ATTEMPTS, last_error=reason
    )


@transaction.atomic
def webhook_records_purge(*, connection: CrmConnection, remote_ids: set[str], handler: WebhookHandler) -> int:
    """Erase what we hold about CRM records a privacy deletion names; return the contacts deleted.

    The person's emails we know (the linked contact's, the link's base, an exclusion's) are
    suppressed in the tenant, so no CRM brings them back, and every app contact holding them is
    deleted outright (links, conflicts and outbox rows go with it) and archived in the tenant's
    other CRMs (see person_forget). The stored webhook bodies naming the records are redacted, and
    their exclusions are dropped.
    """
    links = ContactLink.objects.filter(connection=connection, remote_id__in=remote_ids).select_related("contact")
    emails_of: dict[str, set[str]] = defaultdict(set)
    for link in links:
        emails_of[link.remote_id].update({link.contact.email, link.base.get("email", "")})
    excluded = ExcludedRecord.objects.filter(connection=connection, side=ExcludedRecord.Side.CRM)
    for remote_id, email in excluded.filter(record_id__in=remote_ids).values_list("record_id", "email"):
        emails_of[remote_id].add(email)
    contact_ids = {link.contact_id for link in links}
    deleted = 0
    for remote_id, emails in sorted(emails_of.items()):
        deleted += person_forget(
            tenant=connection.tenant,
            emails=emails,
            source=Suppression.Source.PRIVACY_DELETION,
            provider=connection.provider,
            remote_id=remote_id,
            source_connection=connection,
        )
    ExcludedRecord.objects.filter(connection=connection).filter(
        Q(side=ExcludedRecord.Side.CRM, record_id__in=remote_ids)
        | Q(side=ExcludedRecord.Side.APP, record_id__in=[str(pk) for pk in contact_ids])
    ).delete()
    # A linked contact without an email is not found by person_forget.
    deleted += (
        Contact.objects.filter(pk__in=contact_ids, tenant_id=connection.tenant_id)
        .delete()[1]
        .get(Contact._meta.label, 0)
    )
    # A cheap text match finds candidates; the handler decides which events really name the records.
    mentions = Q()
    for remote_id in remote_ids:
        mentions |= Q(body__contains=remote_id)
    redacted = [
        event.pk
        for event in WebhookEvent.objects.filter(mentions, connection=connection).only("pk", "body")
        if _names_any(handler, event.body, remote_ids)
    ]
    WebhookEvent.objects.filter(pk__in=redacted).update(body=REDACTED_BODY)
    logger.info(
        "connection %s: privacy deletion of %d CRM record(s) removed %d contact(s), redacted %d event(s)",
        connection.pk,
        len(remote_ids),
        deleted,
        len(redacted),
    )
    return deleted


def _names_any(handler: WebhookHandler, body: str, remote_ids: set[str]) -> bool:
    try:
        hints = handler.hints([json.loads(body)])
    except Exception:  # a malformed body that mentions the record may name it: privacy wins
        return True
    return bool((hints.remote_ids | hints.purge_remote_ids) & remote_ids)


@transaction.atomic
def webhook_events_retry(
    *,
    status: str = WebhookEvent.Status.FAILED,
    connection: CrmConnection | None = None,
    event_ids: Iterable[int] | None = None,
) -> int:
    """Put the events with ``status`` back to pending with a fresh retry budget; return how many.

    ``event_ids`` limits that to the given events (an operator's selection). Processing is queued
    for each connection concerned once the transaction commits. Events of unknown accounts stay as
    they are: there is no connection to apply them to.
    """
    events = WebhookEvent.objects.filter(status=status, connection__isnull=False)
    if connection is not None:
        events = events.filter(connection=connection)
    if event_ids is not None:
        events = events.filter(pk__in=list(event_ids))
    connection_ids = set(events.values_list("connection_id", flat=True))
    count = events.update(status=WebhookEvent.Status.PENDING, attempts=0, last_error="")
    for connection_id in sorted(connection_ids):
        transaction.on_commit(lambda pk=connection_id: webhook_process_schedule(connection_id=pk), robust=True)
    return count


def webhook_rejection_count(*, provider: str, status_code: int, reason: str) -> None:
    """Count a refused delivery (bad signature, oversized, malformed) for the operators' view."""
    day = timezone.now().date()
    counted = WebhookRejection.objects.filter(provider=provider, status_code=status_code, day=day).update(
        count=F("count") + 1, last_reason=reason
    )
    if not counted:
        try:
            with transaction.atomic():
                WebhookRejection.objects.create(
                    provider=provider, status_code=status_code, day=day, count=1, last_reason=reason
                )
        except IntegrityError:  # created by a concurrent request meanwhile
            WebhookRejection.objects.filter(provider=provider, status_code=status_code, day=day).update(
                count=F("count") + 1, last_reason=reason
            )
