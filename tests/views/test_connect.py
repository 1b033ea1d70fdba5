"""Connect a CRM: the providers page, pasting a token, disconnecting and reconnecting."""

import json
from urllib.parse import urlsplit

import pytest
import requests
import responses
from django.test import Client
from django.urls import reverse
from django_q.models import Schedule
from responses import matchers

from syncapp.exceptions import OAuthError
from syncapp.models import CrmConnection, SyncRun
from syncapp.services.connections import connection_connect_token, connection_create, connection_disconnect
from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db

TOKEN = "pat-na1-very-secret-token-0123"


@pytest.fixture
def allowed_hosts(settings):
    settings.CRM_API_ALLOWED_HOSTS = ["api.hubapi.com", ".pipedrive.com", "127.0.0.1"]
    return settings


@pytest.fixture
def token_lookup():
    """HubSpot's account details for TOKEN (portal 4242), and any other token refused as HubSpot does."""

    def details(request):
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return 200, {}, json.dumps({"portalId": 4242})
        return 401, {}, json.dumps({"status": "error", "message": "Authentication credentials not found."})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, "https://api.hubapi.com/account-info/v3/details", callback=details)
        yield mock


def _schedule(connection):
    return Schedule.objects.filter(name=f"contactsync-poll-{connection.pk}").first()


def test_the_pages_require_a_login(tenant):
    connection, _ = make_connection(tenant)
    client = Client()
    for method, url in [
        ("get", reverse("syncapp:connect")),
        ("post", reverse("syncapp:connect-token")),
        ("get", reverse("syncapp:connection-disconnect", args=[connection.pk])),
        ("post", reverse("syncapp:connection-disconnect", args=[connection.pk])),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.ACTIVE


def test_the_page_lists_real_providers_with_both_ways_and_not_test_fakes(alice):
    response = alice.get(reverse("syncapp:connect"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "HubSpot" in html and "Pipedrive" in html
    assert 'value="memory"' not in html
    assert reverse("syncapp:oauth-start", args=["hubspot"]) in html
    assert 'name="tenant"' not in html  # the OAuth start takes the session's current tenant
    assert html.count("Connect with this token") == 2
    assert 'name="api_base"' not in html  # the override is off


def test_staff_see_the_api_base_override_only_where_it_is_turned_on(alice, tenant, settings):
    settings.DEBUG = True  # which no longer turns it on
    alice_user = tenant.membership_set.get().user
    alice_user.is_staff = True
    alice_user.save()
    assert 'name="api_base"' not in alice.get(reverse("syncapp:connect")).content.decode()
    settings.CRM_API_BASE_OVERRIDE = True
    assert 'name="api_base"' in alice.get(reverse("syncapp:connect")).content.decode()
    alice_user.is_staff = False
    alice_user.save()
    assert 'name="api_base"' not in alice.get(reverse("syncapp:connect")).content.decode()


def test_the_status_page_links_to_connect(alice):
    assert reverse("syncapp:connect") in alice.get(reverse("syncapp:status")).content.decode()


def test_pasting_a_token_creates_an_encrypted_polled_connection(alice, tenant, token_lookup):
    response = alice.post(
        reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": TOKEN}, follow=True
    )
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("syncapp:status")
    assert "HubSpot 4242: connected" in html
    connection = CrmConnection.objects.get(provider="hubspot", account_id="4242")
    assert connection.tenant == tenant and connection.status == CrmConnection.Status.ACTIVE
    assert connection.credentials == {"access_token": TOKEN}
    assert TOKEN not in connection.credentials_encrypted
    assert _schedule(connection) is not None
    assert TOKEN not in html
    assert TOKEN not in alice.get(reverse("syncapp:connect")).content.decode()


def test_a_duplicate_account_is_refused_on_the_form(alice, tenant, token_lookup):
    connection_create(tenant=tenant, provider="hubspot", account_id="4242", credentials={"access_token": "x"})
    response = alice.post(
        reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": TOKEN}
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "hubspot account 4242 is already connected." in html
    assert TOKEN not in html
    assert CrmConnection.objects.get(provider="hubspot", account_id="4242").credentials == {"access_token": "x"}


def test_another_tenants_account_is_refused_without_naming_it(alice, token_lookup):
    other = tenant_create(slug="globex", name="Globex", username="bob", password="pw-bob-12345")
    connection_create(tenant=other, provider="hubspot", account_id="4242", credentials={"access_token": "x"})
    connection_disconnect(connection=CrmConnection.objects.get(account_id="4242"))
    response = alice.post(
        reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": TOKEN}
    )
    assert response.status_code == 400 and "already connected" in response.content.decode()
    assert "Globex" not in response.content.decode()
    assert CrmConnection.objects.get(account_id="4242").tenant == other


def test_the_account_id_is_read_from_the_token_and_a_typed_one_must_match(alice, tenant, token_lookup):
    wrong = alice.post(reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "999", "token": TOKEN})
    assert wrong.status_code == 400
    assert "This token opens hubspot account 4242, not 999." in wrong.content.decode()
    assert not CrmConnection.objects.exists()

    blank = alice.post(reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "", "token": TOKEN})

    assert blank.status_code == 302
    assert CrmConnection.objects.get(tenant=tenant).account_id == "4242"


def test_a_token_the_crm_refuses_is_an_error_on_the_form_and_connects_nothing(alice, token_lookup):
    response = alice.post(
        reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": "pat-na1-revoked"}
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert "failed (401): Authentication credentials not found." in html
    assert "pat-na1-revoked" not in html
    assert not CrmConnection.objects.exists()


def test_a_pipedrive_api_token_is_sent_as_x_api_token_to_find_the_company(alice, tenant):
    with responses.RequestsMock() as mock:
        mock.get(
            "https://api.pipedrive.com/api/v1/users/me",
            json={"success": True, "data": {"id": 1, "company_id": 8087566}},
            match=[matchers.header_matcher({"x-api-token": "pd-token"})],
        )
        response = alice.post(reverse("syncapp:connect-token"), {"provider": "pipedrive", "token": "pd-token"})

    assert response.status_code == 302
    assert CrmConnection.objects.get(tenant=tenant, provider="pipedrive").account_id == "8087566"


def test_unknown_provider_and_test_fakes_are_refused(alice):
    for provider in ("salesforce", "memory"):
        response = alice.post(
            reverse("syncapp:connect-token"), {"provider": provider, "account_id": "1", "token": TOKEN}
        )
        assert response.status_code == 400 and f"Unknown provider &#x27;{provider}&#x27;" in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_a_disallowed_base_url_is_refused(alice, tenant, allowed_hosts):
    allowed_hosts.CRM_API_BASE_OVERRIDE = True
    alice_user = tenant.membership_set.get().user
    alice_user.is_staff = True
    alice_user.save()
    data = {"provider": "hubspot", "account_id": "4242", "token": TOKEN, "api_base": "https://evil.example/api"}
    response = alice.post(reverse("syncapp:connect-token"), data)
    assert response.status_code == 400
    assert "is neither a host of the CRM nor in CRM_API_ALLOWED_HOSTS" in response.content.decode()
    assert not CrmConnection.objects.exists()


@pytest.mark.parametrize("override", [False, True])
def test_non_staff_may_not_override_the_base_url(alice, allowed_hosts, override):
    allowed_hosts.CRM_API_BASE_OVERRIDE = override
    data = {"provider": "hubspot", "account_id": "4242", "token": TOKEN, "api_base": "http://127.0.0.1:9/hubspot"}
    response = alice.post(reverse("syncapp:connect-token"), data)
    assert response.status_code == 400 and "cannot be changed here" in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_staff_may_not_override_the_base_url_while_the_override_is_off(alice, tenant, allowed_hosts):
    tenant.membership_set.get().user.__class__.objects.filter(username="alice").update(is_staff=True)
    data = {"provider": "hubspot", "account_id": "4242", "token": TOKEN, "api_base": "http://127.0.0.1:9/hubspot"}
    response = alice.post(reverse("syncapp:connect-token"), data)
    assert response.status_code == 400 and "cannot be changed here" in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_every_post_needs_the_csrf_token(tenant):
    connection, _ = make_connection(tenant)
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="alice", password="pw-alice-123")
    for url, data in [
        (reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": TOKEN}),
        (reverse("syncapp:connection-disconnect", args=[connection.pk]), {}),
        (reverse("syncapp:oauth-start", args=["hubspot"]), {"tenant": "acme"}),
    ]:
        assert client.post(url, data).status_code == 403, url
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.ACTIVE
    assert not CrmConnection.objects.filter(provider="hubspot").exists()


def test_disconnect_confirms_then_stops_the_schedule_and_keeps_the_history(alice, tenant):
    connection, _ = make_connection(tenant)
    SyncRun.objects.create(connection=connection, status=SyncRun.Status.SUCCEEDED)
    assert _schedule(connection) is not None
    url = reverse("syncapp:connection-disconnect", args=[connection.pk])
    assert "data-disconnect" in alice.get(reverse("syncapp:status")).content.decode()

    confirm = alice.get(url)
    assert confirm.status_code == 200 and "Disconnect In-memory CRM crm-1?" in confirm.content.decode()
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.ACTIVE

    response = alice.post(url, follow=True)
    html = response.content.decode()
    assert "In-memory CRM crm-1: disconnected" in html and "data-disconnected" in html and "data-reconnect" in html
    assert '<span class="badge disconnected">Disconnected</span>' in html
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.DISCONNECTED
    assert connection.credentials == {}
    assert _schedule(connection) is None
    assert SyncRun.objects.filter(connection=connection).count() == 1

    assert "already disconnected" in alice.post(url, follow=True).content.decode()


def test_another_tenants_user_gets_404_on_disconnect(tenant):
    connection, _ = make_connection(tenant)
    tenant_create(slug="globex", name="Globex", username="bob", password="pw-bob-12345")
    bob = Client()
    assert bob.login(username="bob", password="pw-bob-12345")
    url = reverse("syncapp:connection-disconnect", args=[connection.pk])
    assert bob.get(url).status_code == 404
    assert bob.post(url).status_code == 404
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.ACTIVE and _schedule(connection) is not None


def test_pasting_a_token_again_reconnects_a_disconnected_connection(alice, tenant, token_lookup):
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id="4242", credentials={"access_token": "old"}
    )
    SyncRun.objects.create(connection=connection, status=SyncRun.Status.SUCCEEDED)
    connection_disconnect(connection=connection)
    response = alice.post(
        reverse("syncapp:connect-token"), {"provider": "hubspot", "account_id": "4242", "token": TOKEN}
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert CrmConnection.objects.filter(account_id="4242").count() == 1
    assert connection.status == CrmConnection.Status.ACTIVE
    assert connection.credentials == {"access_token": TOKEN}
    assert _schedule(connection) is not None
    assert SyncRun.objects.filter(connection=connection).count() == 1


def test_connection_create_reconnects_only_this_tenants_disconnected_account(tenant):
    connection, _ = make_connection(tenant)
    with pytest.raises(Exception, match="already connected"):
        make_connection(tenant)  # active: still a duplicate
    connection_disconnect(connection=connection)
    again = connection_create(tenant=tenant, provider="memory", account_id="crm-1", credentials={"token": "new"})
    assert again.pk == connection.pk and again.status == CrmConnection.Status.ACTIVE
    assert again.credentials == {"token": "new"}


def test_oauth_round_trip_from_the_connect_page_against_the_sandbox(alice, tenant, crm_sandbox, settings, monkeypatch):
    """The connect page's OAuth form, the sandbox's auto-approving authorize step, and the callback."""
    settings.CRM_API_BASE_OVERRIDE = True
    settings.HUBSPOT_CLIENT_ID, settings.HUBSPOT_CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
    settings.PUBLIC_BASE_URL = "http://testserver"
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    user = tenant.membership_set.get().user
    user.is_staff = True
    user.save()
    account = crm_sandbox.sandbox.account_create("hubspot")

    page = alice.get(reverse("syncapp:connect")).content.decode()
    assert "data-oauth-form" in page and 'name="api_base"' in page
    start = alice.post(
        reverse("syncapp:oauth-start", args=["hubspot"]), {"tenant": "acme", "api_base": account.base_url}
    )
    assert start.status_code == 302 and start["Location"].startswith(account.base_url)

    authorized = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert authorized.status_code == 302
    callback = urlsplit(authorized.headers["Location"])
    assert callback.path == reverse("syncapp:oauth-callback", args=["hubspot"])
    done = alice.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 200, done.content

    connection = CrmConnection.objects.get(provider="hubspot", account_id=str(account.account_id))
    assert connection.tenant == tenant and connection.api_base_url == account.base_url
    assert connection.credentials["refresh_token"]
    assert connection.credentials["access_token"] not in done.content.decode()
    assert _schedule(connection) is not None

    # Disconnect, then OAuth again reconnects the same connection with fresh credentials.
    alice.post(reverse("syncapp:connection-disconnect", args=[connection.pk]))
    start = alice.post(
        reverse("syncapp:oauth-start", args=["hubspot"]), {"tenant": "acme", "api_base": account.base_url}
    )
    callback = urlsplit(requests.get(start["Location"], allow_redirects=False, timeout=10).headers["Location"])
    assert alice.get(f"{callback.path}?{callback.query}").status_code == 200
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.ACTIVE and connection.credentials["access_token"]
    assert _schedule(connection) is not None


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_a_pasted_sandbox_token_finds_its_account_and_a_wrong_one_is_refused(tenant, crm_sandbox, provider):
    account = crm_sandbox.sandbox.account_create(provider)

    with pytest.raises(OAuthError, match=r"failed \(401\)"):
        connection_connect_token(tenant=tenant, provider=provider, token="not-a-token", api_base_url=account.base_url)
    connection = connection_connect_token(
        tenant=tenant, provider=provider, token=account.token, api_base_url=account.base_url
    )

    assert connection.account_id == str(account.account_id)
    assert connection.credentials == {"access_token": account.token}
