"""A person in several tenants: which tenant a page is about, and switching it."""

import json
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.urls import resolve, reverse

from syncapp.models import Contact, ContactLink, CrmConnection, Membership, SyncConflict
from syncapp.providers.base.oauth import oauth_state_load
from syncapp.services.tenants import tenant_create
from syncapp.tenancy import SESSION_TENANT
from tests.helpers import make_connection, queued_tasks
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


# A form as the page of ``connection``'s tenant renders it: its URL, and its fields besides page_tenant.
TOKEN = "pat-na1-tab-token"
FORMS = {
    "oauth start": lambda connection: (reverse("syncapp:oauth-start", args=["hubspot"]), {}),
    "token connect": lambda connection: (reverse("syncapp:connect-token"), {"provider": "hubspot", "token": TOKEN}),
    "contact create": lambda connection: (reverse("syncapp:contact-new"), {"email": "grace@tab.example"}),
    "sync now": lambda connection: (reverse("syncapp:connection-sync", args=[connection.pk]), {}),
}


@pytest.fixture
def crms(settings):
    """HubSpot's OAuth app and its account lookup for TOKEN (portal 4242)."""
    settings.HUBSPOT_CLIENT_ID, settings.HUBSPOT_CLIENT_SECRET = "hs-client-id", "hs-secret"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        body = json.dumps({"portalId": 4242})
        mock.add(responses.GET, "https://api.hubapi.com/account-info/v3/details", body=body)
        yield mock


def _what_forms_change(client, broker):
    """Everything the forms above change: connections, contacts, OAuth flows started, queued syncs."""
    return (
        list(CrmConnection.objects.values_list("tenant__slug", "account_id").order_by("pk")),
        list(Contact.objects.values_list("tenant__slug", "email").order_by("pk")),
        client.session.get("syncapp_oauth_nonces", []),
        queued_tasks(broker),
    )


@pytest.mark.parametrize("form", FORMS)
def test_a_form_of_a_page_for_the_tenant_switched_away_from_in_another_tab_is_refused(
    alice, two_tenants, crms, broker, form
):
    acme, zenith = two_tenants["acme"], two_tenants["zenith"]
    url, data = FORMS[form](acme)  # tab 1 shows Acme's page ...
    _switch(alice, zenith)  # ... tab 2 switches to Zenith
    before = _what_forms_change(alice, broker)

    response = alice.post(url, {**data, "page_tenant": acme.tenant_id})

    assert response.status_code == 409
    page = response.content.decode()
    assert "This page was for tenant Acme; you have switched to Zenith in another tab. Reload the page" in page
    assert "selected>Zenith</option>" in page  # the base template's header names the current tenant
    assert _what_forms_change(alice, broker) == before


@pytest.mark.parametrize("form", FORMS)
def test_a_form_of_a_page_for_the_current_tenant_is_applied_to_it(alice, two_tenants, crms, broker, form):
    zenith = two_tenants["zenith"]
    url, data = FORMS[form](zenith)
    _switch(alice, zenith)
    before = _what_forms_change(alice, broker)

    response = alice.post(url, {**data, "page_tenant": zenith.tenant_id})

    assert response.status_code == 302, response.content.decode()
    after = _what_forms_change(alice, broker)
    assert after != before
    if form == "oauth start":
        state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
        assert oauth_state_load(state=state, provider_id="hubspot")["tenant_id"] == zenith.tenant_id
    elif form == "sync now":
        assert [task["args"] for task in after[3]] == [(zenith.pk,)]
    else:
        assert set(after[0] + after[1]) - set(before[0] + before[1]) <= {
            ("zenith", "4242"),
            ("zenith", "grace@tab.example"),
        }


def test_a_page_tenant_that_is_not_ones_own_is_refused_without_naming_it(alice, bob, two_tenants, broker):
    globex = Membership.objects.get(user__username="bob").tenant
    before = _what_forms_change(alice, broker)
    for value in [globex.pk, "x", "", "9" * 40, f"{two_tenants['acme'].tenant_id} "]:
        response = alice.post(reverse("syncapp:contact-new"), {"email": "grace@tab.example", "page_tenant": value})

        assert response.status_code == 409, value
        page = response.content.decode()
        assert "This page was for another tenant; you have switched to Acme in another tab." in page
        assert globex.name not in page
    assert _what_forms_change(alice, broker) == before


class _PostForms(HTMLParser):
    """The POST forms of a page: their action and the values of their hidden page_tenant fields."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("method") == "post":
            self.forms.append({"action": attrs.get("action"), "page_tenant": []})
        elif tag == "input" and attrs.get("name") == "page_tenant" and self.forms:
            assert attrs.get("type") == "hidden"
            self.forms[-1]["page_tenant"].append(attrs.get("value"))

    def handle_endtag(self, tag):
        if tag == "form" and self.forms and "closed" not in self.forms[-1]:
            self.forms[-1]["closed"] = True


def test_every_post_form_of_every_page_names_the_tenant_the_page_is_for(alice, two_tenants):
    zenith = two_tenants["zenith"]
    _switch(alice, zenith)
    # Data that makes every form appear: pronouns to map, a failing record, an automatic and an open conflict.
    CrmConnection.objects.filter(pk=zenith.pk).update(pronouns_message="A field named pronouns exists.")
    failing = ContactLink.objects.filter(connection=zenith).first()
    ContactLink.objects.filter(pk=failing.pk).update(status=ContactLink.Status.ERROR, last_error="invalid")
    automatic = make_conflict(zenith, resolution=SyncConflict.Resolution.AUTOMATIC, winner="crm", email="b@z.example")
    opened = SyncConflict.objects.get(link__connection=zenith, resolution=SyncConflict.Resolution.OPEN)
    contact = opened.link.contact
    pages = [
        "/",
        "/connect/",
        reverse("syncapp:connection-disconnect", args=[zenith.pk]),
        "/contacts/new/",
        reverse("syncapp:contact-edit", args=[contact.pk]),
        reverse("syncapp:contact-delete", args=[contact.pk]),
        "/conflicts/?show=all",
        reverse("syncapp:conflict-detail", args=[automatic.pk]),
        reverse("syncapp:conflict-detail", args=[opened.pk]),
    ]

    seen = set()
    for page in pages:
        parser = _PostForms()
        parser.feed(alice.get(page).content.decode())
        for form in parser.forms:
            name = resolve(urlsplit(form["action"] or page).path).url_name
            if name in {"tenant-switch", "logout"}:  # not about a tenant
                assert form["page_tenant"] == [], page
                continue
            assert form["page_tenant"] == [str(zenith.tenant_id)], (page, name)
            seen.add(name)

    assert seen == {
        "oauth-start",
        "connect-token",
        "connection-disconnect",
        "contact-new",
        "contact-edit",
        "contact-delete",
        "connection-policy",
        "conflict-restore",
        "conflict-pick",
        "connection-sync",
        "connection-pronouns",
        "failing-retry",
    }
