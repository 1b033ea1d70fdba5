"""Where tokens and client secrets may be sent: the API base URL as the HTTP client reads it (issue 11).

An attacker here is a tenant member (the Connect page, the OAuth start), an operator's typo or a
pasted URL (``connection add``, the admin), or the remote side of the OAuth flow (Pipedrive's
``api_domain``). A listener on loopback stands for the server that must never receive anything.
"""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter, get_exception_reporter_class

from syncapp.exceptions import OAuthError, ProviderAuthError, ProviderError, ValidationError
from syncapp.models import CrmConnection
from syncapp.providers import get_adapter, get_adapter_class
from syncapp.providers.pipedrive.client import PipedriveClient
from syncapp.services.connections import api_base_validate, connection_create
from syncapp.services.oauth import connection_credentials_refresh, oauth_connection_complete
from syncapp.services.sync import connection_sync
from syncapp.views.connect import connect_token

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "pat-na1-listener-must-never-see-this"
CLIENT_SECRET = "hs-client-secret-DO-NOT-LEAK"
INTERNAL_WORDS = "internal-service-says-hello"
CODE = "one-time-authorization-code"
SECRET_NAMES = {"token", "code", "client_secret"}


class Listener:
    """An HTTP server on loopback that records every request and answers 401 with a tell-tale body."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                body = json.dumps({"message": INTERNAL_WORDS, "error": INTERNAL_WORDS}).encode()
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.netloc = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.url = f"http://{self.netloc}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.stop()


@pytest.fixture
def no_allowed_hosts(settings):
    settings.CRM_API_ALLOWED_HOSTS = []
    settings.HUBSPOT_CLIENT_ID, settings.HUBSPOT_CLIENT_SECRET = "hs-client-id", CLIENT_SECRET
    settings.PIPEDRIVE_CLIENT_ID, settings.PIPEDRIVE_CLIENT_SECRET = "pd-client-id", "pd-secret-DO-NOT-LEAK"
    return settings


@pytest.fixture
def staff_override(settings, tenant):
    """A staff member with the override on, and the listener's port allowed (the sandbox's place)."""
    settings.CRM_API_BASE_OVERRIDE = True
    get_user_model().objects.filter(username="alice").update(is_staff=True)
    return settings


# The allowlist as the HTTP client reads the URL ----------------------------------------------------


@pytest.mark.parametrize("provider, crm_host", [("hubspot", "api.hubapi.com"), ("pipedrive", "api.pipedrive.com")])
def test_connection_add_sends_no_token_past_the_allowlist_through_a_backslash(
    tenant, no_allowed_hosts, listener, provider, crm_host
):
    # urlsplit reads the host after the "@"; requests connects to the one before the backslash.
    with pytest.raises(CommandError, match="plain http"):
        call_command(
            "connection", "add", "--tenant", "acme", "--provider", provider, "--token", TOKEN,
            "--api-base", f"{listener.url}\\@{crm_host}",
        )  # fmt: skip
    assert listener.received == [] and not CrmConnection.objects.exists()


def test_the_oauth_exchange_posts_no_client_secret_past_the_allowlist(tenant, no_allowed_hosts, listener):
    with pytest.raises(ValidationError):
        oauth_connection_complete(
            tenant=tenant,
            provider_id="hubspot",
            code="c",
            redirect_uri="https://sync.example.com/cb",
            api_base_url=f"{listener.url}\\@api.hubapi.com",
        )
    assert listener.received == []


def test_pipedrives_api_domain_from_the_token_response_is_checked_before_the_token_goes_there(
    tenant, no_allowed_hosts, listener
):
    token = {"access_token": "pd-access", "refresh_token": "pd-refresh", "expires_in": 3600, "token_type": "Bearer"}
    with responses.RequestsMock() as mock:
        mock.post(
            "https://oauth.pipedrive.com/oauth/token",
            json={**token, "api_domain": f"{listener.url}\\@acme.pipedrive.com"},
        )
        mock.add_passthru(listener.url)
        with pytest.raises(ValidationError):
            oauth_connection_complete(
                tenant=tenant, provider_id="pipedrive", code="c", redirect_uri="https://sync.example.com/cb"
            )
    assert listener.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:18998\\@api.hubapi.com",
        "https://user:pw@api.hubapi.com",
        "https://api.hubapi.com@127.0.0.1",
        "https://api.hubapi.com/?x=1",
        "https://api.hubapi.com/?",
        "https://api.hubapi.com/#frag",
        "https://api.hubapi.com/a b",
        "https://api.hubapi.com/\tx",
        "https://api.hubapi.com\x00.evil.example",
        "https://api.hubapi.com/x\r\nHost: evil",
        "https://api.hubapi.com/%2e%2e/admin",
        "https://api.hubapi.com/a/../b",
        "https://api.hubapi.com.",
        "https://api.hubäpi.com",
        "http://[::1",
        "http://api.hubapi.com:0",
        "http://api.hubapi.com:99999",
        "ftp://api.hubapi.com",
        "file:///etc/passwd",
        "//api.hubapi.com",
        "api.hubapi.com",
    ],
)
def test_a_url_the_http_client_could_read_otherwise_is_refused(no_allowed_hosts, url):
    with pytest.raises(ValidationError):
        api_base_validate(url, provider="hubspot")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:8765",  # decimal
        "http://0x7f000001:8765",
        "http://0x7f.1:8765",  # hex, short
        "http://127.1:8765",
        "http://0177.0.0.1:8765",  # octal
        "http://0x7f.0x0.0x0.0x1:8765",
        "http://127.0.0.1:8766",  # another port than the listed one
        "http://localhost:8765",  # a name is not its address
    ],
)
def test_ip_spellings_do_not_get_around_the_list(settings, url):
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765"]
    with pytest.raises(ValidationError):
        api_base_validate(url, provider="hubspot")


@pytest.mark.parametrize(
    "url, stored",
    [
        ("HTTPS://API.HUBAPI.COM/", "https://api.hubapi.com"),
        ("https://api.hubapi.com:443/", "https://api.hubapi.com:443"),
        ("http://[::ffff:127.0.0.1]:8765/hubspot/1/", "http://127.0.0.1:8765/hubspot/1"),
        ("http://127.0.0.1:8765/hubspot/1", "http://127.0.0.1:8765/hubspot/1"),
        ("http://[0:0::1]:9000/x", "http://[::1]:9000/x"),
    ],
)
def test_the_stored_url_is_rebuilt_from_the_checked_parts(settings, url, stored):
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765", "[::1]:9000"]
    assert api_base_validate(url, provider="hubspot") == stored


def test_a_host_entry_allows_every_port_and_a_host_port_entry_only_its_own(settings):
    settings.CRM_API_ALLOWED_HOSTS = ["sandbox.internal", "127.0.0.1:8765", "::1"]
    assert api_base_validate("https://sandbox.internal:8443", provider="hubspot") == "https://sandbox.internal:8443"
    assert api_base_validate("http://[::1]:1234", provider="hubspot") == "http://[::1]:1234"
    with pytest.raises(ValidationError, match=r"\(port 80\)"):
        api_base_validate("http://127.0.0.1", provider="hubspot")


def test_the_defaults_allow_no_other_host_and_no_override():
    script = (
        "import environ; environ.Env.read_env = lambda *a, **k: None\n"
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "print(repr((settings.CRM_API_ALLOWED_HOSTS, settings.CRM_API_BASE_OVERRIDE, settings.DEBUG)))\n"
    )
    unset = {"CRM_API_ALLOWED_HOSTS", "CRM_API_BASE_OVERRIDE", "SECRET_KEY", "SYNC_ENCRYPTION_KEY", "DEBUG"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "contactsync.settings", "DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "([], False, True)"  # even with DEBUG on


# A stored URL and the paths joined to it ------------------------------------------------------------


def test_a_stored_url_written_before_the_check_sends_nothing(tenant, no_allowed_hosts, listener):
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": TOKEN}
    )
    CrmConnection.objects.filter(pk=connection.pk).update(api_base_url=f"{listener.url}\\@api.hubapi.com")
    connection.refresh_from_db()

    run = connection_sync(connection=connection, full=True)

    assert run.status == "failed" and "API base URL is refused" in run.error
    assert listener.received == []
    with pytest.raises(ProviderAuthError):
        get_adapter(connection).client.property_list()
    assert listener.received == []


def test_a_stored_token_endpoint_outside_the_list_gets_no_client_secret(tenant, no_allowed_hosts, listener):
    connection = connection_create(
        tenant=tenant,
        provider="hubspot",
        account_id="1",
        credentials={"access_token": "a", "refresh_token": "r", "token_url": f"{listener.url}/oauth/v1/token"},
    )
    with pytest.raises(OAuthError, match="token endpoint is refused"):
        connection_credentials_refresh(connection=connection)
    assert listener.received == []


def test_an_id_in_a_path_stays_in_its_segment(tenant):
    connection = connection_create(
        tenant=tenant, provider="pipedrive", account_id="1", credentials={"access_token": "pd-token"}
    )
    client = PipedriveClient(connection=connection)
    with responses.RequestsMock() as mock:
        mock.get("https://api.pipedrive.com/api/v2/persons/1%3Fx%3D1%23", json={"data": {"id": 1}})
        assert client.person_get("1?x=1#") == {"id": 1}
        assert mock.calls[0].request.url.endswith("/persons/1%3Fx%3D1%23")
        with pytest.raises(ProviderError, match="leaves its API endpoint"):
            client.person_get("../../v1/webhooks")
        assert len(mock.calls) == 1


# A member cannot make the server fetch other URLs, or read their answers ------------------------------


@pytest.mark.parametrize("url_name", ["syncapp:connect-token", "syncapp:oauth-start"])
def test_a_member_gets_no_override_even_with_debug_on(alice, settings, listener, url_name):
    settings.DEBUG = True
    settings.CRM_API_ALLOWED_HOSTS = [listener.netloc]
    args = ["hubspot"] if url_name == "syncapp:oauth-start" else []
    data = {"provider": "hubspot", "token": TOKEN, "tenant": "acme", "api_base": listener.url}
    response = alice.post(reverse(url_name, args=args), data)
    assert response.status_code in (400, 403)
    assert "cannot be changed here" in response.content.decode()
    assert listener.received == [] and not CrmConnection.objects.exists()


@pytest.mark.parametrize("url_name", ["syncapp:connect-token", "syncapp:oauth-start"])
@pytest.mark.parametrize("api_base", ["http://[::1", "http://[::1]:99999", "http://x\\@api.hubapi.com"])
def test_a_malformed_base_url_is_a_form_error_not_a_500(alice, staff_override, url_name, api_base):
    args = ["hubspot"] if url_name == "syncapp:oauth-start" else []
    data = {"provider": "hubspot", "token": TOKEN, "tenant": "acme", "api_base": api_base}
    response = alice.post(reverse(url_name, args=args), data)
    assert response.status_code == 400 and "plain http(s) URL" in response.content.decode()


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
@pytest.mark.parametrize("token", ["pat-ünïcode", "pat-\x00nul", "pat\tx", "pat x", "pat\u200bzero-width"])
def test_a_pasted_token_outside_visible_ascii_is_a_form_error(alice, provider, token):
    with responses.RequestsMock():  # any call to the CRM fails the test
        response = alice.post(reverse("syncapp:connect-token"), {"provider": provider, "token": token})
    assert response.status_code == 400 and "visible ASCII" in response.content.decode()
    assert not CrmConnection.objects.exists()


def test_an_overridden_hosts_answer_is_not_shown_on_the_connect_page(alice, staff_override, listener):
    staff_override.CRM_API_ALLOWED_HOSTS = [listener.netloc]
    data = {"provider": "hubspot", "token": TOKEN, "api_base": listener.url}
    page = alice.post(reverse("syncapp:connect-token"), data).content.decode()
    assert "failed (401)" in page and INTERNAL_WORDS not in page
    assert len(listener.received) == 1  # staff may reach the allowed sandbox, and see only the status


def test_an_overridden_token_endpoints_answer_is_not_shown_after_the_oauth_exchange(
    tenant, no_allowed_hosts, listener, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    no_allowed_hosts.CRM_API_ALLOWED_HOSTS = [listener.netloc]
    with pytest.raises(OAuthError) as refused:
        oauth_connection_complete(
            tenant=tenant, provider_id="hubspot", code="c", redirect_uri="https://x/cb", api_base_url=listener.url
        )
    assert "401" in str(refused.value) and INTERNAL_WORDS not in str(refused.value)


def test_an_overridden_hosts_answer_is_not_in_a_sync_error(tenant, settings, listener):
    settings.CRM_API_ALLOWED_HOSTS = [listener.netloc]
    connection = connection_create(
        tenant=tenant,
        provider="hubspot",
        account_id="1",
        credentials={"access_token": TOKEN},
        api_base_url=listener.url,
    )
    run = connection_sync(connection=connection, full=True)
    connection.refresh_from_db()
    assert run.status == "failed" and "HubSpot answered 401." in run.error
    assert INTERNAL_WORDS not in run.error + connection.status_message


def test_the_crms_own_hosts_answers_are_still_shown(tenant, settings):
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": TOKEN}
    )
    with responses.RequestsMock() as mock:
        mock.get("https://api.hubapi.com/crm/v3/properties/contacts", status=401, json={"message": "Token expired"})
        with pytest.raises(ProviderAuthError, match="Token expired"):
            get_adapter(connection).client.property_list()


# Crash reports -------------------------------------------------------------------------------------


def _crash_report(view, request, *args):
    try:
        view(request, *args)
    except RuntimeError:
        reporter = ExceptionReporter(request, *sys.exc_info())
    else:
        raise AssertionError("the view did not crash")
    return reporter.get_traceback_text(), reporter.get_traceback_frames()


def test_a_crash_report_hides_a_pasted_token(tenant, settings, monkeypatch):
    settings.DEBUG = False  # reports are filtered when DEBUG is off, as in production
    hubspot = get_adapter_class("hubspot")

    def crash(**kwargs):
        raise RuntimeError("the CRM lookup crashed")

    monkeypatch.setattr(hubspot, "token_account_id", crash)
    request = RequestFactory().post(reverse("syncapp:connect-token"), {"provider": "hubspot", "token": TOKEN})
    request.user = get_user_model().objects.get(username="alice")
    request.session = {}

    text, frames = _crash_report(connect_token, request)

    assert "the CRM lookup crashed" in text and TOKEN not in text
    hidden = [value for frame in frames for name, value in frame["vars"] if name in SECRET_NAMES]
    assert hidden and all("*****" in value for value in hidden)


def test_a_crash_report_hides_the_code_and_the_client_secret(alice, no_allowed_hosts, monkeypatch):
    from requests_oauthlib import OAuth2Session

    no_allowed_hosts.DEBUG = False
    started = alice.post(reverse("syncapp:oauth-start", args=["hubspot"]))
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]

    def crash(self, *args, **kwargs):
        raise RuntimeError("the token endpoint crashed")

    monkeypatch.setattr(OAuth2Session, "fetch_token", crash)
    with pytest.raises(RuntimeError) as crashed:
        alice.get(reverse("syncapp:oauth-callback", args=["hubspot"]), {"code": CODE, "state": state})

    # The report of the view's frames and below; the request's own query string is not part of this check.
    reporter = ExceptionReporter(RequestFactory().get("/"), crashed.type, crashed.value, crashed.tb)
    text = reporter.get_traceback_text()
    assert "the token endpoint crashed" in text
    assert CLIENT_SECRET not in text and CODE not in text
    frames = {frame["function"]: dict(frame["vars"]) for frame in reporter.get_traceback_frames()}
    assert "*****" in frames["oauth_callback"]["code"]
    assert "*****" in frames["oauth_connection_complete"]["code"]
    assert "*****" in frames["oauth_exchange_code"]["client_secret"]


def test_a_crash_report_masks_the_code_in_the_query_string(settings):
    settings.DEBUG = False
    request = RequestFactory().get(
        "/oauth/hubspot/callback/", {"code": CODE, "state": "s-1"}, RAW_URI="/x?code=" + CODE
    )
    try:
        raise RuntimeError("the callback crashed")
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())

    for report in (reporter.get_traceback_text(), reporter.get_traceback_html()):
        assert "the callback crashed" in report and "s-1" in report
        assert CODE not in report


# Redirects and plain http ----------------------------------------------------------------------------


class Redirector(Listener):
    """A server on loopback that answers every request with a redirect to ``target``."""

    def __init__(self, target: str, status: int = 307):
        super().__init__()
        handler = self.httpd.RequestHandlerClass
        handler.do_GET = handler.do_POST = handler.do_PATCH = lambda request: self._redirect(request, target, status)

    @staticmethod
    def _redirect(handler, target, status):
        handler.send_response(status)
        handler.send_header("Location", target + handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


@pytest.fixture
def redirector(listener):
    server = Redirector(listener.url)
    yield server
    server.stop()


def test_a_crm_redirect_is_not_followed_with_the_token(tenant, no_allowed_hosts, listener, redirector):
    no_allowed_hosts.CRM_API_ALLOWED_HOSTS = [redirector.netloc]
    connection = connection_create(
        tenant=tenant, provider="pipedrive", account_id="1", credentials={"access_token": TOKEN},
        api_base_url=redirector.url,
    )  # fmt: skip
    with pytest.raises(ProviderError, match="redirect"):
        get_adapter(connection).client.person_get("1")
    assert listener.received == []


def test_the_token_check_follows_no_redirect(alice, staff_override, listener, redirector):
    staff_override.CRM_API_ALLOWED_HOSTS = [redirector.netloc]
    data = {"provider": "pipedrive", "token": TOKEN, "api_base": redirector.url}
    response = alice.post(reverse("syncapp:connect-token"), data)
    assert response.status_code == 400 and "redirect" in response.content.decode()
    assert listener.received == []


def test_the_oauth_exchange_follows_no_redirect_with_the_client_secret(
    tenant, no_allowed_hosts, listener, redirector, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    no_allowed_hosts.CRM_API_ALLOWED_HOSTS = [redirector.netloc]
    with pytest.raises(OAuthError, match="redirect"):
        oauth_connection_complete(
            tenant=tenant,
            provider_id="hubspot",
            code=CODE,
            redirect_uri="https://sync.example.com/cb",
            api_base_url=redirector.url,
        )
    assert listener.received == []


@pytest.mark.parametrize(
    "provider, url", [("hubspot", "http://api.hubapi.com"), ("pipedrive", "http://acme.pipedrive.com")]
)
def test_the_crms_own_host_needs_https(no_allowed_hosts, provider, url):
    with pytest.raises(ValidationError, match="https"):
        api_base_validate(url, provider=provider)
    assert api_base_validate(url.replace("http:", "https:"), provider=provider) == url.replace("http:", "https:")
