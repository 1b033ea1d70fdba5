"""The other conflict strategies, against real CRM timestamps."""

import time

import pytest

from syncapp.models import Contact, ContactLink, SyncConflict, SyncRun
from syncapp.services.conflicts import conflict_pick
from syncapp.services.contacts import contact_create, contact_update

from .conftest import assert_agree, assert_succeeded

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked(crm_with_pronouns, tenant):
    crm = crm_with_pronouns
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "last_name": "Adams"})
    assert_succeeded(crm.sync(full=True))
    return crm


def use_strategy(crm, strategy: str) -> None:
    crm.connection.conflict_strategy = strategy
    crm.connection.save(update_fields=["conflict_strategy"])


def test_latest_wins_keeps_the_later_app_edit(linked, tenant):
    crm = linked
    use_strategy(crm, "latest_wins")
    record_id = crm.by_email("ann@example.com")["id"]
    crm.update(record_id, last_name="Crmson")
    time.sleep(0.01 if crm.provider == "hubspot" else 1.05)  # Pipedrive's update_time has whole seconds
    contact_update(contact=Contact.objects.get(email="ann@example.com"), values={"last_name": "Appleton"})

    run = assert_succeeded(crm.sync())
    assert run.conflicts == 1
    assert crm.get(record_id)["last_name"] == "Appleton"
    conflict = SyncConflict.objects.get()
    assert (conflict.winner, conflict.losing_value, conflict.strategy) == ("app", "Crmson", "latest_wins")
    assert_agree(crm, tenant)


def test_latest_wins_keeps_the_later_crm_edit(linked, tenant):
    crm = linked
    use_strategy(crm, "latest_wins")
    record_id = crm.by_email("ann@example.com")["id"]
    contact_update(contact=Contact.objects.get(email="ann@example.com"), values={"last_name": "Appleton"})
    time.sleep(0.01 if crm.provider == "hubspot" else 1.05)
    crm.update(record_id, last_name="Crmson")

    run = assert_succeeded(crm.sync())
    assert run.conflicts == 1
    assert Contact.objects.get(email="ann@example.com").last_name == "Crmson"
    assert SyncConflict.objects.get().winner == "crm"
    assert_agree(crm, tenant)


def test_manual_review_overwrites_nothing(linked, tenant):
    crm = linked
    use_strategy(crm, "manual_review")
    record_id = crm.by_email("ann@example.com")["id"]
    contact_update(contact=Contact.objects.get(email="ann@example.com"), values={"last_name": "Appleton"})
    crm.update(record_id, last_name="Crmson")

    mark = crm.mark()
    run = assert_succeeded(crm.sync())
    assert run.conflicts == 1
    assert Contact.objects.get(email="ann@example.com").last_name == "Appleton"
    assert crm.get(record_id)["last_name"] == "Crmson"
    assert crm.writes_since(mark) == []
    conflict = SyncConflict.objects.get()
    assert (conflict.resolution, conflict.winner) == ("open", "")
    # Seen again by the next poll: still one open conflict, still nothing overwritten.
    assert_succeeded(crm.sync())
    assert SyncConflict.objects.count() == 1
    assert crm.get(record_id)["last_name"] == "Crmson"


def test_manual_review_marks_the_link_awaiting_review(linked, tenant):
    crm = linked
    use_strategy(crm, "manual_review")
    record_id = crm.by_email("ann@example.com")["id"]
    contact_update(contact=Contact.objects.get(email="ann@example.com"), values={"last_name": "Appleton"})
    crm.update(record_id, last_name="Crmson")

    assert_succeeded(crm.sync())
    assert SyncConflict.objects.get().resolution == "open"
    assert ContactLink.objects.get(connection=crm.connection, remote_id=record_id).status == "conflict"
    # Still awaiting review when the next poll sees the same conflict.
    assert_succeeded(crm.sync())
    assert ContactLink.objects.get(connection=crm.connection, remote_id=record_id).status == "conflict"

    # Once a person picks a value, the link is back to ok and both sides agree.
    conflict_pick(conflict=SyncConflict.objects.get(), winner="crm", user=None)
    assert_succeeded(crm.sync(trigger=SyncRun.Trigger.PUSH))
    assert ContactLink.objects.get(connection=crm.connection, remote_id=record_id).status == "ok"
    assert Contact.objects.get(email="ann@example.com").last_name == "Crmson"
    assert SyncConflict.objects.get().resolution == "picked_crm"
    assert_agree(crm, tenant)
