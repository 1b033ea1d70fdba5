"""Regression tests for the interleavings a review found: each one failed before its fix."""

import pytest
from django.db import DataError
from django.utils import timezone
from django_q.models import Schedule

from syncapp.exceptions import TransientProviderError
from syncapp.models import Contact, ContactLink, ExcludedRecord, OutboxEntry, SyncConflict, SyncRun
from syncapp.services import contacts as contacts_module
from syncapp.services.connections import ConnectionLock
from syncapp.services.contacts import contact_create, contact_update
from syncapp.services.sync import _LinkWrites, connection_sync
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


def sync(connection, **kwargs):
    run = connection_sync(connection=connection, **kwargs)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return run


def during(crm, call_name, action):
    """Run ``action`` while the CRM is inside the named call (a person working meanwhile)."""
    original = type(crm).call

    def call(self, name, effect):
        if name == call_name:
            action()
        return original(self, name, effect)

    return call, original


def test_a_webhook_for_a_duplicate_never_pushes_over_an_unread_crm_edit(tenant):
    connection, crm = make_connection(tenant, unique_emails=False)
    contact = contact_create(tenant=tenant, values={"email": "a@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    crm.user_edit(remote_id, phone="crm")
    contact_update(contact=contact, values={"phone": "app"})
    duplicate = crm.user_create(email="a@example.com")

    sync(connection, remote_ids=[duplicate])
    assert crm.live()[remote_id]["phone"] == "crm"
    sync(connection, remote_ids=[remote_id])

    contact.refresh_from_db()
    conflict = SyncConflict.objects.get()
    assert (conflict.local_value, conflict.remote_value, contact.phone) == ("app", "crm", "crm")


def test_a_person_editing_during_the_crm_writes_keeps_the_edit_and_gets_a_conflict(tenant):
    connection, crm = make_connection(tenant)
    x = contact_create(tenant=tenant, values={"email": "x@example.com", "phone": "0"})
    y = contact_create(tenant=tenant, values={"email": "y@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    ids = {record["email"]: rid for rid, record in crm.live().items()}
    crm.user_edit(ids["x@example.com"], phone="crm")
    contact_update(contact=y, values={"job_title": "t"})
    patched, original = during(
        crm, "update_many", lambda: contact_update(contact=Contact.objects.get(pk=x.pk), values={"phone": "app"})
    )
    type(crm).call = patched
    try:
        sync(connection, remote_ids=list(ids.values()))  # its push step then meets the person's edit
    finally:
        type(crm).call = original

    conflict = SyncConflict.objects.get(field="phone")
    assert (conflict.local_value, conflict.remote_value, conflict.winner) == ("app", "crm", "crm")


def test_a_409_pointing_at_a_record_linked_elsewhere_is_an_error_on_the_link_not_a_crash(tenant):
    connection, crm = make_connection(tenant)
    contact_create(tenant=tenant, values={"email": "a@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    b = contact_create(tenant=tenant, values={"email": "b@example.com"})
    crm.user_edit(remote_id, email="b@example.com")  # a CRM user gives a's record b's address
    crm.failures = []

    run = connection_sync(connection=connection, full=True)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert len(crm.live()) == 1
    assert ContactLink.objects.filter(contact=b, remote_id__isnull=False).count() == 0


def test_an_unexpected_error_fails_the_run_instead_of_leaving_it_running(tenant):
    connection, crm = make_connection(tenant)
    contact_create(tenant=tenant, values={"email": "boom@example.com"})

    def explode(self, name, effect):
        raise RuntimeError("adapter bug")

    original = type(crm).call
    type(crm).call = explode
    try:
        run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    finally:
        type(crm).call = original

    assert run.status == SyncRun.Status.FAILED and "(RuntimeError): adapter bug" in run.error
    assert not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()
    assert OutboxEntry.objects.get().attempts == 1


def test_a_long_crm_outage_never_drops_an_app_change(tenant, settings):
    connection, crm = make_connection(tenant)
    contact = contact_create(tenant=tenant, values={"email": "e@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    contact_update(contact=contact, values={"phone": "123"})
    for _ in range(settings.MAX_RETRY_ATTEMPTS + 2):
        crm.failures = ["before"]
        assert connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH).status == SyncRun.Status.FAILED

    sync(connection, trigger=SyncRun.Trigger.PUSH)

    assert crm.live()[remote_id]["phone"] == "123"


def test_restoring_the_crm_value_that_lost_to_the_app_sticks(tenant):
    from syncapp.services.conflicts import conflict_restore

    connection, crm = make_connection(tenant, conflict_strategy="field_priority")
    connection.field_priorities = {"phone": "app"}
    connection.save(update_fields=["field_priorities"])
    contact = contact_create(tenant=tenant, values={"email": "c@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    contact_update(contact=contact, values={"phone": "app"})
    crm.user_edit(remote_id, phone="crm")
    sync(connection)
    conflict = SyncConflict.objects.get()
    assert conflict.winner == "app" and crm.live()[remote_id]["phone"] == "app"

    conflict_restore(conflict=conflict, user=None)
    sync(connection, trigger=SyncRun.Trigger.PUSH)

    contact.refresh_from_db()
    assert contact.phone == crm.live()[remote_id]["phone"] == "crm"


def test_a_full_sync_renews_its_lock_after_every_batch(tenant, settings, monkeypatch):
    connection, crm = make_connection(tenant)
    settings.SYNC_BATCH_SIZE = 1
    for n in range(5):
        contact_create(tenant=tenant, values={"email": f"u{n}@example.com"})
    OutboxEntry.objects.all().delete()
    renewals = []
    monkeypatch.setattr(ConnectionLock, "renew", lambda self: renewals.append(1))

    run = sync(connection, full=True)

    assert run.trigger == SyncRun.Trigger.FULL
    assert len(renewals) >= crm.calls.count("create_many") == 5


def test_fields_the_account_lacks_are_skipped_and_reported(tenant, monkeypatch):
    from tests.fakes import InMemoryAdapter

    connection, crm = make_connection(tenant)
    monkeypatch.setattr(InMemoryAdapter, "unsupported_fields", lambda self: frozenset({"pronouns"}))
    contact_create(tenant=tenant, values={"email": "p@example.com", "pronouns": "they/them", "phone": "1"})

    run = sync(connection, trigger=SyncRun.Trigger.PUSH)

    (record,) = crm.live().values()
    assert (record["phone"], record["pronouns"]) == ("1", "")
    assert run.skipped_fields == "pronouns"

    monkeypatch.undo()  # the field gets set up: the value follows with the next push
    contact_update(contact=Contact.objects.get(), values={"phone": "2"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (record,) = crm.live().values()
    assert (record["phone"], record["pronouns"]) == ("2", "they/them")


def test_a_record_the_crm_keeps_refusing_for_now_backs_off_then_fails_visibly_until_retried(tenant, settings):
    # Issue 12 (review 2): such a record was pushed every 15-45 s forever, its delay never growing.
    from syncapp.services.outbox import outbox_enqueue_links

    connection, crm = make_connection(tenant)
    contact = contact_create(tenant=tenant, values={"email": "busy@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    crm.busy_values = {"locked"}
    contact_update(contact=contact, values={"phone": "locked"})
    retry = Schedule.objects.filter(name=f"contactsync-push-retry-{connection.pk}")

    for refusals in range(1, settings.MAX_RETRY_ATTEMPTS + 1):
        run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
        assert (run.status, run.pending, run.errors, run.updated) == (SyncRun.Status.FAILED, 1, 0, 0)
        assert "try again later" in run.error
        entry = OutboxEntry.objects.get()
        assert entry.record_failures == entry.attempts == refusals
        delay = (retry.get().next_run - timezone.now()).total_seconds()
        assert delay > 2**refusals * 15 * 0.5 - 1, "the backoff grows with the record's own refusals"
        link = ContactLink.objects.get(contact=contact)
        assert link.status == ContactLink.Status.PENDING and "try again later" in link.last_error

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    assert (run.status, run.pending, run.errors) == (SyncRun.Status.SUCCEEDED, 0, 1)
    assert not OutboxEntry.objects.exists(), "no longer pushed on its own"
    link = ContactLink.objects.get(contact=contact)
    assert link.status == ContactLink.Status.ERROR and "try again later" in link.last_error

    crm.busy_values = set()
    assert outbox_enqueue_links(links=[link]) == 1  # the status page's Retry
    run = sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert (run.updated, run.pending, run.errors) == (1, 0, 0)
    assert not OutboxEntry.objects.exists()
    assert ContactLink.objects.get(contact=contact).status == ContactLink.Status.OK
    assert [record["phone"] for record in crm.live().values()] == ["locked"]


def test_creates_a_full_sync_could_not_make_wait_in_the_outbox_for_the_next_incremental_run(tenant):
    # Issue 12: contacts no outbox row held (created before the connection) waited for the next full listing.
    for name in ("ann", "bea", "cy"):
        contact_create(tenant=tenant, values={"email": f"{name}@example.com"})
    connection, crm = make_connection(tenant)
    assert not OutboxEntry.objects.exists()

    def listing_passes(self, name, effect):
        if name == "create_many":  # the listing passes; the create fails, after the client's retries
            raise TransientProviderError("create_many: 503 Service Unavailable", status=503, retry_after=7)
        return effect()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(crm), "call", listing_passes)
        run = connection_sync(connection=connection, full=True)

    assert (run.status, run.pending, run.created, run.errors) == (SyncRun.Status.FAILED, 3, 0, 0)
    assert "503" in run.error
    entries = OutboxEntry.objects.filter(connection=connection)
    assert sorted(entry.contact.email for entry in entries) == ["ann@example.com", "bea@example.com", "cy@example.com"]
    assert {entry.record_failures for entry in entries} == {0}
    assert crm.live() == {}
    retry = Schedule.objects.get(name=f"contactsync-push-retry-{connection.pk}")
    assert 6 < (retry.next_run - timezone.now()).total_seconds() <= 7, "the CRM's Retry-After is honoured"

    run = sync(connection)
    assert run.created == 3
    assert sorted(record["email"] for record in crm.live().values()) == [
        f"{n}@example.com" for n in ("ann", "bea", "cy")
    ]
    assert not OutboxEntry.objects.exists()


def test_a_duplicate_deleted_in_the_crm_is_no_longer_listed(tenant):
    from syncapp.models import ExcludedRecord

    connection, crm = make_connection(tenant, unique_emails=False)
    first = crm.user_create(email="d@example.com")
    second = crm.user_create(email="d@example.com")
    sync(connection, full=True)
    assert ExcludedRecord.objects.get().record_id == second

    crm.user_delete(second)
    sync(connection)

    assert not ExcludedRecord.objects.exists()
    assert ContactLink.objects.get().remote_id == first


def spent_quota():
    from datetime import timedelta

    from django.utils import timezone

    from syncapp.exceptions import QuotaExhaustedError

    return QuotaExhaustedError("The CRM's daily limit is spent.", until=timezone.now() + timedelta(hours=1))


def the_next_day(connection):
    from django.utils import timezone

    type(connection).objects.filter(pk=connection.pk).update(rate_limited_until=timezone.now())
    connection.refresh_from_db()


def test_a_write_call_stopped_partway_applies_what_was_written_and_keeps_the_rest_queued(tenant, monkeypatch):
    from syncapp.exceptions import PartialWriteError
    from tests.fakes import InMemoryAdapter

    connection, crm = make_connection(tenant)
    for name in ("ann", "bea", "cy"):
        contact_create(tenant=tenant, values={"email": f"{name}@example.com"})
    original = InMemoryAdapter.create_many

    def first_then_quota(self, records):
        written = original(self, records[:1])
        raise PartialWriteError(written, spent_quota())

    monkeypatch.setattr(InMemoryAdapter, "create_many", first_then_quota)

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert (run.status, run.error, run.errors) == (SyncRun.Status.FAILED, "The CRM's daily limit is spent.", 0)
    connection.refresh_from_db()
    assert connection.status == connection.Status.RATE_LIMITED
    ((remote_id, values),) = crm.live().items()
    link = ContactLink.objects.get(connection=connection)
    assert (link.contact.email, link.remote_id, link.status) == (values["email"], remote_id, ContactLink.Status.OK)
    assert link.base["email"] == values["email"]
    # Every row stays (the written contact's is only read again): nothing counts as a record failure.
    entries = OutboxEntry.objects.filter(connection=connection)
    assert sorted(entry.contact.email for entry in entries) == ["ann@example.com", "bea@example.com", "cy@example.com"]
    assert {(entry.attempts, entry.record_failures) for entry in entries} == {(1, 0)}

    monkeypatch.undo()
    the_next_day(connection)
    later = sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert later.created == 2
    assert sorted(r["email"] for r in crm.live().values()) == ["ann@example.com", "bea@example.com", "cy@example.com"]
    assert not OutboxEntry.objects.exists()
    assert set(ContactLink.objects.values_list("status", flat=True)) == {ContactLink.Status.OK}


def test_a_quota_met_by_a_later_write_call_of_a_batch_keeps_the_earlier_calls_writes(tenant, settings, monkeypatch):
    from tests.fakes import InMemoryAdapter

    settings.SYNC_BATCH_SIZE = 2  # a listing page (3 records) then takes two update calls
    connection, crm = make_connection(tenant)
    contacts = [contact_create(tenant=tenant, values={"email": f"p{number}@example.com"}) for number in range(3)]
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    sync(connection)  # the cursor passes our own creates
    for contact in contacts:
        contact_update(contact=contact, values={"job_title": f"app {contact.pk}"})
    for remote_id in crm.live():
        crm.user_edit(remote_id, phone=f"crm {remote_id}")
    original, update_calls = InMemoryAdapter.update_many, []

    def quota_on_the_second_call(self, changes):
        update_calls.append([remote_id for remote_id, _ in changes])
        if len(update_calls) > 1:
            raise spent_quota()
        return original(self, changes)

    monkeypatch.setattr(InMemoryAdapter, "update_many", quota_on_the_second_call)

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.FAILED and "daily limit" in run.error
    assert [len(ids) for ids in update_calls] == [2, 1]
    written, unsent = set(update_calls[0]), update_calls[1][0]
    for link in ContactLink.objects.filter(connection=connection).select_related("contact"):
        pushed = crm.live()[link.remote_id]["job_title"] == f"app {link.contact_id}"
        pulled = link.contact.phone == f"crm {link.remote_id}"
        in_base = link.base["job_title"] == f"app {link.contact_id}"
        assert pushed == pulled == in_base == (link.remote_id in written), link.remote_id
    assert OutboxEntry.objects.filter(connection=connection).count() == 3  # the push never ran

    monkeypatch.undo()
    the_next_day(connection)
    sync(connection)  # the cursor was not saved: the page is read again
    assert crm.live()[unsent]["job_title"].startswith("app ")
    assert not OutboxEntry.objects.exists()
    for link in ContactLink.objects.filter(connection=connection).select_related("contact"):
        assert link.contact.phone == crm.live()[link.remote_id]["phone"] == f"crm {link.remote_id}"


def test_an_error_applying_one_pair_keeps_the_rest_of_its_batch(tenant, monkeypatch):
    connection, crm = make_connection(tenant)
    for name in ("ann", "bob", "cy"):
        contact_create(tenant=tenant, values={"email": f"{name}@example.com"})
    original = _LinkWrites.conflicts

    def record_conflicts(self, link, conflicts):
        if link.contact.email == "bob@example.com":
            raise RuntimeError("a bug on one pair")
        return original(self, link, conflicts)

    monkeypatch.setattr(_LinkWrites, "conflicts", record_conflicts)
    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    # The run fails, but the pairs the CRM took in the same batch keep their links: only Bob's is lost.
    assert run.status == SyncRun.Status.FAILED and "a bug on one pair" in run.error
    assert len(crm.live()) == 3
    linked = set(ContactLink.objects.filter(remote_id__isnull=False).values_list("contact__email", flat=True))
    assert linked == {"ann@example.com", "cy@example.com"}


def test_an_incremental_read_whose_writes_reorder_the_listing_still_reads_every_record(tenant):
    """Found by the convergence test: the first page's pushes moved its records behind the next page's.

    A listing by modification time moves every record the sync writes to its end; paged by offset
    (HubSpot's search, and the fake CRM's), the next page then started past records never read,
    and the saved cursor passed them for good.
    """
    connection, crm = make_connection(tenant)
    ids = [crm.user_create(email=f"m{n}@example.com") for n in range(3)]
    sync(connection)
    contacts = {link.remote_id: link.contact for link in ContactLink.objects.filter(connection=connection)}
    for remote_id in ids:  # both sides edited: the read pulls the first name and pushes the phone
        crm.user_edit(remote_id, first_name="Crm")
        contact_update(contact=contacts[remote_id], values={"phone": "+1 555"})
    newcomer = crm.user_create(email="newcomer@example.com")

    sync(connection)

    assert ContactLink.objects.get(connection=connection, remote_id=newcomer).contact.email == "newcomer@example.com"
    assert all(crm.live()[remote_id]["phone"] == "+1 555" for remote_id in ids)


def test_a_record_the_database_refuses_is_left_out_and_the_others_sync(tenant, connection_and_crm, monkeypatch):
    connection, crm = connection_and_crm
    poison = crm.user_create(email="poison@example.com", first_name="Poison")
    crm.user_create(email="good@example.com", first_name="Good")
    contact_create(tenant=tenant, values={"email": "app@example.com"})

    write = contacts_module._write

    def refusing_write(created, updated, fields):
        if any(contact.email == "poison@example.com" for contact in created):
            # What PostgreSQL answers for a value no rule above the database caught.
            raise DataError("value too long for type character varying(200)")
        write(created, updated, fields)

    monkeypatch.setattr(contacts_module, "_write", refusing_write)

    for _ in range(2):
        run = sync(connection, full=True)
        assert (run.errors, run.excluded) == (1, 1)

    excluded = ExcludedRecord.objects.get(connection=connection)
    assert (excluded.record_id, excluded.code) == (poison, ExcludedRecord.Code.REFUSED)
    assert excluded.reason == "value too long for type character varying(200)"
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["app@example.com", "good@example.com"]
    assert ContactLink.objects.filter(connection=connection).count() == 2
    assert sorted(record["email"] for record in crm.live().values()) == [
        "app@example.com",
        "good@example.com",
        "poison@example.com",
    ]
