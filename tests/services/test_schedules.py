"""Poll schedules follow connections; retry schedules stay one per name however many workers reschedule them."""

import ast
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from syncapp.models import CrmConnection, SyncRun
from syncapp.services.outbox import PUSH_TASK, push_retry_schedule
from syncapp.services.schedules import connection_schedule_update, schedule_once_upsert, schedules_sync
from syncapp.services.webhooks import webhook_process_schedule
from tests.helpers import make_connection, queued_tasks

pytestmark = pytest.mark.django_db


def test_a_new_connection_is_polled_every_default_sync_interval(tenant, settings):
    settings.DEFAULT_SYNC_INTERVAL = 600_000
    connection, _ = make_connection(tenant)
    schedule = Schedule.objects.get(name=f"contactsync-poll-{connection.pk}")
    assert (schedule.func, schedule.args, schedule.schedule_type, schedule.minutes) == (
        "syncapp.tasks.connection_poll", f"({connection.pk},)", Schedule.MINUTES, 10,
    )  # fmt: skip


def test_hubspot_connections_poll_on_their_own_safety_net_interval(tenant, settings):
    from syncapp.services.connections import connection_create

    settings.HUBSPOT_POLL_INTERVAL = 3_600_000
    connection = connection_create(tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": "t"})
    assert Schedule.objects.get(name=f"contactsync-poll-{connection.pk}").minutes == 60


def test_pausing_removes_the_schedule_and_resuming_brings_it_back_once(tenant):
    connection, _ = make_connection(tenant)
    connection.status = CrmConnection.Status.PAUSED
    connection_schedule_update(connection=connection)
    assert not Schedule.objects.filter(name__startswith="contactsync-poll-").exists()
    connection.status = CrmConnection.Status.ACTIVE
    connection_schedule_update(connection=connection)
    connection_schedule_update(connection=connection)
    assert Schedule.objects.filter(name=f"contactsync-poll-{connection.pk}").count() == 1


def test_schedule_syncs_command_is_idempotent_and_drops_orphans(tenant):
    connection, _ = make_connection(tenant)
    Schedule.objects.create(name="contactsync-poll-999999", func="syncapp.tasks.connection_sync", args="(999999,)")
    assert schedules_sync() == (1, 1)
    call_command("schedule_syncs")
    assert list(Schedule.objects.values_list("name", flat=True)) == [f"contactsync-poll-{connection.pk}"]


def test_a_poll_hands_a_due_listing_to_the_bulk_queue_and_reads_changes_itself(tenant, settings, broker):
    from datetime import timedelta

    from syncapp import tasks

    settings.FULL_SYNC_INTERVAL = 3_600_000
    connection, crm = make_connection(tenant)

    def poll():
        crm.calls.clear()
        tasks.connection_poll(connection.pk)
        listings = [task for task in queued_tasks(broker) if task["kwargs"].get("full")]
        return sorted(set(crm.calls) & {"list_all", "list_changed"}), len(listings)

    assert poll() == ([], 1)  # never synced: the queued listing reads everything
    assert poll() == ([], 0)  # that listing still waits: no second one
    tasks.connection_sync(connection.pk, full=True)
    assert "list_all" in crm.calls
    assert poll() == (["list_changed"], 0)
    CrmConnection.objects.filter(pk=connection.pk).update(last_full_sync_at=timezone.now() - timedelta(hours=2))
    assert poll() == (["list_changed"], 1)


def _reschedule_concurrently(reschedule, delays):
    """Call ``reschedule(delay)`` from one thread per delay, all released at once; return what they raised."""
    from django.db import connection as db_connection

    start = threading.Barrier(len(delays))

    def worker(delay):
        start.wait()
        try:
            reschedule(delay)
        finally:
            db_connection.close()  # each thread has its own database connection

    with ThreadPoolExecutor(len(delays)) as pool:
        futures = [pool.submit(worker, delay) for delay in delays]
    return [future.exception() for future in futures if future.exception()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("name", "reschedule"),
    [
        ("contactsync-push-retry-7", lambda delay: push_retry_schedule(connection_id=7, delay=delay)),
        ("contactsync-webhooks-retry-7", lambda delay: webhook_process_schedule(connection_id=7, delay=delay)),
    ],
)
def test_workers_rescheduling_one_retry_at_once_never_fail_and_leave_one_schedule(name, reschedule):
    """Two workers and webhooks arriving during a long sync reschedule the same retry all the time."""
    delays = [1000 * (i + 1) for i in range(8)]
    for _ in range(10):
        assert _reschedule_concurrently(reschedule, delays) == []
        (run_at,) = Schedule.objects.filter(name=name).values_list("next_run", flat=True)
        assert round((run_at - timezone.now()).total_seconds() / 1000) * 1000 in delays
    reschedule(60)
    (retry,) = Schedule.objects.filter(name=name)
    assert (retry.args, retry.schedule_type) == ("(7,)", Schedule.ONCE)
    assert 55 < (retry.next_run - timezone.now()).total_seconds() <= 60  # the latest request wins


def test_rescheduling_merges_the_duplicates_an_earlier_race_left():
    for _ in range(2):
        Schedule.objects.create(name="contactsync-push-retry-7", func=PUSH_TASK, args="(7,)")
    push_retry_schedule(connection_id=7, delay=30)
    assert Schedule.objects.filter(name="contactsync-push-retry-7").count() == 1


def test_a_schedules_arguments_are_stored_as_literals_the_scheduler_reads_back_or_refused():
    schedule = schedule_once_upsert(
        name="contactsync-test", func="syncapp.tasks.connection_sync", args=(7,), delay=0,
        kwargs={"trigger": SyncRun.Trigger.PUSH, "full": False},
    )  # fmt: skip
    assert (ast.literal_eval(schedule.args), ast.literal_eval(schedule.kwargs)) == (
        (7,),
        {"trigger": "push", "full": False},
    )

    with pytest.raises(ValueError, match="malformed"):
        schedule_once_upsert(
            name="contactsync-test", func="syncapp.tasks.connection_sync", args=(7,), delay=0,
            kwargs={"since": timezone.now()},
        )  # fmt: skip
