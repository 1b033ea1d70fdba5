"""A HubSpot deletion is found by the next successful poll, whatever failed in the polls before it."""

from datetime import UTC, datetime, timedelta

import pytest

from syncapp.exceptions import TransientProviderError
from syncapp.models import Contact
from syncapp.providers.hubspot.adapter import HubspotAdapter
from syncapp.services.contacts import contact_create
from tests.e2e.conftest import assert_succeeded, make_crm


@pytest.fixture
def hubspot(tenant, crm_sandbox):
    crm = make_crm(tenant, crm_sandbox, "hubspot")
    crm.setup_pronouns()
    return crm


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@pytest.mark.parametrize("bin_fails", [False, True])
def test_a_deletion_is_found_by_the_poll_after_a_failed_bin_scan(hubspot, tenant, bin_fails, monkeypatch):
    """The search saved its cursor, then the bin listing failed: the next poll must still see Bob gone."""
    crm = hubspot
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    crm.create(email="bob@example.com", first_name="Bob")
    crm.create(email="cy@example.com", first_name="Cy")
    assert_succeeded(crm.sync(full=True))
    bob_id, cy_id = crm.by_email("bob@example.com")["id"], crm.by_email("cy@example.com")["id"]
    crm.delete(bob_id)
    with crm.account.lock:  # Bob was deleted 3 minutes ago, inside the window of the next poll
        crm.account.records[bob_id]["archivedAt"] = _iso(datetime.now(UTC) - timedelta(minutes=3))
    crm.update(cy_id, first_name="Cyrus")  # a live edit moves the search cursor to now

    if bin_fails:

        def boom(self, *, cursor):
            raise TransientProviderError("HubSpot answered 503", status=503)
            yield  # pragma: no cover

        with monkeypatch.context() as patch:
            patch.setattr(HubspotAdapter, "list_deleted", boom)
            crm.sync()  # fails after the search pages saved the cursor
        assert Contact.objects.get(email="cy@example.com").first_name == "Cyrus"
    crm.sync()
    assert Contact.objects.get(email="bob@example.com").deleted_at is not None, "deletion missed by the next poll"
