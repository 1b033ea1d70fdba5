"""django-q2 entry points: load by id, call a service. No logic here."""

import logging

from syncapp.models import CrmConnection, SyncRun
from syncapp.services.queued_runs import queued_poll_run, queued_sync_run
from syncapp.services.suppressions import crm_records_archive as crm_records_archive_service
from syncapp.services.webhooks import webhook_events_process as webhook_events_process_service

logger = logging.getLogger(__name__)


def connection_sync(connection_id: int, trigger: str = SyncRun.Trigger.SCHEDULED, full: bool = False) -> int | None:
    run = queued_sync_run(connection=CrmConnection.objects.get(pk=connection_id), trigger=trigger, full=full)
    return run.pk if run else None


def connection_poll(connection_id: int) -> int | None:
    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:  # deleted since the schedule was made; `schedule_syncs` removes the schedule
        logger.info("connection %s no longer exists; nothing to poll", connection_id)
        return None
    run = queued_poll_run(connection=connection)
    return run.pk if run else None


def connection_push(connection_id: int) -> int | None:
    return connection_sync(connection_id, trigger=SyncRun.Trigger.PUSH)


def webhook_events_process(connection_id: int) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return webhook_events_process_service(connection=connection)


def crm_records_archive(connection_id: int, remote_ids: list[str]) -> int:
    connection = CrmConnection.objects.get(pk=connection_id)
    return crm_records_archive_service(connection=connection, remote_ids=remote_ids)
