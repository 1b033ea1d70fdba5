"""Pronouns live in a custom field: skipped (and reported) until the setup creates it, then synced."""

import pytest

from syncapp.models import Contact, CrmConnection
from syncapp.services.contacts import contact_create
from syncapp.services.pronouns import connection_setup_pronouns

from .conftest import assert_agree, assert_succeeded, make_crm

pytestmark = pytest.mark.django_db

WITHOUT_PRONOUNS = ("email", "first_name", "last_name", "phone", "job_title")


def pronouns_fields(crm) -> list[dict]:
    """The account's pronouns field definitions, as the sandbox holds them."""
    with crm.account.lock:
        if crm.provider == "hubspot":
            return [prop for name, prop in crm.account.properties.items() if name == "pronouns"]
        return [field for field in crm.account.fields if field["name"] == "Pronouns" and field["edit_flag"]]


def test_sync_before_setup_skips_pronouns_and_setup_creates_the_field(crm, tenant):
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "pronouns": "she/her"})
    crm.create(email="bob@example.com", first_name="Bob")

    before = assert_succeeded(crm.sync(full=True))
    assert before.skipped_fields == "pronouns"
    assert before.created == 2
    assert pronouns_fields(crm) == []
    assert_agree(crm, tenant, fields=WITHOUT_PRONOUNS)
    # The app keeps its value; the CRM has nowhere to hold it yet.
    assert Contact.objects.get(email="ann@example.com").pronouns == "she/her"
    assert crm.by_email("ann@example.com").get("pronouns", "") == ""

    setup = connection_setup_pronouns(connection=crm.connection)
    crm.connection.refresh_from_db()
    assert setup.state == crm.connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED
    (field,) = pronouns_fields(crm)
    if crm.provider == "hubspot":
        assert (field["label"], crm.connection.pronouns_field_key) == ("Pronouns", "pronouns")
    else:
        assert len(field["key"]) == 40
        assert crm.connection.pronouns_field_key == field["key"]
    # Running the setup again maps the same field instead of creating a second one.
    again = connection_setup_pronouns(connection=crm.connection)
    assert again.key == setup.key
    assert len(pronouns_fields(crm)) == 1

    # The app value written while the field was missing is pushed now; CRM values come in.
    bob = crm.by_email("bob@example.com")
    crm.update(bob["id"], pronouns="he/him")
    after = assert_succeeded(crm.sync(full=True))
    assert after.skipped_fields == ""
    assert crm.by_email("ann@example.com")["pronouns"] == "she/her"
    assert Contact.objects.get(email="bob@example.com").pronouns == "he/him"
    assert_agree(crm, tenant)


def test_pipedrive_without_a_job_title_field_skips_it_and_reports_it(tenant, crm_sandbox):
    crm = make_crm(tenant, crm_sandbox, "pipedrive", contact_sync=False)
    crm.setup_pronouns()
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann", "job_title": "CTO"})
    crm.create(email="bob@example.com", first_name="Bob", pronouns="he/him")

    run = assert_succeeded(crm.sync(full=True))
    assert run.skipped_fields == "job_title"
    assert run.created == 2
    assert "job_title" not in crm.by_email("ann@example.com")["raw"], "never sent to a company without the field"
    assert Contact.objects.get(email="ann@example.com").job_title == "CTO"
    assert Contact.objects.get(email="bob@example.com").pronouns == "he/him"
    assert_agree(crm, tenant, fields=("email", "first_name", "last_name", "phone", "pronouns"))
