"""django-q2 entry points: load by id, call a service. No logic here."""

import logging

from syncapp.exceptions import ConnectionInactiveError, SyncAlreadyRunningError
from syncapp.models import CrmConnection, SyncRun
from syncapp.selectors.connections import connection_full_sync_due
from syncapp.services.outbox import push_retry_delay, push_retry_schedule, push_schedule_clear
from syncapp.services.suppressions import crm_records_archive as crm_records_archive_service
from syncapp.services.sync import connection_sync as connection_sync_service
from syncapp.services.webhooks import webhook_events_process as webhook_events_process_service

logger = logging.getLogger(__name__)


def connection_sync(connection_id: int, trigger: str = SyncRun.Trigger.SCHEDULED, full: bool = False) -> int | None:
    connection = CrmConnection.objects.get(pk=connection_id)
    try:
        return connection_sync_service(connection=connection, trigger=trigger, full=full).pk
    except SyncAlreadyRunningError:
        logger.info("connection %s: a sync is already running; this %s run skips", connection_id, trigger)
        if trigger == SyncRun.Trigger.PUSH:
            # This task may hold the push-queued flag: release it and come back after the running sync.
            push_schedule_clear(connection_id=connection_id)
            push_retry_schedule(connection_id=connection_id, delay=push_retry_delay(attempts=1))
    except ConnectionInactiveError as exc:
        logger.info("connection %s: %s", connection_id, exc)
        push_schedule_clear(connection_id=connection_id)  # so edits can queue a push once it is active
    return None


def connection_poll(connection_id: int) -> int | None:
    """The schedule's entry point: inbox events whose task was lost first, then the incremental read."""
    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:  # deleted since the schedule was made; `schedule_syncs` removes the schedule
        logger.info("connection %s no longer exists; nothing to poll", connection_id)
        return None
    webhook_events_process_service(connection=connection)
    return connection_sync(
        connection_id, trigger=SyncRun.Trigger.SCHEDULED, full=connection_full_sync_due(connection=connection)
    )


def connection_push(connection_id: int) -> int | None:
    return connection_sync(connection_id, trigger=SyncRun.Trigger.PUSH)


def webhook_events_process(connection_id: int) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return webhook_events_process_service(connection=connection)


def crm_records_archive(connection_id: int, remote_ids: list[str]) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return crm_records_archive_service(connection=connection, remote_ids=remote_ids)
