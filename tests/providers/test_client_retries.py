"""The retry loop every CRM client shares (syncapp/providers/base/client.py), with real backoff settings.

tests/conftest.py sets HTTP_RETRY_BASE_DELAY = 0 for speed; here it is set back to a real base and the
waits are recorded instead of slept. The formula under test is tenacity's wait_exponential_jitter with
multiplier = jitter = base and max = 30 * base: after the n-th failed attempt the client waits
base * 2 ** (n - 1) + uniform(0, base), never more than 30 * base. A wait the CRM asks for
(Retry-After) replaces the backoff. HTTP_RETRY_ATTEMPTS counts retries: one call plus that many more.
"""

import pytest
import requests
import responses

from syncapp.exceptions import ProviderError, RateLimitedError, TransientProviderError
from syncapp.providers.base.client import CrmClient
from syncapp.providers.hubspot.client import HubspotClient
from syncapp.services.connections import connection_create

pytestmark = pytest.mark.django_db

API = "https://api.hubapi.com"
PROPERTY = "/crm/v3/properties/contacts/email"
URL = API + PROPERTY


class PlainClient(CrmClient):
    """A CRM client with nothing but authentication: the base class's error mapping and retry loop."""

    default_base_url = "https://crm.example.test"
    name = "Plain"

    def token_headers(self, credentials):
        return {"Authorization": f"Bearer {credentials.get('access_token', '')}"}


@pytest.fixture
def connection(tenant):
    return connection_create(
        tenant=tenant, provider="hubspot", account_id="62515", credentials={"access_token": "pat-na1-secret"}
    )


@pytest.fixture
def client(connection):
    return HubspotClient(connection=connection)


@pytest.fixture
def waits(monkeypatch, settings):
    """The waits the retry loop asks for, recorded instead of slept, with a real backoff base."""
    settings.HTTP_RETRY_BASE_DELAY = 1
    recorded: list[float] = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", recorded.append)

    def no_real_sleep(seconds):
        raise AssertionError(f"time.sleep({seconds}) called: the retry loop must sleep through _sleep")

    monkeypatch.setattr("time.sleep", no_real_sleep)
    return recorded


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def backoff_range(base, retry):
    """The bounds of the wait before retry number ``retry`` (1-based): base * 2**(retry-1) plus jitter up to base."""
    low = base * 2 ** (retry - 1)
    return min(low, 30 * base), min(low + base, 30 * base)


@pytest.mark.parametrize("base", [1, 2])
def test_5xx_answers_back_off_exponentially_with_jitter_then_the_call_succeeds(client, mocked, waits, settings, base):
    settings.HTTP_RETRY_BASE_DELAY = base
    for _ in range(3):
        mocked.get(URL, status=503, body="Service Unavailable")
    mocked.get(URL, json={"name": "email"})

    response = client.request("GET", PROPERTY)

    assert response.status_code == 200 and response.json() == {"name": "email"}
    assert len(mocked.calls) == 4 and client.calls == 4
    assert len(waits) == 3
    for retry, wait in enumerate(waits, start=1):
        low, high = backoff_range(base, retry)
        assert low <= wait <= high, (retry, wait, waits)


def test_the_jitter_is_drawn_between_zero_and_the_base(client, mocked, waits, monkeypatch):
    draws = []

    def uniform(low, high):
        draws.append((low, high))
        return high  # the largest jitter allowed

    monkeypatch.setattr("tenacity.wait.random.uniform", uniform)
    mocked.get(URL, status=500)
    mocked.get(URL, status=500)
    mocked.get(URL, json={})

    client.request("GET", PROPERTY)

    assert draws == [(0, 1), (0, 1)]
    assert waits == [1 + 1, 2 + 1]


def test_the_backoff_is_capped_at_thirty_times_the_base(client, mocked, waits, settings, monkeypatch):
    settings.HTTP_RETRY_ATTEMPTS = 7
    monkeypatch.setattr("tenacity.wait.random.uniform", lambda low, high: 0)
    for _ in range(7):
        mocked.get(URL, status=502)
    mocked.get(URL, json={})

    client.request("GET", PROPERTY)

    assert waits == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    "failure",
    [requests.Timeout("read timed out"), requests.ConnectionError("connection reset")],
    ids=["timeout", "connection-error"],
)
def test_timeouts_and_dropped_connections_back_off_too(client, mocked, waits, failure):
    mocked.get(URL, body=failure)
    mocked.get(URL, body=failure)
    mocked.get(URL, json={})

    assert client.request("GET", PROPERTY).status_code == 200
    assert len(mocked.calls) == 3
    assert len(waits) == 2 and 1 <= waits[0] <= 2 and 2 <= waits[1] <= 3


@pytest.mark.parametrize("retry_attempts", [0, 1, 3])
def test_http_retry_attempts_counts_retries_after_the_first_call(client, waits, settings, retry_attempts):
    settings.HTTP_RETRY_ATTEMPTS = retry_attempts
    # One more 503 would be past the limit; the 200 behind them is never reached.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        for _ in range(retry_attempts + 1):
            mocked.get(URL, status=503, body="Service Unavailable")
        mocked.get(URL, json={})

        with pytest.raises(TransientProviderError, match="503") as raised:
            client.request("GET", PROPERTY)

        assert len(mocked.calls) == retry_attempts + 1
    assert client.calls == retry_attempts + 1
    assert raised.value.status == 503
    assert len(waits) == retry_attempts  # a wait between calls, none after the last


@pytest.mark.parametrize("header", ["7", "0.5"])
def test_a_429_with_retry_after_waits_what_the_crm_asked_instead_of_backing_off(connection, mocked, waits, header):
    client = PlainClient(connection=connection)
    url = PlainClient.default_base_url + "/contacts"
    mocked.get(url, status=429, body="slow down", headers={"Retry-After": header})
    mocked.get(url, json={"ok": True})

    assert client.request("GET", "/contacts").json() == {"ok": True}
    assert waits == [float(header)]
    assert len(mocked.calls) == 2


def test_a_429_without_a_wait_header_falls_back_to_the_backoff(connection, mocked, waits):
    client = PlainClient(connection=connection)
    url = PlainClient.default_base_url + "/contacts"
    mocked.get(url, status=429, body="slow down")
    mocked.get(url, status=429, body="slow down")
    mocked.get(url, json={})

    client.request("GET", "/contacts")

    assert len(waits) == 2 and 1 <= waits[0] <= 2 and 2 <= waits[1] <= 3


def test_a_429_asking_for_longer_than_a_request_may_wait_is_raised_not_slept(connection, mocked, waits):
    client = PlainClient(connection=connection)
    url = PlainClient.default_base_url + "/contacts"
    mocked.get(url, status=429, body="slow down", headers={"Retry-After": "31"})

    with pytest.raises(RateLimitedError) as raised:
        client.request("GET", "/contacts")

    assert raised.value.retry_after == 31 and waits == [] and len(mocked.calls) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_4xx_other_than_429_is_not_retried(client, mocked, waits, status):
    mocked.get(URL, status=status, json={"status": "error", "message": "Property values were not valid"})

    with pytest.raises(ProviderError) as raised:
        client.request("GET", PROPERTY)

    assert not isinstance(raised.value, TransientProviderError)
    assert raised.value.status == status
    assert len(mocked.calls) == 1 and client.calls == 1 and waits == []


def test_a_non_idempotent_request_is_resent_after_a_429_but_not_after_a_5xx(connection, waits):
    client = PlainClient(connection=connection)
    url = PlainClient.default_base_url + "/persons"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post(url, status=429, body="slow down", headers={"Retry-After": "1"})
        mocked.post(url, status=503, body="Service Unavailable")
        mocked.post(url, json={"id": 1})

        with pytest.raises(TransientProviderError, match="503"):
            client.request("POST", "/persons", idempotent=False, json={"name": "Ada"})

        assert len(mocked.calls) == 2  # the 429 was resent; the 503 may have created the person
    assert waits == [1]
