"""OAuth 2.0 authorization-code flow: state, code exchange, connection, refresh, and the two views."""

import base64
import json
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.auth import get_user_model
from django.core import signing

from syncapp.exceptions import OAuthError, ValidationError
from syncapp.models import CrmConnection
from syncapp.providers.base.oauth import (
    oauth_authorization_url,
    oauth_exchange_code,
    oauth_state_load,
    oauth_token_expiring,
)
from syncapp.providers.hubspot.oauth import HUBSPOT_OAUTH
from syncapp.providers.pipedrive.oauth import PIPEDRIVE_OAUTH
from syncapp.services.connections import connection_create
from syncapp.services.oauth import connection_credentials_refresh, oauth_connection_complete
from syncapp.services.tenants import tenant_create

HUBSPOT_SECRET = "hs-client-secret-DO-NOT-LEAK"
PIPEDRIVE_SECRET = "pd-client-secret-DO-NOT-LEAK"
HUBSPOT_TOKEN_URL = "https://api.hubapi.com/oauth/v1/token"
PIPEDRIVE_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"
PIPEDRIVE_DOMAIN = "https://acme-sales.pipedrive.com"


@pytest.fixture(autouse=True)
def oauth_settings(settings):
    settings.HUBSPOT_CLIENT_ID = "hs-client-id"
    settings.HUBSPOT_CLIENT_SECRET = HUBSPOT_SECRET
    settings.PIPEDRIVE_CLIENT_ID = "pd-client-id"
    settings.PIPEDRIVE_CLIENT_SECRET = PIPEDRIVE_SECRET
    settings.PUBLIC_BASE_URL = "https://sync.example.com"
    settings.DEBUG = False


@pytest.fixture
def mocked_responses():
    # Any request without a registered answer fails the test, so "no HTTP call" is checked too.
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def alice_client(client, tenant):
    client.force_login(get_user_model().objects.get(username="alice"))
    return client


def _form(body: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(body).items()}


def _start(client, provider_id: str, **data) -> str:
    """Start a flow through the view and return the state it signed."""
    response = client.post(f"/oauth/{provider_id}/start/", data)
    assert response.status_code == 302, response.content
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def _hubspot_token_answer(mock, *, access_token="hs-access", refresh_token="hs-refresh", url=HUBSPOT_TOKEN_URL):
    mock.post(
        url,
        json={"token_type": "bearer", "access_token": access_token, "refresh_token": refresh_token, "expires_in": 1800},
    )


# Authorization URL and state --------------------------------------------------------


def test_authorization_url_has_client_id_redirect_uri_scopes_and_signed_state():
    url = oauth_authorization_url(
        config=HUBSPOT_OAUTH, tenant_id=7, redirect_uri="https://sync.example.com/oauth/hubspot/callback/"
    )

    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://app.hubspot.com/oauth/authorize"
    assert query["client_id"] == "hs-client-id"
    assert query["redirect_uri"] == "https://sync.example.com/oauth/hubspot/callback/"
    assert query["response_type"] == "code"
    assert query["scope"].split() == list(HUBSPOT_OAUTH.scopes)
    state = oauth_state_load(state=query["state"], provider_id="hubspot")
    assert state["tenant_id"] == 7
    assert state["api_base_url"] == ""
    assert state["nonce"]


def test_every_state_is_unique():
    first, second = (
        oauth_authorization_url(config=HUBSPOT_OAUTH, tenant_id=7, redirect_uri="https://x/cb/") for _ in range(2)
    )
    assert parse_qs(urlsplit(first).query)["state"] != parse_qs(urlsplit(second).query)["state"]


def test_pipedrive_authorization_url_has_no_scope_parameter():
    url = oauth_authorization_url(config=PIPEDRIVE_OAUTH, tenant_id=7, redirect_uri="https://x/cb/")

    assert url.startswith("https://oauth.pipedrive.com/oauth/authorize?")
    assert "scope" not in parse_qs(urlsplit(url).query)


def test_authorization_url_names_the_missing_setting(settings):
    settings.PIPEDRIVE_CLIENT_SECRET = ""

    with pytest.raises(OAuthError, match="PIPEDRIVE_CLIENT_SECRET"):
        oauth_authorization_url(config=PIPEDRIVE_OAUTH, tenant_id=7, redirect_uri="https://x/cb/")


def _state(**overrides) -> str:
    url = oauth_authorization_url(config=HUBSPOT_OAUTH, tenant_id=7, redirect_uri="https://x/cb/", **overrides)
    return parse_qs(urlsplit(url).query)["state"][0]


def test_tampered_state_is_rejected():
    state = _state()
    payload, rest = state.split(":", 1)
    forged = signing.dumps({"tenant_id": 8, "provider_id": "hubspot", "api_base_url": "", "nonce": "x"}, salt="other")

    for bad in (payload[:-1] + ("A" if payload[-1] != "A" else "B") + ":" + rest, forged, "", "garbage"):
        with pytest.raises(OAuthError, match="invalid state"):
            oauth_state_load(state=bad, provider_id="hubspot")


def test_expired_state_is_rejected(monkeypatch):
    state = _state()
    later = time.time() + 601
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: later))

    with pytest.raises(OAuthError, match="expired"):
        oauth_state_load(state=state, provider_id="hubspot")


def test_state_for_another_provider_is_rejected():
    with pytest.raises(OAuthError, match="pipedrive"):
        oauth_state_load(state=_state(), provider_id="pipedrive")


# Start view ---------------------------------------------------------------------------


def test_start_redirects_to_the_provider_for_the_users_first_tenant(alice_client, tenant):
    response = alice_client.post("/oauth/hubspot/start/")

    assert response.status_code == 302
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["redirect_uri"] == ["https://sync.example.com/oauth/hubspot/callback/"]
    assert oauth_state_load(state=query["state"][0], provider_id="hubspot")["tenant_id"] == tenant.pk


def test_start_is_for_the_current_tenant_of_the_pages(alice_client, tenant):
    # alice's first membership is Acme, but the pages start with the first tenant by name.
    aardvark = tenant_create(slug="aardvark", name="Aardvark", username="alice", add_existing_user=True)
    assert "Aardvark" in alice_client.get("/connect/").content.decode()
    assert oauth_state_load(state=_start(alice_client, "hubspot"), provider_id="hubspot")["tenant_id"] == aardvark.pk

    alice_client.post("/tenant/switch/", {"tenant": tenant.pk})

    assert oauth_state_load(state=_start(alice_client, "hubspot"), provider_id="hubspot")["tenant_id"] == tenant.pk


def test_start_takes_no_tenant_from_the_request(alice_client, tenant):
    tenant_create(slug="globex", username="bob")
    tenant_create(slug="acme-eu", username="alice", add_existing_user=True)

    for chosen in ("globex", "acme-eu"):
        state = _start(alice_client, "hubspot", tenant=chosen)
        assert oauth_state_load(state=state, provider_id="hubspot")["tenant_id"] == tenant.pk


def test_start_without_a_tenant_is_forbidden(client, db):
    client.force_login(get_user_model().objects.create_user("loner"))

    assert client.post("/oauth/hubspot/start/").status_code == 403


def test_start_requires_login_and_post(client, alice_client):
    assert alice_client.get("/oauth/hubspot/start/").status_code == 405
    alice_client.logout()

    response = client.post("/oauth/hubspot/start/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_unknown_provider_is_404(alice_client):
    assert alice_client.post("/oauth/salesforce/start/").status_code == 404
    assert alice_client.get("/oauth/salesforce/callback/?code=x&state=y").status_code == 404


@pytest.fixture
def sandbox_override(settings, tenant):
    """The base URL override on, alice staff, and a sandbox on 127.0.0.1:8765 allowed."""
    settings.CRM_API_BASE_OVERRIDE = True
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765"]
    get_user_model().objects.filter(username="alice").update(is_staff=True)


def test_api_base_override_is_off_unless_turned_on_and_then_for_staff_only(alice_client, settings):
    # The override receives the client credentials, so a tenant member must not point it elsewhere.
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765"]
    sandbox = {"api_base": "https://127.0.0.1:8765/hubspot/42"}
    settings.DEBUG = True  # DEBUG no longer turns it on
    assert alice_client.post("/oauth/hubspot/start/", sandbox).status_code == 403
    settings.CRM_API_BASE_OVERRIDE = True
    assert alice_client.post("/oauth/hubspot/start/", sandbox).status_code == 403  # not staff
    get_user_model().objects.filter(username="alice").update(is_staff=True)
    settings.CRM_API_BASE_OVERRIDE = False
    assert alice_client.post("/oauth/hubspot/start/", sandbox).status_code == 403  # staff, but off

    settings.CRM_API_BASE_OVERRIDE = True
    response = alice_client.post("/oauth/hubspot/start/", sandbox)
    assert response["Location"].startswith("https://127.0.0.1:8765/hubspot/42/oauth/authorize?")
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    assert oauth_state_load(state=state, provider_id="hubspot")["api_base_url"] == "https://127.0.0.1:8765/hubspot/42"


def test_plain_http_override_needs_oauthlib_insecure_transport(alice_client, sandbox_override, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)

    response = alice_client.post("/oauth/hubspot/start/", {"api_base": "http://127.0.0.1:8765/hubspot/42"})

    assert response.status_code == 400
    assert "OAUTHLIB_INSECURE_TRANSPORT" in response.content.decode()


# Callback view ------------------------------------------------------------------------


def test_hubspot_callback_creates_a_connection(alice_client, tenant, mocked_responses):
    state = _start(alice_client, "hubspot")
    _hubspot_token_answer(mocked_responses)
    mocked_responses.get(
        "https://api.hubapi.com/oauth/v1/access-tokens/hs-access", json={"hub_id": 62515, "hub_domain": "acme.com"}
    )

    response = alice_client.get("/oauth/hubspot/callback/", {"code": "the-code", "state": state})

    assert response.status_code == 200, response.content
    sent = _form(mocked_responses.calls[0].request.body)
    assert sent == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://sync.example.com/oauth/hubspot/callback/",
        "client_id": "hs-client-id",
        "client_secret": HUBSPOT_SECRET,
    }
    connection = CrmConnection.objects.get(tenant=tenant, provider="hubspot")
    assert connection.account_id == "62515"
    assert connection.api_base_url == ""
    assert "hs-access" not in connection.credentials_encrypted  # encrypted at rest
    credentials = connection.credentials
    assert (credentials["access_token"], credentials["refresh_token"]) == ("hs-access", "hs-refresh")
    assert abs(credentials["expires_at"] - (time.time() + 1800)) < 5
    assert "expires_in" not in credentials
    assert f"#{connection.pk}" in response.content.decode()
    assert "62515" in response.content.decode()


def test_pipedrive_callback_uses_basic_auth_and_stores_api_domain(alice_client, tenant, mocked_responses):
    state = _start(alice_client, "pipedrive")
    mocked_responses.post(
        PIPEDRIVE_TOKEN_URL,
        json={
            "access_token": "pd-access",
            "token_type": "Bearer",
            "refresh_token": "pd-refresh",
            "scope": "base,contacts:full",
            "expires_in": 3599,
            "api_domain": PIPEDRIVE_DOMAIN,
        },
    )
    mocked_responses.get(
        f"{PIPEDRIVE_DOMAIN}/api/v1/users/me", json={"success": True, "data": {"company_id": 54235233}}
    )

    response = alice_client.get("/oauth/pipedrive/callback/", {"code": "pd-code", "state": state})

    assert response.status_code == 200, response.content
    token_request = mocked_responses.calls[0].request
    expected = base64.b64encode(f"pd-client-id:{PIPEDRIVE_SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    sent = _form(token_request.body)
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "pd-code"
    assert "client_secret" not in sent
    assert mocked_responses.calls[1].request.headers["Authorization"] == "Bearer pd-access"
    connection = CrmConnection.objects.get(tenant=tenant, provider="pipedrive")
    assert connection.account_id == "54235233"
    assert connection.api_base_url == PIPEDRIVE_DOMAIN
    assert connection.credentials["api_domain"] == PIPEDRIVE_DOMAIN


def test_provider_error_is_shown(alice_client, mocked_responses):
    state = _start(alice_client, "hubspot")

    response = alice_client.get(
        "/oauth/hubspot/callback/",
        {"error": "access_denied", "error_description": "The user denied access", "state": state},
    )

    assert response.status_code == 400
    assert "The user denied access" in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_token_endpoint_error_is_shown_without_the_client_secret(alice_client, mocked_responses):
    state = _start(alice_client, "hubspot")
    # A server that echoes the request back must not get the secret onto the page.
    mocked_responses.post(
        HUBSPOT_TOKEN_URL,
        status=400,
        json={"status": "BAD_AUTH_CODE", "message": f"missing or invalid auth code (client_secret={HUBSPOT_SECRET})"},
    )

    response = alice_client.get("/oauth/hubspot/callback/", {"code": "stale", "state": state})

    page = response.content.decode()
    assert response.status_code == 400
    assert "missing or invalid auth code" in page
    assert HUBSPOT_SECRET not in page
    assert not CrmConnection.objects.exists()


def test_rfc_error_body_is_shown(mocked_responses, db):
    mocked_responses.post(
        PIPEDRIVE_TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": "Bad client"}
    )

    with pytest.raises(OAuthError, match="invalid_client: Bad client") as excinfo:
        oauth_exchange_code(config=PIPEDRIVE_OAUTH, code="c", redirect_uri="https://x/cb/")
    assert PIPEDRIVE_SECRET not in str(excinfo.value)


def test_callback_with_a_bad_state_is_refused(alice_client, mocked_responses):
    response = alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": "forged"})

    assert response.status_code == 400
    assert "invalid state" in response.content.decode()


def test_user_cannot_complete_a_flow_started_for_another_tenant(alice_client, client, mocked_responses):
    tenant_create(slug="globex", username="bob")
    bob_client = type(client)()
    bob_client.force_login(get_user_model().objects.get(username="bob"))
    bobs_state = _start(bob_client, "hubspot")

    response = alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": bobs_state})

    assert response.status_code == 403
    assert len(mocked_responses.calls) == 0  # the code was never exchanged
    assert not CrmConnection.objects.exists()


def test_a_state_is_accepted_once_and_only_in_the_session_that_started_the_flow(alice_client, tenant, mocked_responses):
    state = _start(alice_client, "hubspot")
    elsewhere = type(alice_client)()  # alice signed in on another browser, fed the same link
    elsewhere.force_login(get_user_model().objects.get(username="alice"))

    refused = elsewhere.get("/oauth/hubspot/callback/", {"code": "c", "state": state})

    assert refused.status_code == 400
    assert "not started in this browser session" in refused.content.decode()
    assert len(mocked_responses.calls) == 0
    _hubspot_token_answer(mocked_responses)
    mocked_responses.get("https://api.hubapi.com/oauth/v1/access-tokens/hs-access", json={"hub_id": 62515})
    assert alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": state}).status_code == 200
    replayed = alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": state})
    assert replayed.status_code == 400 and "already used" in replayed.content.decode()
    assert len(mocked_responses.calls) == 2  # one exchange and its token lookup, nothing for the replay


def test_a_session_keeps_its_five_latest_flows(alice_client, mocked_responses):
    states = [_start(alice_client, "hubspot") for _ in range(6)]

    oldest = alice_client.get("/oauth/hubspot/callback/", {"error": "access_denied", "state": states[0]})
    latest = alice_client.get("/oauth/hubspot/callback/", {"error": "access_denied", "state": states[-1]})

    assert "not started in this browser session" in oldest.content.decode()
    assert "did not grant access: access_denied" in latest.content.decode()
    # A declined authorization used its state up too.
    again = alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": states[-1]})
    assert again.status_code == 400 and "already used" in again.content.decode()


def test_sandbox_override_sends_the_exchange_there_and_refreshes_there(
    alice_client, tenant, sandbox_override, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    base = "http://127.0.0.1:8765/hubspot/42"
    state = _start(alice_client, "hubspot", api_base=base)

    with responses.RequestsMock() as mock:
        _hubspot_token_answer(mock, url=f"{base}/oauth/v1/token")
        mock.get(f"{base}/oauth/v1/access-tokens/hs-access", json={"hub_id": 42})
        response = alice_client.get("/oauth/hubspot/callback/", {"code": "c", "state": state})
    assert response.status_code == 200, response.content
    connection = CrmConnection.objects.get(account_id="42")
    assert connection.api_base_url == base

    with responses.RequestsMock() as mock:
        _hubspot_token_answer(mock, access_token="hs-access-2", url=f"{base}/oauth/v1/token")
        connection_credentials_refresh(connection=connection)
    assert connection.credentials["access_token"] == "hs-access-2"


# Connection service -----------------------------------------------------------------


def _complete_hubspot(mock, tenant, *, hub_id=62515, access_token="hs-access"):
    _hubspot_token_answer(mock, access_token=access_token)
    mock.get(f"https://api.hubapi.com/oauth/v1/access-tokens/{access_token}", json={"hub_id": hub_id})
    return oauth_connection_complete(
        tenant=tenant, provider_id="hubspot", code="c", redirect_uri="https://sync.example.com/oauth/hubspot/callback/"
    )


def test_reconnecting_an_account_updates_its_credentials_and_reactivates_it(tenant, mocked_responses):
    first = _complete_hubspot(mocked_responses, tenant)
    first.status = CrmConnection.Status.ERROR
    first.status_message = "HubSpot refused the token"
    first.save()

    again = _complete_hubspot(mocked_responses, tenant, access_token="hs-access-new")

    assert again.pk == first.pk
    again.refresh_from_db()
    assert again.status == CrmConnection.Status.ACTIVE
    assert again.status_message == ""
    assert again.credentials["access_token"] == "hs-access-new"


def test_an_account_connected_to_another_tenant_is_refused(tenant, mocked_responses):
    other = tenant_create(slug="globex", username="bob")
    connection_create(tenant=other, provider="hubspot", account_id="62515", credentials={"access_token": "x"})

    with pytest.raises(ValidationError, match="another tenant"):
        _complete_hubspot(mocked_responses, tenant)
    assert CrmConnection.objects.get().tenant == other


# Refresh ---------------------------------------------------------------------------------


def test_refresh_keeps_the_old_refresh_token_when_none_is_returned(tenant, mocked_responses):
    connection = connection_create(
        tenant=tenant,
        provider="pipedrive",
        account_id="54235233",
        api_base_url=PIPEDRIVE_DOMAIN,
        credentials={
            "access_token": "old",
            "refresh_token": "keep-me",
            "expires_at": 0,
            "api_domain": PIPEDRIVE_DOMAIN,
        },
    )
    mocked_responses.post(PIPEDRIVE_TOKEN_URL, json={"access_token": "new", "token_type": "Bearer", "expires_in": 3599})

    connection_credentials_refresh(connection=connection)

    sent = _form(mocked_responses.calls[0].request.body)
    assert sent == {"grant_type": "refresh_token", "refresh_token": "keep-me"}
    assert mocked_responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    connection.refresh_from_db()
    credentials = connection.credentials
    assert credentials["access_token"] == "new"
    assert credentials["refresh_token"] == "keep-me"
    assert credentials["api_domain"] == PIPEDRIVE_DOMAIN
    assert not oauth_token_expiring(credentials)


def test_hubspot_refresh_sends_client_credentials_in_the_body(tenant, mocked_responses):
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": "a", "refresh_token": "r"}
    )
    _hubspot_token_answer(mocked_responses, access_token="a2", refresh_token="r2")

    credentials = connection_credentials_refresh(connection=connection)

    sent = _form(mocked_responses.calls[0].request.body)
    assert sent == {
        "grant_type": "refresh_token",
        "refresh_token": "r",
        "client_id": "hs-client-id",
        "client_secret": HUBSPOT_SECRET,
    }
    assert (credentials["access_token"], credentials["refresh_token"]) == ("a2", "r2")


def test_refused_refresh_raises_and_keeps_the_stored_credentials(tenant, mocked_responses):
    stored = {"access_token": "a", "refresh_token": "revoked"}
    connection = connection_create(tenant=tenant, provider="hubspot", account_id="1", credentials=stored)
    mocked_responses.post(HUBSPOT_TOKEN_URL, status=400, json={"status": "BAD_REFRESH_TOKEN", "message": "revoked"})

    with pytest.raises(OAuthError, match="revoked"):
        connection_credentials_refresh(connection=connection)
    connection.refresh_from_db()
    assert connection.credentials == stored


def test_refresh_without_a_refresh_token_is_refused(tenant):
    connection = connection_create(tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": "a"})

    with pytest.raises(OAuthError, match="no refresh token"):
        connection_credentials_refresh(connection=connection)


def test_token_expiring():
    now = time.time()

    assert oauth_token_expiring({"expires_at": now + 60})
    assert oauth_token_expiring({"expires_at": now - 1})
    assert not oauth_token_expiring({"expires_at": now + 3600})
    assert oauth_token_expiring({"expires_at": now + 3600}, margin=4000)
    assert not oauth_token_expiring({"access_token": "private-app-token"})


def test_credentials_are_json_serialisable(mocked_responses):
    _hubspot_token_answer(mocked_responses)

    credentials = oauth_exchange_code(config=HUBSPOT_OAUTH, code="c", redirect_uri="https://x/cb/")

    assert json.loads(json.dumps(credentials)) == credentials
