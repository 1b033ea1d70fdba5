"""The outbox: app-side changes waiting to reach each connection, and the push tasks that drain it."""

import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from syncapp.models import Contact, ContactLink, CrmConnection, OutboxEntry
from syncapp.services.task_names import PUSH_TASK

# Set by outbox_batch: each tenant's live connection ids, and the connections whose push was queued.
_batch: ContextVar[tuple[dict[int, list[int]], set[int]] | None] = ContextVar("outbox_batch", default=None)


@contextmanager
def outbox_batch() -> Iterator[None]:
    """Within the block, read each tenant's live connections once and queue each connection's push once.

    A sync applies a batch of pulled changes one transaction each; without this, every changed
    contact would query its tenant's connections and claim each push again. One claim is enough:
    a push that started before a later row of the batch committed leaves that row to its own
    follow-up, which queues the next push. The block is kept short (one batch), so a connection
    added or removed meanwhile is seen by the next batch.
    """
    token = _batch.set(({}, set()))
    try:
        yield
    finally:
        _batch.reset(token)


def _live_connection_ids(tenant_id: int) -> list[int]:
    batch = _batch.get()
    if batch is not None and tenant_id in batch[0]:
        return batch[0][tenant_id]
    connection_ids = list(
        CrmConnection.objects.filter(tenant_id=tenant_id, status__in=CrmConnection.LIVE_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if batch is not None:
        batch[0][tenant_id] = connection_ids
    return connection_ids


def outbox_enqueue(*, contact: Contact, exclude_connection_id: int | None = None) -> list[int]:
    """Record that ``contact`` changed for every live connection of its tenant but one.

    Must run inside the transaction that changed the contact, so the change and its outbox rows
    commit together. A push task is queued once the transaction commits.
    """
    return outbox_enqueue_many(contacts=[contact], exclude_connection_id=exclude_connection_id)


def outbox_enqueue_many(*, contacts: list[Contact], exclude_connection_id: int | None = None) -> list[int]:
    """``outbox_enqueue`` for several contacts of one tenant, with one insert; return the connections queued."""
    if not contacts:
        return []
    tenant_id = contacts[0].tenant_id
    connection_ids = [pk for pk in _live_connection_ids(tenant_id) if pk != exclude_connection_id]
    OutboxEntry.objects.bulk_create(
        [OutboxEntry(connection_id=pk, contact=contact) for contact in contacts for pk in connection_ids]
    )
    batch = _batch.get()
    queued = batch[1] if batch is not None else None
    for connection_id in connection_ids:
        # robust: a broker outage must not undo the committed change; the next run's follow-up queues it.
        transaction.on_commit(lambda pk=connection_id: _push_schedule_once(pk, queued), robust=True)
    return connection_ids


def outbox_enqueue_links(*, links: Iterable[ContactLink]) -> int:
    """Queue each link's contact again for the link's own connection (a resync); return how many.

    The next push re-reads the CRM record and reconciles it with the contact. Links of a
    disconnected connection are skipped; a paused one keeps the rows until it is resumed.
    """
    entries = [
        OutboxEntry(connection_id=link.connection_id, contact_id=link.contact_id)
        for link in links
        if link.connection.status in CrmConnection.LIVE_STATUSES
    ]
    with transaction.atomic():
        OutboxEntry.objects.bulk_create(entries)
        for connection_id in sorted({entry.connection_id for entry in entries}):
            transaction.on_commit(lambda pk=connection_id: push_schedule(connection_id=pk), robust=True)
    return len(entries)


def _push_schedule_once(connection_id: int, queued: set[int] | None) -> None:
    if queued is not None and connection_id in queued:
        return
    push_schedule(connection_id=connection_id)
    if queued is not None:
        queued.add(connection_id)


def push_schedule(*, connection_id: int) -> bool:
    """Queue one push task for an active connection unless one is already waiting; return whether queued."""
    from django_q.tasks import async_task

    now = timezone.now()
    # A flag older than the lock TTL belongs to a task the queue lost.
    stale = now - timedelta(seconds=settings.SYNC_LOCK_TTL)
    claimed = (
        CrmConnection.objects.filter(pk=connection_id, status__in=CrmConnection.SYNCABLE_STATUSES)
        .filter(Q(push_queued_at__isnull=True) | Q(push_queued_at__lt=stale))
        .update(push_queued_at=now)
    )
    if claimed:
        async_task(PUSH_TASK, connection_id, group=f"push-{connection_id}")
    return bool(claimed)


def push_schedule_clear(*, connection_id: int) -> None:
    """Let the next change queue a new push (called when a push starts)."""
    CrmConnection.objects.filter(pk=connection_id).update(push_queued_at=None)


MAX_RETRY_DELAY = 3600  # seconds: a long CRM outage is retried hourly, never given up on


def push_retry_delay(*, attempts: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retrying: the CRM's Retry-After when given, else exponential backoff with jitter."""
    if retry_after:
        return retry_after
    return min(2 ** min(attempts, 16) * 15, MAX_RETRY_DELAY) * random.uniform(0.5, 1.5)


def push_retry_schedule(*, connection_id: int, delay: float) -> None:
    """Queue one push for later through a django-q2 schedule (one per connection, the latest wins)."""
    from syncapp.services.schedules import schedule_once_upsert

    schedule_once_upsert(
        name=f"contactsync-push-retry-{connection_id}", func=PUSH_TASK, args=(connection_id,), delay=delay
    )


def outbox_follow_up(*, connection: CrmConnection, failed: bool, retry_after: float | None = None) -> None:
    """After a run, queue what it left: after a backoff if it failed or rows failed, else at once."""
    pending = OutboxEntry.objects.filter(connection=connection)
    attempts = pending.aggregate(most=Max("attempts"))["most"]
    if attempts is None:
        return
    if not failed and pending.filter(attempts=0).exists():
        push_schedule(connection_id=connection.pk)
        return
    # A failed run leaves untried rows too; they wait out the backoff with the rest.
    delay = push_retry_delay(attempts=max(attempts, 1), retry_after=retry_after)
    push_retry_schedule(connection_id=connection.pk, delay=delay)
