"""What a CRM user can type breaks no sync: control characters are cleaned once, values the app
cannot hold are left out with a reason, and look-alike emails are one person."""

import pytest

from syncapp.exceptions import ValidationError
from syncapp.models import Contact, ExcludedRecord, SyncRun
from syncapp.services.contacts import contact_create

from .conftest import assert_succeeded

pytestmark = pytest.mark.django_db


def test_control_characters_from_the_crm_are_cleaned_once_and_never_written_back(crm, tenant):
    dirty = crm.create(
        email="bad@example.com", first_name="Bad\x00Name", last_name="Low\ud800\x7fe", job_title="Head\tof\r\nSales"
    )
    crm.create(email="good@example.com", first_name="Good")

    first = assert_succeeded(crm.sync(full=True))

    assert first.created == 2
    bad = Contact.objects.get(email="bad@example.com")
    assert (bad.first_name, bad.last_name, bad.job_title) == ("BadName", "Lowe", "Head of Sales")
    assert Contact.objects.filter(email="good@example.com", first_name="Good").exists()
    # The cleaned value is what both sides agree on: the next runs see no change on either side.
    stamps = (bad.updated_at, bad.field_modified_at)
    for run in ({"full": True}, {}):
        mark = crm.mark()
        again = assert_succeeded(crm.sync(**run))
        assert (again.created, again.updated, again.conflicts) == (0, 0, 0)
        assert crm.writes_since(mark) == []
        bad.refresh_from_db()
        assert (bad.updated_at, bad.field_modified_at) == stamps

    # A later edit with a NUL comes in cleaned too.
    crm.update(dirty, first_name="Worse\x00Name")
    assert_succeeded(crm.sync())
    bad.refresh_from_db()
    assert bad.first_name == "WorseName"


def test_a_crm_value_longer_than_the_app_holds_is_left_out_and_the_run_goes_on(crm, tenant):
    long_name = crm.create(email="long-name@example.com", first_name="N" * 300)
    long_email = crm.create(email=f"{'e' * 300}@example.com", first_name="Eve")
    crm.create(email="good@example.com", first_name="Good")

    runs = [crm.sync(full=True) for _ in range(2)]

    assert [run.status for run in runs] == [SyncRun.Status.SUCCEEDED] * 2, runs[0].error
    # The counts are true: the refused records are errors on every run, never also creations.
    assert [(run.created, run.errors) for run in runs] == [(1, 2), (0, 2)]
    assert list(Contact.objects.values_list("email", flat=True)) == ["good@example.com"]
    excluded = {item.record_id: item for item in ExcludedRecord.objects.filter(connection=crm.connection)}
    assert set(excluded) == {long_name, long_email}
    assert {item.code for item in excluded.values()} == {ExcludedRecord.Code.REFUSED}
    assert excluded[long_name].reason == "first_name is longer than 200 characters."
    assert excluded[long_email].reason == "email is longer than 254 characters."
    assert excluded[long_email].email == f"{'e' * 300}@example.com"[:254]


def test_an_email_with_an_invisible_character_is_left_out_with_its_reason(crm, tenant):
    hidden = crm.create(email="bob\u200b@example.com", first_name="Bob")
    crm.create(email="good@example.com", first_name="Good")

    run = crm.sync(full=True)

    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert list(Contact.objects.values_list("email", flat=True)) == ["good@example.com"]
    excluded = ExcludedRecord.objects.get(connection=crm.connection)
    assert (excluded.record_id, excluded.code) == (hidden, ExcludedRecord.Code.REFUSED)
    assert "invisible character U+200B" in excluded.reason


def test_look_alike_spellings_of_an_email_are_one_contact(crm, tenant):
    contact_create(tenant=tenant, values={"email": "bob@bücher.example", "first_name": "Bob"})
    crm.create(email="BOB@XN--BCHER-KVA.example", first_name="Bob", job_title="Builder")
    crm.create(email="ａｌｉｃｅ@ＢÜＣＨＥＲ.example", first_name="Alice")

    mark = crm.mark()
    run = assert_succeeded(crm.sync(full=True))

    contacts = {contact.email: contact for contact in Contact.objects.all()}
    assert set(contacts) == {"bob@xn--bcher-kva.example", "alice@xn--bcher-kva.example"}
    assert (contacts["bob@xn--bcher-kva.example"].job_title, run.created) == ("Builder", 1)
    # The CRM keeps its own spelling: it is the same address, so there is nothing to write.
    assert crm.writes_since(mark) == []
    with pytest.raises(ValidationError, match="already uses the email address alice@xn--bcher-kva.example"):
        contact_create(tenant=tenant, values={"email": "Alice@bücher.EXAMPLE"})
