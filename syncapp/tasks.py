"""django-q2 entry points: load by id, call a service. No logic here."""

import logging

from syncapp.exceptions import ConnectionInactiveError, SyncAlreadyRunningError
from syncapp.models import CrmConnection, SyncRun
from syncapp.services.sync import connection_sync as connection_sync_service

logger = logging.getLogger(__name__)


def connection_sync(connection_id: int, trigger: str = SyncRun.Trigger.SCHEDULED, full: bool = False) -> int | None:
    connection = CrmConnection.objects.get(pk=connection_id)
    try:
        return connection_sync_service(connection=connection, trigger=trigger, full=full).pk
    except SyncAlreadyRunningError:
        # The running sync queues a follow-up push for anything it did not drain.
        logger.info("connection %s: a sync is already running, skipping this one", connection_id)
    except ConnectionInactiveError as exc:
        logger.info("connection %s: %s", connection_id, exc)
    return None


def connection_push(connection_id: int) -> int | None:
    return connection_sync(connection_id, trigger=SyncRun.Trigger.PUSH)
