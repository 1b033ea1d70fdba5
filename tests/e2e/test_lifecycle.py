"""After linking, the CRM id is the key: email changes follow the link; restores revive; the app is the hub."""

import pytest

from syncapp.models import Contact, ContactLink, OutboxEntry, SyncRun
from syncapp.services.contacts import contact_create, contact_delete, contact_restore, contact_update

from .conftest import assert_agree, assert_succeeded, make_crm, outbox_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked(crm_with_pronouns, tenant):
    crm = crm_with_pronouns
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    crm.create(email="bob@example.com", first_name="Bob")
    assert_succeeded(crm.sync(full=True))
    return crm


def test_email_changes_follow_the_link_both_ways(linked, tenant):
    crm = linked
    ann = Contact.objects.get(email="ann@example.com")
    ann_id, bob_id = crm.by_email("ann@example.com")["id"], crm.by_email("bob@example.com")["id"]

    contact_update(contact=ann, values={"email": "ann.new@example.com"})
    assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    assert crm.get(ann_id)["email"] == "ann.new@example.com"

    crm.update(bob_id, email="bob.new@example.com")
    run = assert_succeeded(crm.sync())
    assert (run.created, run.deleted, run.updated) == (0, 0, 1)
    bob = Contact.objects.get(email="bob.new@example.com")
    assert ContactLink.objects.get(contact=bob).remote_id == bob_id
    assert Contact.objects.filter(tenant=tenant).count() == 2, "no contact created or deleted for a new address"
    assert set(assert_agree(crm, tenant)) == {"ann.new@example.com", "bob.new@example.com"}


def test_an_app_restore_revives_the_crm_record(linked, tenant):
    crm = linked
    ann = Contact.objects.get(email="ann@example.com")
    contact_delete(contact=ann)
    assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    assert set(assert_agree(crm, tenant)) == {"bob@example.com"}

    contact_restore(contact=ann, values={"phone": "+1 555 0101"})
    assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    record = crm.by_email("ann@example.com")
    assert (record["first_name"], record["phone"]) == ("Ann", "+1 555 0101")
    assert ContactLink.objects.get(contact=ann).base_deleted is False
    assert set(assert_agree(crm, tenant)) == {"ann@example.com", "bob@example.com"}


def test_a_crm_restore_revives_the_app_contact(linked, tenant):
    crm = linked
    bob_id = crm.by_email("bob@example.com")["id"]
    crm.delete(bob_id)
    assert_succeeded(crm.sync(full=True))
    assert Contact.objects.get(email="bob@example.com").deleted_at is not None

    with crm.account.lock:
        crm.account.control_restore(bob_id)
    assert_succeeded(crm.sync(full=True))
    bob = Contact.objects.get(email="bob@example.com")
    assert bob.deleted_at is None
    assert ContactLink.objects.get(contact=bob).remote_id == bob_id
    assert Contact.objects.filter(email="bob@example.com").count() == 1, "revived, not created again"
    assert set(assert_agree(crm, tenant)) == {"ann@example.com", "bob@example.com"}


def test_the_app_is_the_hub_between_hubspot_and_pipedrive(tenant, crm_sandbox):
    hubspot = make_crm(tenant, crm_sandbox, "hubspot")
    pipedrive = make_crm(tenant, crm_sandbox, "pipedrive")
    hubspot.setup_pronouns()
    pipedrive.setup_pronouns()
    hubspot.create(email="hub@example.com", first_name="Hub", pronouns="they/them")
    pipedrive.create(email="pipe@example.com", first_name="Pipe", job_title="CEO")

    # Each CRM's records come into the app and go on to the other CRM, never back to their source.
    assert_succeeded(hubspot.sync(full=True))
    hub = Contact.objects.get(email="hub@example.com")
    assert list(OutboxEntry.objects.filter(contact=hub).values_list("connection_id", flat=True)) == [
        pipedrive.connection.pk
    ]
    assert_succeeded(pipedrive.sync(full=True))
    assert_succeeded(hubspot.sync(trigger=SyncRun.Trigger.PUSH))
    assert_agree(hubspot, tenant)
    assert_agree(pipedrive, tenant)

    # An edit in Pipedrive reaches HubSpot through the app.
    pipedrive.update(pipedrive.by_email("hub@example.com")["id"], phone="+1 555 0199")
    mark = pipedrive.mark()
    assert_succeeded(pipedrive.sync())
    assert pipedrive.writes_since(mark) == [], "not pushed back to Pipedrive"
    assert_succeeded(hubspot.sync(trigger=SyncRun.Trigger.PUSH))
    assert hubspot.by_email("hub@example.com")["phone"] == "+1 555 0199"
    assert outbox_of(hubspot) == outbox_of(pipedrive) == []
    assert_agree(hubspot, tenant)
    assert_agree(pipedrive, tenant)
