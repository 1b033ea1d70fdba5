"""Password guessing on the members' and the admin login is throttled per user name and client address."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from syncapp.client_ip import client_ip

LIMIT = 3
COOL_OFF = timedelta(minutes=15)
LOCKED = "Too many failed logins"
WRONG = "Your user name and password did not match"


@pytest.fixture(autouse=True)
def throttling(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF


def log_in(client, username, password, *, path="/accounts/login/", **meta):
    return client.post(path, {"username": username, "password": password}, **meta)


def guess(client, username, times=LIMIT, **meta):
    """Wrong passwords; the last of LIMIT of them is already answered with the lock-out page."""
    return [log_in(client, username, f"wrong-{attempt}", **meta) for attempt in range(times)]


def is_logged_in(client):
    return client.get("/").status_code == 200


def test_after_the_failure_limit_the_right_password_is_refused_with_the_lock_out_page(tenant):
    client = Client()
    for response in guess(client, "alice", LIMIT - 1):
        assert response.status_code == 200 and WRONG in response.text
    assert guess(client, "alice", 1)[0].status_code == 429
    response = log_in(client, "alice", "pw-alice-123")
    assert response.status_code == 429
    assert LOCKED in response.text and "Try again in 15 minutes" in response.text
    assert not is_logged_in(client)


def test_below_the_limit_the_right_password_logs_in_and_clears_the_count(tenant):
    client = Client()
    guess(client, "alice", LIMIT - 1)
    assert log_in(client, "alice", "pw-alice-123").status_code == 302
    client.logout()
    guess(client, "alice", LIMIT - 1)  # would reach the limit if the success had not reset the count
    assert log_in(client, "alice", "pw-alice-123").status_code == 302


def test_an_unknown_user_name_gets_the_same_answers_as_a_known_one(tenant):
    def answers(username):
        client = Client()
        responses = [*guess(client, username), log_in(client, username, "pw-alice-123")]
        # The form echoes the name typed and a fresh CSRF token; the rest must not differ.
        return [
            (response.status_code, re.sub(r'value="[^"]*"', "", response.text.replace(username, "NAME")))
            for response in responses
        ]

    known, unknown = answers("alice"), answers("mallory")
    assert known == unknown
    assert [status for status, _ in known] == [200] * (LIMIT - 1) + [429, 429]


def test_a_lock_out_holds_for_one_user_name_from_one_address_only(tenant, django_user_model):
    django_user_model.objects.create_user("bob", password="pw-bob-123")
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    guess(attacker, "alice")
    assert log_in(attacker, "alice", "pw-alice-123").status_code == 429
    # The victim elsewhere, and another member at the attacker's address, still log in.
    assert log_in(Client(REMOTE_ADDR="203.0.113.20"), "alice", "pw-alice-123").status_code == 302
    assert log_in(Client(REMOTE_ADDR="198.51.100.7"), "bob", "pw-bob-123").status_code == 302


def test_spellings_that_name_the_same_user_share_one_count(tenant):
    client = Client()
    guess(client, "\uff41lice")  # fullwidth "a": the login form normalises it (NFKC) to alice
    assert log_in(client, "alice", "pw-alice-123").status_code == 429


def test_the_lock_out_ends_after_the_cool_off_and_a_try_meanwhile_restarts_it(tenant, monkeypatch):
    from axes.handlers import proxy as axes_clock  # the clock axes stamps attempts with

    client = Client()
    guess(client, "alice")
    retry = timezone.now() + COOL_OFF - timedelta(minutes=1)
    monkeypatch.setattr(axes_clock, "now", lambda: retry)
    assert log_in(client, "alice", "pw-alice-123").status_code == 429
    monkeypatch.setattr(axes_clock, "now", lambda: retry + COOL_OFF - timedelta(seconds=1))
    assert log_in(client, "alice", "pw-alice-123").status_code == 429  # the retry started the cool-off again
    monkeypatch.setattr(axes_clock, "now", lambda: retry + 2 * COOL_OFF)
    assert log_in(client, "alice", "pw-alice-123").status_code == 302
    assert is_logged_in(client)


def test_the_admin_login_is_throttled_too(db):
    get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1234")
    client = Client()
    for response in guess(client, "root", LIMIT - 1, path="/admin/login/"):
        assert response.status_code == 200 and "Please enter the correct username and password" in response.text
    guess(client, "root", 1, path="/admin/login/")
    response = log_in(client, "root", "pw-root-1234", path="/admin/login/")
    assert response.status_code == 429 and LOCKED in response.text
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_the_members_and_the_admin_login_share_one_count(tenant):
    client = Client()
    guess(client, "alice", LIMIT - 1)
    guess(client, "alice", 1, path="/admin/login/")
    assert log_in(client, "alice", "pw-alice-123").status_code == 429


def test_behind_a_proxy_spoofed_forwarded_addresses_do_not_reset_the_count(tenant, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    for attempt in range(LIMIT):
        log_in(proxy, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}, 198.51.100.7")
    response = log_in(proxy, "alice", "pw-alice-123", HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.7")
    assert response.status_code == 429
    # Another client behind the same proxy is not affected.
    assert log_in(proxy, "alice", "pw-alice-123", HTTP_X_FORWARDED_FOR="203.0.113.20").status_code == 302


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "192.0.2.1", "10.0.0.2"),  # no proxy configured: a client's header is ignored
        (1, "192.0.2.1, 198.51.100.7", "198.51.100.7"),
        (2, "192.0.2.1, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
        (2, "198.51.100.7", "10.0.0.2"),  # shorter than the proxy chain: not trusted
        (1, "192.0.2.1, not-an-address", "10.0.0.2"),
        (1, "", "10.0.0.2"),
        (1, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),  # one /64 is one client
    ],
)
def test_client_ip_trusts_only_the_entries_the_configured_proxies_added(rf, settings, proxies, forwarded_for, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.post("/accounts/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded_for)
    assert client_ip(request) == expected


@pytest.mark.parametrize(
    ("remote_addr", "expected"),
    [("2001:db8::1", "2001:db8::"), ("2001:db8:0:0:ffff::9", "2001:db8::"), ("::ffff:192.0.2.5", "192.0.2.5")],
)
def test_client_ip_counts_an_ipv6_client_by_its_64_network(rf, settings, remote_addr, expected):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(rf.post("/accounts/login/", REMOTE_ADDR=remote_addr)) == expected


def test_rotating_addresses_within_one_ipv6_64_does_not_reset_the_count(tenant):
    for attempt in range(LIMIT):
        log_in(Client(REMOTE_ADDR=f"2001:db8:7:7::{attempt + 1:x}"), "alice", "wrong")
    assert log_in(Client(REMOTE_ADDR="2001:db8:7:7::ffff"), "alice", "pw-alice-123").status_code == 429
    assert log_in(Client(REMOTE_ADDR="2001:db8:7:8::1"), "alice", "pw-alice-123").status_code == 302
