"""After linking: app edits go out through the outbox, CRM edits come in, conflicts go to the CRM, no echoes."""

import pytest
import requests

from syncapp.models import Contact, SyncConflict, SyncRun
from syncapp.services.contacts import contact_create, contact_update

from .conftest import UPDATE_ENDPOINT, assert_agree, assert_succeeded, outbox_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked(crm_with_pronouns, tenant):
    """Two contacts on both sides, linked by a first full sync."""
    crm = crm_with_pronouns
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "last_name": "Adams"})
    crm.create(email="bob@example.com", first_name="Bob", last_name="Brown", phone="+1 555 0102")
    assert_succeeded(crm.sync(full=True))
    assert_agree(crm, tenant)
    assert outbox_of(crm) == []
    return crm


def test_app_edit_reaches_the_crm_through_the_outbox_and_is_not_echoed(linked, tenant):
    crm = linked
    ann = Contact.objects.get(email="ann@example.com")
    contact_update(contact=ann, values={"phone": "+1 555 0101", "job_title": "CTO", "pronouns": "she/her"})
    assert [entry.contact_id for entry in outbox_of(crm)] == [ann.pk]

    mark = crm.mark()
    push = assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    assert push.updated == 1
    assert outbox_of(crm) == []
    record = crm.by_email("ann@example.com")
    assert (record["phone"], record["job_title"], record["pronouns"]) == ("+1 555 0101", "CTO", "she/her")
    assert crm.writes_since(mark) == [UPDATE_ENDPOINT[crm.provider]], "one write, to the linked record"
    assert_agree(crm, tenant)

    # The poll that reads our own write back finds nothing to do, on either side.
    ann.refresh_from_db()
    stamps = (ann.updated_at, ann.field_modified_at)
    mark = crm.mark()
    echo = assert_succeeded(crm.sync())
    assert (echo.trigger, echo.updated, echo.created, echo.conflicts) == (SyncRun.Trigger.INCREMENTAL, 0, 0, 0)
    assert crm.writes_since(mark) == []
    assert crm.requests_since(mark), "the incremental sync did read the CRM"
    ann.refresh_from_db()
    assert (ann.updated_at, ann.field_modified_at) == stamps
    assert outbox_of(crm) == []
    assert_agree(crm, tenant)


def test_crm_edit_reaches_the_app_through_an_incremental_sync(linked, tenant):
    crm = linked
    bob = crm.by_email("bob@example.com")
    crm.update(bob["id"], job_title="CFO", phone="+1 555 0199")

    mark = crm.mark()
    run = assert_succeeded(crm.sync())
    assert (run.trigger, run.updated, run.created) == (SyncRun.Trigger.INCREMENTAL, 1, 0)
    contact = Contact.objects.get(email="bob@example.com")
    assert (contact.job_title, contact.phone) == ("CFO", "+1 555 0199")
    # A pulled value is never pushed back to the CRM it came from.
    assert crm.writes_since(mark) == []
    assert outbox_of(crm) == []
    assert_agree(crm, tenant)

    # An edit made through the control API's HTTP endpoint (as a CRM user would) comes in the same way.
    url = f"{crm.server.url}/_sandbox/accounts/{crm.provider}/{crm.account.account_id}/records/{bob['id']}"
    assert requests.patch(url, json={"last_name": "Browne"}, timeout=5).status_code == 200
    run = assert_succeeded(crm.sync())
    assert run.updated == 1
    assert Contact.objects.get(email="bob@example.com").last_name == "Browne"
    assert_agree(crm, tenant)


def test_both_sides_change_the_same_field_the_crm_wins_and_the_conflict_is_logged(linked, tenant):
    crm = linked
    ann = Contact.objects.get(email="ann@example.com")
    record_id = crm.by_email("ann@example.com")["id"]
    contact_update(contact=ann, values={"last_name": "Appleton", "phone": "+1 555 0111"})
    crm.update(record_id, last_name="Crmson", job_title="COO")

    run = assert_succeeded(crm.sync())
    assert run.conflicts == 1
    ann.refresh_from_db()
    # The CRM's value wins; the app's non-conflicting edit goes out, the CRM's comes in.
    assert (ann.last_name, ann.phone, ann.job_title) == ("Crmson", "+1 555 0111", "COO")
    record = crm.get(record_id)
    assert (record["last_name"], record["phone"], record["job_title"]) == ("Crmson", "+1 555 0111", "COO")
    conflict = SyncConflict.objects.get()
    assert (conflict.link.contact_id, conflict.field) == (ann.pk, "last_name")
    assert (conflict.local_value, conflict.remote_value, conflict.winner) == ("Appleton", "Crmson", "crm")
    assert conflict.losing_value == "Appleton"
    assert conflict.local_modified_at is not None and conflict.remote_modified_at is not None
    assert outbox_of(crm) == []
    assert_agree(crm, tenant)

    # Settled: the next poll writes nothing and logs no new conflict.
    mark = crm.mark()
    again = assert_succeeded(crm.sync())
    assert (again.updated, again.conflicts) == (0, 0)
    assert crm.writes_since(mark) == []
    assert SyncConflict.objects.count() == 1
