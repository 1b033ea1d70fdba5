"""What a queued sync or poll does when a worker runs it: a slice of the sync, or a later try when busy."""

from __future__ import annotations

import logging

from django.conf import settings

from syncapp.exceptions import ConnectionInactiveError, SyncAlreadyRunningError
from syncapp.models import CrmConnection, SyncRun
from syncapp.selectors.connections import connection_full_sync_due
from syncapp.services.outbox import push_retry_delay, push_retry_schedule, push_schedule_clear
from syncapp.services.sync import connection_slice_queue, connection_slice_retry, connection_sync
from syncapp.services.webhooks import webhook_events_process

logger = logging.getLogger(__name__)


def queued_sync_run(*, connection: CrmConnection, trigger: str, full: bool) -> SyncRun | None:
    """Run one slice of a sync; a long one queues its continuation (``full``: start or resume the listing).

    A listing's continuation that finds the listing completed meanwhile (by ``manage.py sync``, say)
    reads only what changed, instead of listing everything again. A sync that finds another one of
    its connection running comes back later: a push after a backoff, a listing's slice shortly.
    """
    full = full and bool(connection.listing_page or connection_full_sync_due(connection=connection))
    try:
        return connection_sync(connection=connection, trigger=trigger, full=full, slice_pages=settings.SYNC_SLICE_PAGES)
    except SyncAlreadyRunningError:
        logger.info("connection %s: a sync is already running; this %s run skips", connection.pk, trigger)
        if trigger == SyncRun.Trigger.PUSH:
            # This task may hold the push-queued flag: release it and come back after the running sync.
            push_schedule_clear(connection_id=connection.pk)
            push_retry_schedule(connection_id=connection.pk, delay=push_retry_delay(attempts=1))
        elif full:
            connection_slice_retry(connection_id=connection.pk, trigger=trigger, full=full)
    except ConnectionInactiveError as exc:
        logger.info("connection %s: %s", connection.pk, exc)
        push_schedule_clear(connection_id=connection.pk)  # so edits can queue a push once it is active
        # The listing's chain stops here; a poll once the connection syncs again resumes it.
        CrmConnection.objects.filter(pk=connection.pk).update(slice_queued_at=None)
    return None


def queued_poll_run(*, connection: CrmConnection) -> SyncRun | None:
    """The schedule's poll: inbox events whose task was lost first, then the incremental read.

    A full listing that is due goes to the bulk cluster in slices; the poll still reads what
    changed, unless the connection never synced (the listing reads all of that).
    """
    webhook_events_process(connection=connection)
    if connection_full_sync_due(connection=connection):
        connection_slice_queue(connection=connection, trigger=SyncRun.Trigger.SCHEDULED, full=True, start=True)
        if not connection.sync_cursor:
            return None
    return queued_sync_run(connection=connection, trigger=SyncRun.Trigger.SCHEDULED, full=False)
