"""A person in several tenants: which tenant a page is about, and switching it."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from syncapp.models import Membership, SyncConflict
from syncapp.providers.base.oauth import oauth_state_load
from syncapp.services.tenants import tenant_create
from syncapp.views.tenancy import SESSION_TENANT
from tests.conftest import make_connection
from tests.views.test_conflicts import make_conflict

pytestmark = pytest.mark.django_db


def _tenant_with_data(tenant):
    """One connection, one contact and one open conflict whose names carry the tenant's slug."""
    connection, _ = make_connection(tenant, account_id=f"crm-{tenant.slug}")
    make_conflict(connection, resolution=SyncConflict.Resolution.OPEN, email=f"ada@{tenant.slug}.example")
    return connection


@pytest.fixture
def two_tenants(tenant):
    """alice's tenants: Acme (first by name) and Zenith, each with its own connection, contact and conflict."""
    zenith = tenant_create(slug="zenith", name="Zenith", username="alice", add_existing_user=True)
    return {"acme": _tenant_with_data(tenant), "zenith": _tenant_with_data(zenith)}


def _switch(client, connection, next_url="/"):
    return client.post(reverse("syncapp:tenant-switch"), {"tenant": connection.tenant_id, "next": next_url})


def _pages_are_about(client, shown, hidden, settings):
    """Every page (status, status.json, contacts, conflicts, connect, OAuth start) is about ``shown``."""
    for url in ["/", "/contacts/", "/conflicts/?show=all", "/connect/"]:
        page = client.get(url).content.decode()
        header, main = page.split("<main>")
        assert f"selected>{shown.tenant.name}</option>" in header, url
        assert hidden.tenant.name not in main and hidden.tenant.slug not in main, url
        if url != "/connect/":
            assert shown.tenant.slug in main, url  # its connection, or its contact's email
    assert client.get(reverse("syncapp:connection-status", args=[shown.pk])).status_code == 200
    assert client.get(reverse("syncapp:connection-status", args=[hidden.pk])).status_code == 404

    settings.HUBSPOT_CLIENT_ID, settings.HUBSPOT_CLIENT_SECRET = "hs-client-id", "hs-secret"
    started = client.post(reverse("syncapp:oauth-start", args=["hubspot"]))
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    assert oauth_state_load(state=state, provider_id="hubspot")["tenant_id"] == shown.tenant_id


def test_a_person_in_two_tenants_sees_the_first_then_every_page_follows_the_switch(alice, two_tenants, settings):
    acme, zenith = two_tenants["acme"], two_tenants["zenith"]
    _pages_are_about(alice, acme, zenith, settings)

    response = _switch(alice, zenith, "/contacts/?q=ada")

    assert response.status_code == 302 and response["Location"] == "/contacts/?q=ada"
    assert "You are now working in Zenith." in alice.get(response["Location"]).content.decode()
    _pages_are_about(alice, zenith, acme, settings)


def test_the_header_shows_the_tenant_and_offers_the_others(alice, two_tenants):
    page = alice.get("/contacts/").content.decode()

    assert 'action="/tenant/switch/"' in page and "csrfmiddlewaretoken" in page
    assert f'<option value="{two_tenants["acme"].tenant_id}" selected>Acme</option>' in page
    assert f'<option value="{two_tenants["zenith"].tenant_id}">Zenith</option>' in page
    assert 'name="next" value="/contacts/"' in page


def test_one_tenant_shows_its_name_and_no_switch(alice):
    page = alice.get("/").content.decode()

    assert '<span class="tenant" title="Tenant">Acme</span>' in page
    assert "/tenant/switch/" not in page


def test_switching_to_a_tenant_one_is_not_in_is_a_404_and_changes_nothing(alice, bob, two_tenants):
    globex = Membership.objects.get(user__username="bob").tenant_id
    for value in [globex, "not-a-number", "", "9" * 40]:
        assert alice.post(reverse("syncapp:tenant-switch"), {"tenant": value}).status_code == 404, value
    assert SESSION_TENANT not in alice.session
    assert "crm-acme" in alice.get("/").content.decode()
    assert alice.get(reverse("syncapp:tenant-switch")).status_code == 405


def test_a_removed_membership_falls_back_to_the_first_tenant(alice, two_tenants):
    acme, zenith = two_tenants["acme"], two_tenants["zenith"]
    _switch(alice, zenith)
    Membership.objects.filter(tenant=zenith.tenant, user__username="alice").delete()

    status = alice.get("/").content.decode()

    assert acme.account_id in status and zenith.account_id not in status
    assert SESSION_TENANT not in alice.session
    # Added back later, the tenant is not chosen again behind the person's back.
    Membership.objects.create(tenant=zenith.tenant, user=Membership.objects.get(tenant=acme.tenant).user)
    assert acme.account_id in alice.get("/").content.decode()


def test_the_last_membership_removed_is_a_403(alice, two_tenants):
    Membership.objects.filter(user__username="alice").delete()

    assert alice.get("/").status_code == 403


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/conflicts/?show=all", "/conflicts/?show=all"),
        ("https://evil.example/", "/"),
        ("//evil.example/contacts/", "/"),
        ("/\\evil.example/", "/"),
        ("", "/"),
        ("/no-such-page/", "/"),
        # A page about one object of the old tenant would be a 404 in the new one.
        ("/contacts/1/", "/"),
        ("/oauth/hubspot/callback/?state=x", "/"),
    ],
)
def test_the_switch_goes_back_only_to_a_page_of_this_site_that_names_no_object(alice, two_tenants, next_url, expected):
    response = _switch(alice, two_tenants["zenith"], next_url)

    assert response.status_code == 302 and response["Location"] == expected
    assert alice.session[SESSION_TENANT] == two_tenants["zenith"].tenant_id
