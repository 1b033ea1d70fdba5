"""Deletes both ways, and HubSpot merges that re-point a link to the surviving record."""

import pytest

from syncapp.models import Contact, ContactLink, SyncRun
from syncapp.services.contacts import contact_create, contact_delete

from .conftest import DELETE_ENDPOINT, assert_agree, assert_succeeded, make_crm, outbox_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked(crm_with_pronouns, tenant):
    crm = crm_with_pronouns
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    crm.create(email="bob@example.com", first_name="Bob", phone="+1 555 0102")
    assert_succeeded(crm.sync(full=True))
    assert_agree(crm, tenant)
    return crm


def test_a_crm_delete_soft_deletes_the_app_contact(linked, tenant):
    crm = linked
    bob_id = crm.by_email("bob@example.com")["id"]
    crm.delete(bob_id)

    mark = crm.mark()
    run = assert_succeeded(crm.sync(full=True))
    assert run.deleted == 1
    bob = Contact.objects.get(email="bob@example.com")
    assert bob.deleted_at is not None, "soft-deleted, not removed"
    link = ContactLink.objects.get(contact=bob)
    assert (link.remote_id, link.base_deleted) == (bob_id, True)
    assert crm.get(bob_id)["deleted"] is True
    assert crm.writes_since(mark) == [], "the deleted record is neither restored nor recreated"
    assert outbox_of(crm) == []
    assert set(assert_agree(crm, tenant)) == {"ann@example.com"}


def test_an_app_delete_removes_the_crm_record(linked, tenant):
    crm = linked
    ann = Contact.objects.get(email="ann@example.com")
    ann_id = crm.by_email("ann@example.com")["id"]
    contact_delete(contact=ann)

    mark = crm.mark()
    push = assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    assert push.deleted == 1
    assert crm.writes_since(mark) == [DELETE_ENDPOINT[crm.provider]]
    record = crm.get(ann_id)
    assert record["deleted"] is True, "HubSpot archives the contact; Pipedrive deletes the person"
    if crm.provider == "hubspot":
        assert record["raw"]["archived"] is True
    else:
        assert record["raw"]["is_deleted"] is True
    assert ContactLink.objects.get(contact=ann).base_deleted is True
    assert set(assert_agree(crm, tenant)) == {"bob@example.com"}

    # A later full listing neither recreates the record nor revives the contact.
    mark = crm.mark()
    again = assert_succeeded(crm.sync(full=True))
    assert (again.created, again.deleted, again.updated) == (0, 0, 0)
    assert crm.writes_since(mark) == []
    ann.refresh_from_db()
    assert ann.deleted_at is not None
    assert set(assert_agree(crm, tenant)) == {"bob@example.com"}


@pytest.fixture
def hubspot(tenant, crm_sandbox):
    crm = make_crm(tenant, crm_sandbox, "hubspot")
    crm.setup_pronouns()
    return crm


@pytest.mark.parametrize("full", [False, True], ids=["incremental", "full"])
def test_hubspot_merge_into_an_unlinked_record_repoints_the_link(hubspot, tenant, full):
    crm = hubspot
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "job_title": "CTO"})
    assert_succeeded(crm.sync(full=True))
    ann = Contact.objects.get(email="ann@example.com")
    old_id = crm.by_email("ann@example.com")["id"]
    # A record created in HubSpot since, then merged with Ann's: the new one survives.
    survivor_id = crm.create(email="ann.adams@example.com", first_name="Ann", last_name="Adams")
    with crm.account.lock:
        crm.account.control_merge(survivor_id, old_id)

    run = assert_succeeded(crm.sync(full=full))
    assert run.deleted == 0
    link = ContactLink.objects.get(connection=crm.connection, contact=ann)
    assert (link.remote_id, link.base_deleted) == (survivor_id, False)
    ann.refresh_from_db()
    assert ann.deleted_at is None
    # The survivor's primary email and name come in; Ann's job title moved into it during the merge.
    assert (ann.email, ann.last_name, ann.job_title) == ("ann.adams@example.com", "Adams", "CTO")
    assert Contact.objects.filter(tenant=tenant).count() == 1, "the survivor was not created as a second contact"
    assert crm.get(old_id)["merged_into"] == survivor_id
    assert_agree(crm, tenant)


def test_hubspot_merge_of_two_linked_records_deletes_the_merged_away_contact(hubspot, tenant):
    crm = hubspot
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    contact_create(tenant=tenant, values={"email": "annie@example.com", "first_name": "Annie", "phone": "+1 555 0101"})
    assert_succeeded(crm.sync(full=True))
    primary_id, merged_id = crm.by_email("ann@example.com")["id"], crm.by_email("annie@example.com")["id"]
    with crm.account.lock:
        crm.account.control_merge(primary_id, merged_id)

    assert_succeeded(crm.sync(full=True))
    ann, annie = Contact.objects.get(email="ann@example.com"), Contact.objects.get(email="annie@example.com")
    assert ContactLink.objects.get(contact=ann).remote_id == primary_id
    assert annie.deleted_at is not None
    assert ann.phone == "+1 555 0101", "the merge moved Annie's phone into the survivor"
    assert_agree(crm, tenant)


def test_a_hubspot_delete_is_noticed_by_the_next_incremental_poll(hubspot, tenant):
    crm = hubspot
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    crm.create(email="bob@example.com", first_name="Bob")
    crm.create(email="cy@example.com", first_name="Cy")
    assert_succeeded(crm.sync(full=True))
    bob_id, cy_id = crm.by_email("bob@example.com")["id"], crm.by_email("cy@example.com")["id"]
    crm.delete(bob_id)
    crm.delete(cy_id)
    with crm.account.lock:
        crm.account.control_restore(cy_id)  # deleted and restored between two polls: still there

    run = assert_succeeded(crm.sync())
    assert run.deleted == 1
    assert Contact.objects.get(email="bob@example.com").deleted_at is not None
    assert Contact.objects.get(email="cy@example.com").deleted_at is None
    assert set(assert_agree(crm, tenant)) == {"ann@example.com", "cy@example.com"}
    mark = crm.mark()
    again = assert_succeeded(crm.sync())
    assert (again.created, again.deleted, again.updated) == (0, 0, 0)
    assert crm.writes_since(mark) == []
