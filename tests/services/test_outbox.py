"""Outbox scheduling: one queued push per burst, follow-ups after a run, paused connections; the outbox row
commits with the change or not at all."""

import pytest
from django.db import DatabaseError, transaction
from django_q.models import Schedule

from syncapp.exceptions import ConnectionInactiveError
from syncapp.models import Contact, CrmConnection, OutboxEntry, SyncRun
from syncapp.services.contacts import contact_create, contact_delete, contact_restore, contact_update
from syncapp.services.outbox import push_retry_delay, push_schedule
from syncapp.services.sync import connection_sync
from tests.helpers import queued_tasks

pytestmark = pytest.mark.django_db


def test_a_burst_of_edits_queues_one_push_on_the_broker(
    tenant, connection_and_crm, broker, django_capture_on_commit_callbacks
):
    connection, _ = connection_and_crm
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for n in range(3):
            contact_create(tenant=tenant, values={"email": f"b{n}@example.com"})

    (task,) = queued_tasks(broker)
    assert (task["func"], task["args"]) == ("syncapp.tasks.connection_push", (connection.pk,))
    assert OutboxEntry.objects.filter(connection=connection).count() == 3


def test_a_push_starting_lets_the_next_edit_queue_again(tenant, connection_and_crm, broker):
    connection, _ = connection_and_crm
    assert push_schedule(connection_id=connection.pk)
    assert not push_schedule(connection_id=connection.pk)
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    assert push_schedule(connection_id=connection.pk)
    assert len(queued_tasks(broker)) == 2


def test_a_failed_push_is_retried_later_with_backoff(tenant, connection_and_crm, broker):
    connection, crm = connection_and_crm
    contact_create(tenant=tenant, values={"email": "r@example.com"})
    crm.failures = ["before"]

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert run.status == SyncRun.Status.FAILED
    retry = Schedule.objects.get(name=f"contactsync-push-retry-{connection.pk}")
    assert retry.func == "syncapp.tasks.connection_push" and retry.next_run > run.finished_at
    assert queued_tasks(broker) == []


def test_backoff_grows_with_attempts_and_honours_retry_after():
    assert 15 <= push_retry_delay(attempts=1) <= 45
    assert 60 <= push_retry_delay(attempts=3) <= 180
    assert push_retry_delay(attempts=3, retry_after=7) == 7


def test_a_paused_connection_collects_changes_but_does_not_sync(tenant, connection_and_crm, broker):
    connection, crm = connection_and_crm
    connection.status = CrmConnection.Status.PAUSED
    connection.save()
    contact_create(tenant=tenant, values={"email": "p@example.com"})

    with pytest.raises(ConnectionInactiveError, match="paused"):
        connection_sync(connection=connection)
    assert not push_schedule(connection_id=connection.pk)
    assert OutboxEntry.objects.filter(connection=connection).count() == 1

    connection.status = CrmConnection.Status.ACTIVE
    connection.save()
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    assert len(crm.live()) == 1


def test_a_push_task_that_finds_a_sync_running_comes_back_later(tenant, connection_and_crm, broker):
    from syncapp.services.connections import connection_lock
    from syncapp.tasks import connection_push

    connection, crm = connection_and_crm
    contact_create(tenant=tenant, values={"email": "busy@example.com"})
    assert push_schedule(connection_id=connection.pk)

    with connection_lock(connection):
        assert connection_push(connection.pk) is None

    connection.refresh_from_db()
    assert connection.push_queued_at is None
    assert Schedule.objects.filter(name=f"contactsync-push-retry-{connection.pk}").exists()
    assert crm.live() == {}


def test_a_failed_run_leaves_even_untried_rows_to_the_backoff(tenant, connection_and_crm, broker, settings):
    connection, crm = connection_and_crm
    settings.SYNC_BATCH_SIZE = 1
    for n in range(2):
        contact_create(tenant=tenant, values={"email": f"u{n}@example.com"})
    crm.failures = ["before"]

    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert sorted(OutboxEntry.objects.values_list("attempts", flat=True)) == [0, 1]
    assert queued_tasks(broker) == []
    assert Schedule.objects.filter(name=f"contactsync-push-retry-{connection.pk}").count() == 1


# The change and its outbox row commit together ----------------------------------------------------


@pytest.fixture
def outbox_write_fails(monkeypatch):
    """Make the outbox insert fail, after the contact row was written in the same transaction."""

    def fail(objs, **options):
        raise DatabaseError("outbox insert failed")

    return lambda: monkeypatch.setattr(OutboxEntry.objects, "bulk_create", fail)


def test_a_create_whose_outbox_row_fails_leaves_no_contact(tenant, connection_and_crm, outbox_write_fails):
    outbox_write_fails()
    with pytest.raises(DatabaseError, match="outbox"):
        contact_create(tenant=tenant, values={"email": "new@example.com", "first_name": "Ada"})
    assert not Contact.objects.exists()


def test_an_update_whose_outbox_row_fails_leaves_the_contact_unchanged(tenant, connection_and_crm, outbox_write_fails):
    contact = contact_create(tenant=tenant, values={"email": "u@example.com", "first_name": "Ada"})
    outbox_write_fails()
    with pytest.raises(DatabaseError, match="outbox"):
        contact_update(contact=contact, values={"first_name": "Augusta", "email": "v@example.com"})
    contact.refresh_from_db()
    assert (contact.email, contact.first_name) == ("u@example.com", "Ada")
    assert OutboxEntry.objects.filter(contact=contact).count() == 1  # the create's row only


def test_a_delete_whose_outbox_row_fails_leaves_the_contact_live(tenant, connection_and_crm, outbox_write_fails):
    contact = contact_create(tenant=tenant, values={"email": "d@example.com"})
    outbox_write_fails()
    with pytest.raises(DatabaseError, match="outbox"):
        contact_delete(contact=contact)
    contact.refresh_from_db()
    assert contact.deleted_at is None


def test_a_restore_whose_outbox_row_fails_leaves_the_contact_deleted(tenant, connection_and_crm, outbox_write_fails):
    contact = contact_delete(contact=contact_create(tenant=tenant, values={"email": "r@example.com"}))
    outbox_write_fails()
    with pytest.raises(DatabaseError, match="outbox"):
        contact_restore(contact=contact, values={"first_name": "Ada"})
    contact.refresh_from_db()
    assert contact.deleted_at is not None and contact.first_name == ""
