"""The first full sync: app-only, CRM-only and overlapping contacts, a true conflict, a record without email."""

import pytest

from syncapp.models import Contact, ContactLink, ExcludedRecord, SyncConflict
from syncapp.services.contacts import contact_create

from .conftest import assert_agree, assert_succeeded

pytestmark = pytest.mark.django_db


def test_first_full_sync_merges_both_sides(crm_with_pronouns, tenant):
    crm = crm_with_pronouns
    # App only, CRM only.
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "phone": "+1 555 0101"})
    bob_id = crm.create(email="bob@example.com", first_name="Bob", last_name="Brown", job_title="CFO")
    # Both, same email: empty fields fill from the other side in both directions.
    contact_create(tenant=tenant, values={"email": "cara@example.com", "first_name": "Cara", "job_title": "Engineer"})
    cara_id = crm.create(email="cara@example.com", first_name="Cara", phone="+1 555 0103", pronouns="she/her")
    # Both, the email differing in case (and, where the CRM keeps it, in surrounding whitespace).
    contact_create(tenant=tenant, values={"email": " dora@example.com ", "first_name": "Dora"})
    crm_email = "  Dora@Example.COM " if crm.provider == "hubspot" else "Dora@Example.COM"
    dora_id = crm.create(email=crm_email, first_name="Dora", last_name="Diaz")
    # Both, a true conflict: different non-empty last names.
    contact_create(tenant=tenant, values={"email": "eve@example.com", "first_name": "Eve", "last_name": "Smith"})
    eve_id = crm.create(email="eve@example.com", first_name="Eve", last_name="Smyth")
    # A CRM record without an email cannot be matched or created in the app.
    nomail_id = crm.create(first_name="Nomail", phone="+1 555 0199")

    run = assert_succeeded(crm.sync(full=True))

    ids = assert_agree(crm, tenant, excluded_ids=[nomail_id])
    assert set(ids) == {"ann@example.com", "bob@example.com", "cara@example.com", "dora@example.com", "eve@example.com"}
    assert (ids["bob@example.com"], ids["cara@example.com"], ids["dora@example.com"], ids["eve@example.com"]) == (
        bob_id,
        cara_id,
        dora_id,
        eve_id,
    )
    assert len(crm.live()) == 6, "the app-only contact was created once; nothing else was created"
    assert (run.created, run.conflicts) == (2, 1)
    assert run.excluded >= 1

    cara = Contact.objects.get(email="cara@example.com")
    assert (cara.phone, cara.pronouns, cara.job_title) == ("+1 555 0103", "she/her", "Engineer")
    assert crm.get(cara_id)["job_title"] == "Engineer"
    assert Contact.objects.get(email="dora@example.com").last_name == "Diaz"

    # CRM wins the conflict; both values are recorded and the app's can be restored.
    eve = Contact.objects.get(email="eve@example.com")
    assert eve.last_name == crm.get(eve_id)["last_name"] == "Smyth"
    conflict = SyncConflict.objects.get()
    assert conflict.link == ContactLink.objects.get(connection=crm.connection, contact=eve)
    assert (conflict.field, conflict.local_value, conflict.remote_value) == ("last_name", "Smith", "Smyth")
    assert (conflict.strategy, conflict.winner, conflict.resolution) == ("crm_wins", "crm", "automatic")
    assert conflict.losing_value == "Smith"

    excluded = ExcludedRecord.objects.get(connection=crm.connection)
    assert (excluded.side, excluded.record_id, excluded.code) == ("crm", nomail_id, "no_email")
    assert not Contact.objects.filter(first_name="Nomail").exists()

    # A second full sync finds both sides agreeing: it writes nothing anywhere.
    mark = crm.mark()
    again = assert_succeeded(crm.sync(full=True))
    assert (again.created, again.updated, again.deleted, again.conflicts) == (0, 0, 0, 0)
    assert crm.writes_since(mark) == []
    assert SyncConflict.objects.count() == 1
    assert ExcludedRecord.objects.filter(connection=crm.connection, record_id=nomail_id).exists()
    assert_agree(crm, tenant, excluded_ids=[nomail_id])
