"""The account lookups of `connection add` and the OAuth callback retry transient errors like every CRM request.

Each CRM is asked which account a token opens before a connection exists, so there is no client yet;
the lookup still goes through the shared retry policy (syncapp/providers/base/client.py).
"""

import pytest
import requests
import responses
from django.core.management import call_command

from syncapp.exceptions import OAuthError
from syncapp.models import CrmConnection
from syncapp.providers.hubspot.adapter import HubspotAdapter
from syncapp.providers.pipedrive.adapter import PipedriveAdapter

LOOKUPS = {
    "hubspot private-app token": (
        lambda: HubspotAdapter.token_account_id(token="pat-na1-secret", api_base_url=""),
        "https://api.hubapi.com/account-info/v3/details",
        {"portalId": 62515},
        "62515",
    ),
    "hubspot oauth token": (
        lambda: HubspotAdapter.oauth_account_id(access_token="hs-access", api_base_url=""),
        "https://api.hubapi.com/oauth/v1/access-tokens/hs-access",
        {"hub_id": 62515},
        "62515",
    ),
    "pipedrive api token": (
        lambda: PipedriveAdapter.token_account_id(token="pd-secret", api_base_url=""),
        "https://api.pipedrive.com/api/v1/users/me",
        {"success": True, "data": {"company_id": 777}},
        "777",
    ),
    "pipedrive oauth token": (
        lambda: PipedriveAdapter.oauth_account_id(access_token="pd-access", api_base_url="https://acme.pipedrive.com"),
        "https://acme.pipedrive.com/api/v1/users/me",
        {"success": True, "data": {"company_id": 777}},
        "777",
    ),
}


@pytest.fixture(params=list(LOOKUPS), ids=list(LOOKUPS))
def lookup(request):
    return LOOKUPS[request.param]


@pytest.fixture
def waits(monkeypatch):
    recorded: list[float] = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", recorded.append)
    return recorded


@pytest.mark.parametrize(
    "transient",
    [
        {"status": 503, "json": {"message": "Service unavailable"}},
        {"status": 500, "body": "oops"},
        {"body": requests.ConnectionError("Connection aborted: RemoteDisconnected")},
        {"body": requests.ReadTimeout("read timed out")},
    ],
    ids=["503", "500", "dropped connection", "timeout"],
)
def test_a_transient_failure_then_an_answer_finds_the_account(lookup, transient, waits):
    find, url, answer, account_id = lookup
    with responses.RequestsMock() as mock:
        failed = mock.get(url, **transient)
        answered = mock.get(url, json=answer)
        assert find() == account_id
    assert (failed.call_count, answered.call_count, len(waits)) == (1, 1, 1)


def test_a_429_waits_what_the_crm_asks_then_finds_the_account(lookup, waits):
    find, url, answer, account_id = lookup
    with responses.RequestsMock() as mock:
        mock.get(url, status=429, headers={"Retry-After": "7"}, json={"message": "Too many requests"})
        mock.get(url, json=answer)
        assert find() == account_id
    assert waits == [7.0]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refusal_is_not_retried(lookup, status, waits):
    find, url, _, _ = lookup
    with responses.RequestsMock() as mock:
        refused = mock.get(url, status=status, json={"message": "Bad token."})
        with pytest.raises(OAuthError, match=rf"failed \({status}\): Bad token\."):
            find()
    assert (refused.call_count, waits) == (1, [])


def test_retries_stop_at_the_limit_with_the_crms_reason(lookup, waits, settings):
    settings.HTTP_RETRY_ATTEMPTS = 2
    find, url, _, _ = lookup
    with responses.RequestsMock() as mock:
        failing = mock.get(url, status=503, json={"message": "Down for maintenance"})
        with pytest.raises(OAuthError, match=r"failed \(503\): Down for maintenance"):
            find()
    assert (failing.call_count, len(waits)) == (3, 2)


def test_a_retry_after_too_long_to_wait_inline_fails_at_once_with_the_reason(lookup, waits):
    find, url, _, _ = lookup
    with responses.RequestsMock() as mock:
        limited = mock.get(url, status=429, headers={"Retry-After": "3600"}, json={"message": "Daily limit"})
        with pytest.raises(OAuthError, match=r"failed \(429\): Daily limit"):
            find()
    assert (limited.call_count, waits) == (1, [])


@pytest.mark.django_db
def test_connection_add_survives_one_5xx_of_the_account_lookup(tenant, waits):
    url = "https://api.pipedrive.com/api/v1/users/me"
    with responses.RequestsMock() as mock:
        mock.get(url, status=502, body="Bad gateway")
        mock.get(url, json={"success": True, "data": {"company_id": 777}})
        call_command("connection", "add", "--tenant", "acme", "--provider", "pipedrive", "--token", "pd-secret")
    assert list(CrmConnection.objects.values_list("provider", "account_id")) == [("pipedrive", "777")]
