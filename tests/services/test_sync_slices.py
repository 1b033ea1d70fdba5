"""Long syncs in slices: a bounded number of pages per task, continued on the bulk cluster from a checkpoint."""

import ast
import math

import pytest
from django_q.brokers import get_broker

from syncapp import tasks
from syncapp.models import Contact, CrmConnection, ListedRecord, SyncRun
from syncapp.services.contacts import contact_create
from syncapp.services.sync import connection_sync
from tests.helpers import make_connection, queued_tasks

pytestmark = pytest.mark.django_db


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the sync catches it, so no run or checkpoint is written after it."""


@pytest.fixture
def bulk(settings):
    """The bulk cluster's queue, emptied; the default queue is emptied too."""
    settings.BULK_CLUSTER = "bulk"
    settings.SYNC_SLICE_PAGES = 2
    queues = get_broker("bulk"), get_broker()
    for queue in queues:
        queue.purge_queue()
    yield queues[0]
    for queue in queues:
        queue.purge_queue()


def run_chain(connection_id: int, queue, **first) -> list[SyncRun]:
    """Run a sync task, then each continuation it queues, as the bulk cluster would; return the runs."""
    runs, pending = [], [{"args": (connection_id,), "kwargs": first}]
    while pending:
        task = pending.pop(0)
        runs.append(SyncRun.objects.get(pk=tasks.connection_sync(*task["args"], **task["kwargs"])))
        pending += queued_tasks(queue)
    return runs


def test_a_listing_of_n_pages_takes_ceil_n_over_k_tasks_each_queueing_the_next_on_the_bulk_cluster(tenant, bulk):
    connection, crm = make_connection(tenant)  # 3 records a page
    for number in range(14):
        crm.user_create(email=f"c{number}@example.com")
    pages = math.ceil(14 / crm.page_size)

    runs = run_chain(connection.pk, bulk, full=True)

    assert len(runs) == math.ceil(pages / 2) == 3
    assert [run.continues for run in runs] == [True, True, False]
    assert crm.call_counts()["list_all"] == pages  # every page read once, none again
    assert sum(run.created for run in runs) == Contact.objects.filter(tenant=tenant).count() == 14
    connection.refresh_from_db()
    assert connection.last_full_sync_at is not None
    assert (connection.listing_page, connection.slice_queued_at) == ("", None)
    assert not ListedRecord.objects.exists()
    assert not queued_tasks(get_broker())  # nothing went to the default cluster


def test_a_crm_deletion_removes_the_contact_only_once_the_last_slice_has_listed_everything(tenant, bulk):
    connection, crm = make_connection(tenant)
    ids = [crm.user_create(email=f"c{number}@example.com") for number in range(12)]
    connection_sync(connection=connection, full=True)
    crm.user_delete(ids[0])  # 11 live records: 4 pages, 2 slices
    CrmConnection.objects.filter(pk=connection.pk).update(last_full_sync_at=None)  # the next listing is due

    first = SyncRun.objects.get(pk=tasks.connection_sync(connection.pk, full=True))
    assert first.continues and first.deleted == 0
    assert Contact.objects.filter(email="c0@example.com", deleted_at__isnull=True).exists()
    assert ListedRecord.objects.filter(connection=connection).count() == 6  # kept for the deletion check
    (continuation,) = queued_tasks(bulk)
    runs = run_chain(connection.pk, bulk, **continuation["kwargs"])

    assert [run.deleted for run in runs] == [1]
    assert not Contact.objects.filter(email="c0@example.com", deleted_at__isnull=True).exists()
    assert Contact.objects.filter(deleted_at__isnull=True).count() == 11


def test_app_contacts_unmatched_by_any_slice_are_created_in_the_crm_once_and_matched_ones_linked(tenant, bulk):
    connection, crm = make_connection(tenant)
    for number in range(9):
        crm.user_create(email=f"c{number}@example.com")
    contact_create(tenant=tenant, values={"email": "C1@example.com", "first_name": "Matched on page one"})
    contact_create(tenant=tenant, values={"email": "app-only@example.com"})

    run_chain(connection.pk, bulk, full=True)

    emails = sorted(record["email"].lower() for record in crm.live().values())
    assert emails == sorted([f"c{number}@example.com" for number in range(9)] + ["app-only@example.com"])
    assert Contact.objects.filter(tenant=tenant).count() == 10


def test_a_worker_killed_mid_slice_leaves_a_checkpoint_the_next_run_resumes_from(tenant, bulk):
    connection, crm = make_connection(tenant)
    for number in range(15):
        crm.user_create(email=f"c{number}@example.com")  # 5 pages

    def kill():
        raise WorkerKilled

    first = SyncRun.objects.get(pk=tasks.connection_sync(connection.pk, full=True))
    (continuation,) = queued_tasks(bulk)
    crm.after_listing_page[1] = kill  # the second slice dies after reading its first page
    with pytest.raises(WorkerKilled):
        tasks.connection_sync(*continuation["args"], **continuation["kwargs"])
    killed = SyncRun.objects.get(status=SyncRun.Status.RUNNING)
    crm.calls.clear()

    # The continuation is lost with its worker; the next poll finds the chain stalled and starts it again.
    CrmConnection.objects.filter(pk=connection.pk).update(slice_queued_at=None)
    tasks.connection_poll(connection.pk)
    runs = run_chain(connection.pk, bulk, **queued_tasks(bulk)[0]["kwargs"])

    assert first.continues
    killed.refresh_from_db()
    assert killed.status == SyncRun.Status.FAILED
    assert crm.call_counts()["list_all"] == 3  # pages 3 to 5: the checkpoint after page 2 held
    assert runs[-1].status == SyncRun.Status.SUCCEEDED and not runs[-1].continues
    assert Contact.objects.filter(tenant=tenant).count() == 15


def test_a_slice_that_finds_its_connection_busy_tries_again_on_the_bulk_cluster_shortly(tenant, bulk):
    from django_q.models import Schedule

    from syncapp.services.connections import connection_lock

    connection, crm = make_connection(tenant)
    with connection_lock(connection):
        assert tasks.connection_sync(connection.pk, full=True) is None
    schedule = Schedule.objects.get(name=f"contactsync-slice-{connection.pk}")
    assert (schedule.func, schedule.cluster) == ("syncapp.tasks.connection_sync", "bulk")
    # django-q2's scheduler reads kwargs with ast.literal_eval; what it cannot read, the task runs without,
    # and the retry of a listing ran as a plain incremental sync: the listing stalled until a poll restarted it.
    kwargs = ast.literal_eval(schedule.kwargs)
    assert kwargs == {"trigger": "scheduled", "full": True}

    tasks.connection_sync(*ast.literal_eval(schedule.args), **kwargs)

    connection.refresh_from_db()
    assert connection.last_full_sync_at is not None  # the listing ran, not an incremental read


def test_a_long_read_of_changes_continues_on_the_bulk_cluster_and_scans_deletions_at_its_end(tenant, bulk):
    connection, crm = make_connection(tenant)
    connection_sync(connection=connection, full=True)
    for number in range(12):
        crm.user_create(email=f"c{number}@example.com")

    runs = run_chain(connection.pk, bulk)

    assert [run.continues for run in runs][:2] == [True, True]
    assert not runs[-1].continues
    assert Contact.objects.filter(tenant=tenant).count() == 12
    assert all(run.trigger == SyncRun.Trigger.SCHEDULED for run in runs)


def test_notification_and_push_tasks_stay_on_the_default_cluster(tenant, bulk, django_capture_on_commit_callbacks):
    connection, crm = make_connection(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        contact_create(tenant=tenant, values={"email": "a@example.com"})
    (push,) = queued_tasks(get_broker())
    assert push["func"] == "syncapp.tasks.connection_push"
    assert "cluster" not in push
    assert not queued_tasks(bulk)


def test_without_a_bulk_cluster_continuations_run_on_the_default_one(tenant, settings, broker):
    settings.SYNC_SLICE_PAGES = 1
    connection, crm = make_connection(tenant)
    for number in range(6):
        crm.user_create(email=f"c{number}@example.com")

    runs = run_chain(connection.pk, broker, full=True)

    assert len(runs) == 2
    assert Contact.objects.filter(tenant=tenant).count() == 6
