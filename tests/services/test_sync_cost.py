"""What a sync costs: API calls of a first full sync, and database queries of an incremental one."""

import contextlib
import functools
import math

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from syncapp.models import Contact, ContactLink, ExcludedRecord, OutboxEntry, SyncRun
from syncapp.services.contacts import contact_create
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


def sync(connection, **kwargs):
    run = connection_sync(connection=connection, **kwargs)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return run


def half_overlapping(tenant, crm, *, records=30, contacts=40, page_size=10):
    """CRM records r0.. and app contacts; every other record's email is also an app contact's.

    Each shared pair fills a field both ways (the CRM has the first name, the app the phone), so
    it writes both sides; the shared pairs are spread over every listing page.
    """
    crm.page_size = page_size
    shared = [f"r{n}@example.com" for n in range(0, records, 2)]
    for n in range(records):
        crm.user_create(email=f"r{n}@example.com", first_name=f"Crm{n}")
    for email in shared:
        contact_create(tenant=tenant, values={"email": email, "phone": "+1 555"})
    for n in range(contacts - len(shared)):
        contact_create(tenant=tenant, values={"email": f"app{n}@example.com"})
    return shared


@pytest.mark.parametrize("unique_emails", [False, True], ids=["duplicates-allowed", "duplicates-refused"])
def test_a_first_full_sync_lists_once_and_writes_in_full_batches(tenant, unique_emails, settings):
    connection, crm = make_connection(tenant, unique_emails=unique_emails)
    shared = half_overlapping(tenant, crm)
    records, creates, updates = 30, 40 - len(shared), len(shared)
    batch = settings.SYNC_BATCH_SIZE

    run = sync(connection, full=True)

    # One catch-up read of what changed since the listing began, where the CRM takes duplicates;
    # where it refuses them, a create racing a CRM user links instead (see the next test).
    catch_up = 0 if unique_emails else 1
    # Held updates are read again, a batch at a time, just before they are written.
    writes = {"update_many": math.ceil(updates / batch), "read_many": math.ceil(updates / batch)}
    expected = {"list_all": math.ceil(records / crm.page_size), **writes}
    expected |= {"create_many": math.ceil(creates / batch)} | ({"list_changed": catch_up} if catch_up else {})
    assert crm.call_counts() == expected
    assert run.api_calls == 3 + catch_up + 1 + 1 + 1
    assert (run.created, run.updated) == (creates + records - len(shared), updates)
    assert Contact.objects.count() == len(crm.live()) == records + creates == ContactLink.objects.count()
    for rid, values in crm.live().items():
        contact = ContactLink.objects.get(remote_id=rid).contact
        assert contact.to_record().as_dict() == values
    assert all(values["phone"] == "+1 555" for values in crm.live().values() if values["email"] in shared)


def test_a_listing_holds_its_crm_writes_until_a_batch_is_full(tenant, settings):
    settings.SYNC_BATCH_SIZE = 4
    connection, crm = make_connection(tenant)
    shared = half_overlapping(tenant, crm)  # 5 shared pairs on each page of 10

    sync(connection, full=True)

    assert crm.call_counts()["update_many"] == math.ceil(len(shared) / 4)  # not 2 per page
    assert crm.call_counts()["create_many"] == math.ceil((40 - len(shared)) / 4)
    assert all(values["phone"] == "+1 555" for values in crm.live().values() if values["email"] in shared)


def test_a_crm_edit_made_while_a_write_is_held_is_not_overwritten(tenant):
    connection, crm = make_connection(tenant)
    crm.page_size = 2
    held = crm.user_create(email="ann@example.com", job_title="Old")
    crm.user_create(email="bob@example.com")
    crm.user_create(email="cy@example.com")
    contact = contact_create(tenant=tenant, values={"email": "ann@example.com", "phone": "+1 555"})
    # Ann's record needs the app's phone; while that write waits for a batch, a CRM user edits her.
    crm.after_listing_page[2] = lambda: crm.user_edit(held, job_title="Edited in the CRM", phone="+1 777")

    sync(connection, full=True)

    contact.refresh_from_db()
    # The held write was planned against the record as it is now: the CRM's edit wins and reaches the app.
    assert crm.live()[held]["job_title"] == contact.job_title == "Edited in the CRM"
    assert crm.live()[held]["phone"] == contact.phone == "+1 777"


def test_a_held_write_is_planned_again_with_a_later_page_that_shares_its_email(tenant):
    connection, crm = make_connection(tenant, unique_emails=False)
    oldest = crm.user_create(email="dup@example.com", first_name="Old")  # page 1
    for n in range(3):
        crm.user_create(email=f"r{n}@example.com")
    # On page 2, with nothing to push: matched alone, it would be linked at once.
    newer = crm.user_create(email="dup@example.com", first_name="New", phone="+1 555")
    contact = contact_create(tenant=tenant, values={"email": "dup@example.com", "phone": "+1 555"})

    sync(connection, full=True)  # the oldest record's push waits for a batch while page 2 is read

    contact.refresh_from_db()
    assert ContactLink.objects.get(contact=contact).remote_id == oldest and contact.first_name == "Old"
    assert ExcludedRecord.objects.get(record_id=newer).code == "duplicate_email"
    assert crm.live()[oldest]["phone"] == "+1 555" and crm.call_counts()["update_many"] == 1


@pytest.mark.parametrize("unique_emails", [False, True], ids=["duplicates-allowed", "duplicates-refused"])
def test_records_created_or_readdressed_during_the_listing_are_linked_not_duplicated(tenant, unique_emails):
    connection, crm = make_connection(tenant, unique_emails=unique_emails)
    nameless = crm.user_create(first_name="Nameless")  # on the first of three pages
    for n in range(7):
        crm.user_create(email=f"r{n}@example.com")
    early = contact_create(tenant=tenant, values={"email": "early@example.com", "last_name": "App"})
    late = contact_create(tenant=tenant, values={"email": "late@example.com", "first_name": "Late"})
    created = []
    # CRM users at work while the listing runs: once the first page was read, the nameless record
    # gets early's address; once the last page was read, a record is created with late's.
    crm.after_listing_page[1] = lambda: crm.user_edit(nameless, email="early@example.com")
    crm.after_listing_page[3] = lambda: created.append(crm.user_create(email="late@example.com", last_name="Crm"))

    run = sync(connection, full=True)

    assert created and not crm.after_listing_page  # both happened during the listing
    emails = [values["email"] for values in crm.live().values()]
    assert emails.count("early@example.com") == emails.count("late@example.com") == 1
    assert ContactLink.objects.get(contact=early).remote_id == nameless
    assert ContactLink.objects.get(contact=late).remote_id == created[0]
    late.refresh_from_db()
    assert (late.last_name, crm.live()[created[0]]["first_name"]) == ("Crm", "Late")
    assert crm.live()[nameless]["last_name"] == "App"
    assert not ExcludedRecord.objects.filter(record_id=nameless).exists()
    assert "find_by_emails" not in crm.calls
    if unique_emails:
        # The creates answered "Existing ID": linked, then merged by the run's push.
        assert crm.call_counts()["create_many"] == crm.call_counts()["read_many"] == 1
    else:
        assert crm.call_counts()["list_changed"] == 1 and "create_many" not in crm.calls
        assert run.created == 7  # only the app contacts of r0..r6


def incremental_queries(slug, *, linked, changed, other_connection=False, around=contextlib.nullcontext):
    """Link ``linked`` contacts, change ``changed`` of their CRM records, and return the poll's queries."""
    tenant = tenant_create(slug=slug)
    connection, crm = make_connection(tenant, f"crm-{slug}")
    if other_connection:  # pulled values fan out to it
        make_connection(tenant, f"other-{slug}")
    for n in range(linked):
        contact_create(tenant=tenant, values={"email": f"c{n}@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    sync(connection)  # reads its own creates once; the cursor is now past them
    crm.page_size = 100
    for remote_id in sorted(crm.live(), key=int)[:changed]:
        crm.user_edit(remote_id, phone="+1 555")
    with CaptureQueriesContext(db) as queries, around():
        run = sync(connection)
    assert run.updated == changed
    assert Contact.objects.filter(tenant=tenant, phone="+1 555").count() == changed
    return [query["sql"] for query in queries.captured_queries]


def test_an_incremental_sync_queries_the_same_whatever_the_number_of_linked_contacts(tenant):
    few = incremental_queries("few", linked=5, changed=3)
    many = incremental_queries("many", linked=60, changed=3)
    assert len(few) == len(many)


def test_pulled_changes_read_the_tenants_connections_once_per_batch(tenant, django_capture_on_commit_callbacks):
    def connection_queries(slug, changed):
        # The pushes to the other connection are queued as the changes commit, inside the measurement.
        around = functools.partial(django_capture_on_commit_callbacks, execute=True)
        sql = incremental_queries(slug, linked=8, changed=changed, other_connection=True, around=around)
        assert OutboxEntry.objects.filter(connection__account_id=f"other-{slug}").count() == 8 + changed
        return [query for query in sql if "syncapp_crmconnection" in query]

    assert len(connection_queries("two", 2)) == len(connection_queries("six", 6))


def test_progress_counts_each_pair_once_even_when_its_write_was_held(tenant, settings):
    settings.SYNC_BATCH_SIZE = 4
    connection, crm = make_connection(tenant)
    half_overlapping(tenant, crm)  # 30 records, 15 of whose emails are app contacts, and 25 app-only contacts
    calls = []

    run = sync(connection, full=True, progress=calls.append)

    assert sum(calls) == run.created + run.updated + run.deleted + run.unchanged == 30 + 25
    assert len(calls) > 1 and all(calls)  # one call per batch written, and none for an empty one


def test_a_running_sync_saves_its_counts_after_every_batch_for_the_status_page(tenant, settings):
    settings.SYNC_BATCH_SIZE = 4
    connection, crm = make_connection(tenant)
    half_overlapping(tenant, crm)
    seen = []

    def look(pairs):
        # What another process (the status page) reads while the run goes on.
        run = SyncRun.objects.get(connection=connection)
        seen.append((run.status, run.created + run.updated + run.deleted + run.unchanged))

    run = sync(connection, full=True, progress=look)

    assert {status for status, _ in seen} == {SyncRun.Status.RUNNING}
    done = [count for _, count in seen]
    assert done == sorted(done) and len(set(done)) > 2 and done[-1] == 30 + 25
    assert run.created + run.updated + run.unchanged == 30 + 25


def test_a_dry_run_plans_each_pair_once_and_its_progress_counts_them(tenant, settings):
    settings.SYNC_BATCH_SIZE = 4
    connection, crm = make_connection(tenant)
    half_overlapping(tenant, crm)
    calls = []

    run = sync(connection, full=True, dry_run=True, progress=calls.append)

    # The outbox still holds every new contact (a dry run deletes nothing); its push must not plan
    # the contacts the listing planned already.
    assert sum(calls) == run.created + run.updated + run.deleted + run.unchanged == 30 + 25
    planned = [pair.contact_id for pair in run.plan if pair.contact_id]
    assert len(planned) == len(set(planned))
    assert not crm.call_counts().get("update_many") and not crm.call_counts().get("create_many")
