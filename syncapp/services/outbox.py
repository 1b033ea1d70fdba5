"""The outbox: app-side changes waiting to reach each connection."""

from django.core.cache import cache
from django.db import transaction

from syncapp.models import Contact, CrmConnection, OutboxEntry


def _push_queued_key(connection_id: int) -> str:
    return f"syncapp:push-queued:{connection_id}"


def outbox_enqueue(*, contact: Contact, exclude_connection_id: int | None = None) -> list[int]:
    """Record that ``contact`` changed for every active connection of its tenant but one.

    Must run inside the transaction that changed the contact, so the change and its outbox rows
    commit together. A push task is queued once the transaction commits.
    """
    connection_ids = list(
        CrmConnection.objects.filter(tenant_id=contact.tenant_id, status__in=CrmConnection.LIVE_STATUSES)
        .exclude(pk=exclude_connection_id)
        .values_list("pk", flat=True)
    )
    OutboxEntry.objects.bulk_create([OutboxEntry(connection_id=pk, contact=contact) for pk in connection_ids])
    for connection_id in connection_ids:
        transaction.on_commit(lambda pk=connection_id: push_schedule(connection_id=pk))
    return connection_ids


def push_schedule(*, connection_id: int) -> None:
    """Queue one push task for a connection, unless one is already waiting."""
    from django_q.tasks import async_task

    # One waiting push drains everything, so a burst of edits queues a single task.
    if cache.add(_push_queued_key(connection_id), True, timeout=60):
        async_task("syncapp.tasks.connection_push", connection_id, group=f"push-{connection_id}")


def push_schedule_clear(*, connection_id: int) -> None:
    """Let the next change queue a new push (called when a push starts)."""
    cache.delete(_push_queued_key(connection_id))
