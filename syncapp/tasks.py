"""django-q2 entry points: load by id, call a service. No logic here."""

import logging

from django.conf import settings

from syncapp.exceptions import ConnectionInactiveError, SyncAlreadyRunningError
from syncapp.models import CrmConnection, SyncRun
from syncapp.selectors.connections import connection_full_sync_due
from syncapp.services.outbox import push_retry_delay, push_retry_schedule, push_schedule_clear
from syncapp.services.suppressions import crm_records_archive as crm_records_archive_service
from syncapp.services.sync import connection_slice_queue, connection_slice_retry
from syncapp.services.sync import connection_sync as connection_sync_service
from syncapp.services.webhooks import webhook_events_process as webhook_events_process_service

logger = logging.getLogger(__name__)


def connection_sync(connection_id: int, trigger: str = SyncRun.Trigger.SCHEDULED, full: bool = False) -> int | None:
    """Run one slice of a sync; a long one queues its continuation (``full``: start or resume the listing).

    A listing's continuation that finds the listing completed meanwhile (by ``manage.py sync``, say)
    reads only what changed, instead of listing everything again.
    """
    connection = CrmConnection.objects.get(pk=connection_id)
    full = full and bool(connection.listing_page or connection_full_sync_due(connection=connection))
    try:
        return connection_sync_service(
            connection=connection, trigger=trigger, full=full, slice_pages=settings.SYNC_SLICE_PAGES
        ).pk
    except SyncAlreadyRunningError:
        logger.info("connection %s: a sync is already running; this %s run skips", connection_id, trigger)
        if trigger == SyncRun.Trigger.PUSH:
            # This task may hold the push-queued flag: release it and come back after the running sync.
            push_schedule_clear(connection_id=connection_id)
            push_retry_schedule(connection_id=connection_id, delay=push_retry_delay(attempts=1))
        elif full:
            connection_slice_retry(connection_id=connection_id, trigger=trigger, full=full)
    except ConnectionInactiveError as exc:
        logger.info("connection %s: %s", connection_id, exc)
        push_schedule_clear(connection_id=connection_id)  # so edits can queue a push once it is active
        # The listing's chain stops here; a poll once the connection syncs again resumes it.
        CrmConnection.objects.filter(pk=connection_id).update(slice_queued_at=None)
    return None


def connection_poll(connection_id: int) -> int | None:
    """The schedule's entry point: inbox events whose task was lost first, then the incremental read.

    A full listing that is due goes to the bulk cluster in slices; the poll still reads what
    changed, unless the connection never synced (the listing reads all of that).
    """
    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:  # deleted since the schedule was made; `schedule_syncs` removes the schedule
        logger.info("connection %s no longer exists; nothing to poll", connection_id)
        return None
    webhook_events_process_service(connection=connection)
    if connection_full_sync_due(connection=connection):
        connection_slice_queue(connection=connection, trigger=SyncRun.Trigger.SCHEDULED, full=True, start=True)
        if not connection.sync_cursor:
            return None
    return connection_sync(connection_id, trigger=SyncRun.Trigger.SCHEDULED)


def connection_push(connection_id: int) -> int | None:
    return connection_sync(connection_id, trigger=SyncRun.Trigger.PUSH)


def webhook_events_process(connection_id: int) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return webhook_events_process_service(connection=connection)


def crm_records_archive(connection_id: int, remote_ids: list[str]) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return crm_records_archive_service(connection=connection, remote_ids=remote_ids)
