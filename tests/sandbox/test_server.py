"""The sandbox server: unknown accounts, the control API, the request log and faults."""

import base64
import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from syncapp.sandbox.server import SandboxServer

HUBSPOT_CONTACTS = "/crm/v3/objects/contacts"
PIPEDRIVE_PERSONS = "/api/v2/persons"


def hubspot_get(account, path=HUBSPOT_CONTACTS, **kwargs):
    return requests.get(account.base_url + path, headers={"Authorization": f"Bearer {account.token}"}, **kwargs)


def test_an_unknown_account_or_provider_is_404(crm_sandbox):
    account = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    headers = {"Authorization": f"Bearer {account.token}"}

    assert requests.get(f"{crm_sandbox.url}/hubspot/999999{HUBSPOT_CONTACTS}", headers=headers).status_code == 404
    assert requests.get(f"{crm_sandbox.url}/salesforce/{account.account_id}/x", headers=headers).status_code == 404
    assert requests.get(f"{crm_sandbox.url}/", headers=headers).status_code == 404
    assert requests.get(f"{account.base_url}/no/such/endpoint", headers=headers).status_code == 404


def test_accounts_are_created_listed_and_described_through_the_control_api(crm_sandbox, control):
    created = control.call("POST", "/accounts", {"provider": "pipedrive", "account_id": "777", "plan": "growth"})
    assert created.status_code == 201
    body = created.json()
    assert body["base_url"] == f"{crm_sandbox.url}/pipedrive/777"
    assert body["plan"] == "growth"
    assert body["limits"]["daily_tokens"] == 60_000

    assert control.call("POST", "/accounts", {"provider": "pipedrive", "account_id": "777"}).status_code == 409
    assert control.call("POST", "/accounts", {"provider": "nope"}).status_code == 400
    assert control.call("POST", "/accounts", {"provider": "hubspot", "tier": "gold"}).status_code == 400
    assert control.call("POST", "/accounts", {"provider": "hubspot", "colour": "red"}).status_code == 400

    listed = control.ok("GET", "/accounts")["accounts"]
    assert [(a["provider"], a["account_id"]) for a in listed] == [("pipedrive", "777")]
    described = control.ok("GET", "/accounts/pipedrive/777")
    assert described["token"] == body["token"]
    assert described["webhooks"]["retry_delays"] == [1, 2, 4]
    assert control.call("GET", "/accounts/pipedrive/778").status_code == 404

    updated = control.ok("PATCH", "/accounts/pipedrive/777", {"rate_limits": False, "webhooks": {"delay_ms": 50}})
    assert updated["rate_limits"] is False and updated["webhooks"]["delay_ms"] == 50
    assert control.call("PATCH", "/accounts/pipedrive/777", {"webhooks": {"colour": 1}}).status_code == 400
    assert "endpoints" in control.ok("GET", "")
    assert control.call("GET", "/nothing").status_code == 404


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_control_api_records_crud_in_universal_fields(crm_sandbox, control, provider):
    account = crm_sandbox.sandbox.account_create(provider, rate_limits=False)
    base = f"/accounts/{provider}/{account.account_id}/records"
    if provider == "hubspot":  # pronouns is a custom property the app creates
        property_body = {"name": "pronouns", "label": "Pronouns", "type": "string", "fieldType": "text"}
        requests.post(
            account.base_url + "/crm/v3/properties/contacts",
            json={**property_body, "groupName": "contactinformation"},
            headers={"Authorization": f"Bearer {account.token}"},
        )
    else:
        requests.post(
            account.base_url + "/v1/personFields",
            json={"name": "Pronouns", "field_type": "varchar"},
            headers={"x-api-token": account.token},
        )
    values = {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone": "+44 1",
        "job_title": "Analyst",
        "pronouns": "she/her",
    }

    created = control.record_create(account, **values)
    assert {name: created[name] for name in values} == values
    assert created["deleted"] is False

    updated = control.record_update(account, created["id"], job_title="Engineer", pronouns="")
    assert updated["job_title"] == "Engineer" and updated["pronouns"] == ""
    assert updated["first_name"] == "Ada"

    listed = control.ok("GET", base)["records"]
    assert [(r["id"], r["email"], r["job_title"]) for r in listed] == [(created["id"], "ada@example.com", "Engineer")]
    # The API sees the same record.
    if provider == "hubspot":
        api = hubspot_get(account, f"{HUBSPOT_CONTACTS}/{created['id']}", params={"properties": "jobtitle,email"})
        assert api.json()["properties"]["jobtitle"] == "Engineer"
    else:
        api = requests.get(
            f"{account.base_url}{PIPEDRIVE_PERSONS}/{created['id']}", headers={"x-api-token": account.token}
        )
        assert api.json()["data"]["job_title"] == "Engineer"
        assert api.json()["data"]["name"] == "Ada Lovelace"

    assert control.ok("DELETE", f"{base}/{created['id']}") == {"deleted": created["id"]}
    assert control.ok("GET", base, include_deleted="false")["records"] == []
    assert control.ok("GET", base)["records"][0]["deleted"] is True
    restored = control.ok("POST", f"{base}/{created['id']}/restore")
    assert restored["deleted"] is False
    assert control.call("POST", base, {"colour": "red"}).status_code == 400
    assert control.call("PATCH", f"{base}/424242", {"email": "x@example.com"}).status_code == 404


def test_control_api_refuses_pronouns_before_the_field_exists(crm_sandbox, control):
    hubspot = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    pipedrive = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False, contact_sync=False)

    for account in (hubspot, pipedrive):
        path = f"/accounts/{account.provider}/{account.account_id}/records"
        assert control.call("POST", path, {"email": "a@example.com", "pronouns": "they"}).status_code == 400
    path = f"/accounts/pipedrive/{pipedrive.account_id}/records"
    assert control.call("POST", path, {"email": "a@example.com", "job_title": "x"}).status_code == 400


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_bulk_load_creates_many_records_at_once(crm_sandbox, control, provider):
    account = crm_sandbox.sandbox.account_create(provider, rate_limits=False)
    records = [{"email": f"bulk{i}@example.com", "first_name": f"B{i}"} for i in range(250)]

    loaded = control.ok("POST", f"/accounts/{provider}/{account.account_id}/records/bulk", {"records": records})

    assert loaded["created"] == 250 and len(set(loaded["ids"])) == 250
    listed = control.ok("GET", f"/accounts/{provider}/{account.account_id}/records")["records"]
    assert sorted(r["email"] for r in listed) == sorted(r["email"] for r in records)
    bad = control.call("POST", f"/accounts/{provider}/{account.account_id}/records/bulk", {"records": "x"})
    assert bad.status_code == 400


def test_the_request_log_lists_api_requests_with_their_real_paths(crm_sandbox, control):
    hubspot = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    pipedrive = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    control.record_create(hubspot, email="not-logged@example.com")  # control calls are not logged

    hubspot_get(hubspot, params={"limit": "5", "properties": "email"})
    requests.post(
        hubspot.base_url + f"{HUBSPOT_CONTACTS}/search",
        json={"limit": 3},
        headers={"Authorization": f"Bearer {hubspot.token}"},
    )
    requests.get(pipedrive.base_url + PIPEDRIVE_PERSONS, headers={"x-api-token": "wrong"})

    log = control.ok("GET", "/requests")
    entries = log["requests"]
    assert [(e["provider"], e["method"], e["path"], e["status"]) for e in entries] == [
        ("hubspot", "GET", HUBSPOT_CONTACTS, 200),
        ("hubspot", "POST", f"{HUBSPOT_CONTACTS}/search", 200),
        ("pipedrive", "GET", PIPEDRIVE_PERSONS, 401),
    ]
    assert entries[0]["query"] == {"limit": ["5"], "properties": ["email"]}
    assert entries[0]["account_id"] == hubspot.account_id
    assert entries[0]["endpoint"] == f"GET {HUBSPOT_CONTACTS}"
    assert entries[1]["body"] == {"limit": 3}
    assert log["last"] == entries[-1]["seq"]

    after = control.ok("GET", "/requests", after=entries[0]["seq"])["requests"]
    assert [e["seq"] for e in after] == [e["seq"] for e in entries[1:]]
    only = control.ok("GET", "/requests", provider="pipedrive")["requests"]
    assert [e["provider"] for e in only] == ["pipedrive"]
    assert control.call("GET", "/requests", after="x").status_code == 400


def test_request_log_file_gets_one_json_line_per_request(tmp_path):
    path = tmp_path / "requests.jsonl"
    with SandboxServer(request_log=str(path)) as server:
        account = server.sandbox.account_create("hubspot", rate_limits=False)
        hubspot_get(account)
        hubspot_get(account, f"{HUBSPOT_CONTACTS}/1")

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", HUBSPOT_CONTACTS, 200),
        ("GET", f"{HUBSPOT_CONTACTS}/1", 404),
    ]


def test_a_drop_fault_closes_the_connection_without_an_answer(crm_sandbox, control):
    account = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    assert control.ok("PUT", "/faults", {"rate": 1, "kinds": ["drop"]})["kinds"] == ["drop"]

    with pytest.raises(requests.ConnectionError):
        hubspot_get(account, timeout=5)

    assert control.ok("GET", "/faults")["rate"] == 1  # the control API is never faulted
    assert control.ok("GET", "/requests")["requests"][-1]["status"] == "dropped"


def test_a_503_fault_answers_503_and_a_429_fault_answers_like_the_crm(crm_sandbox, control):
    hubspot = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    pipedrive = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    control.ok("PUT", "/faults", {"rate": 1, "kinds": ["503"]})

    assert hubspot_get(hubspot).status_code == 503
    control.record_create(hubspot, email="control@example.com")  # control calls pass

    control.ok("PUT", "/faults", {"kinds": ["429"]})
    limited = hubspot_get(hubspot)
    assert limited.status_code == 429 and limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    refused = requests.get(pipedrive.base_url + PIPEDRIVE_PERSONS, headers={"x-api-token": pipedrive.token})
    assert refused.status_code == 429 and "x-ratelimit-reset" in refused.headers

    control.ok("PUT", "/faults", {"rate": 0})
    assert hubspot_get(hubspot).status_code == 200
    assert control.call("PUT", "/faults", {"rate": 2}).status_code == 400
    assert control.call("PUT", "/faults", {"kinds": ["teapot"]}).status_code == 400
    assert control.call("PUT", "/faults", {"colour": 1}).status_code == 400


def test_a_fault_rate_below_one_fails_some_requests(crm_sandbox, control):
    account = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    control.ok("PUT", "/faults", {"rate": 0.5, "kinds": ["500"]})

    statuses = [hubspot_get(account).status_code for _ in range(40)]

    assert set(statuses) == {200, 500}


def test_latency_delays_api_requests_but_not_control_requests(crm_sandbox, control):
    account = crm_sandbox.sandbox.account_create("hubspot", rate_limits=False)
    control.ok("PUT", "/faults", {"latency_ms": 300})

    started = time.monotonic()
    hubspot_get(account)
    api_seconds = time.monotonic() - started
    started = time.monotonic()
    control.ok("GET", "/accounts")
    control_seconds = time.monotonic() - started

    assert api_seconds >= 0.3
    assert control_seconds < 0.2


MALFORMED = [
    ("hubspot", "GET", HUBSPOT_CONTACTS + "?after=abc", None),
    ("hubspot", "POST", HUBSPOT_CONTACTS + "/search", {"after": "abc"}),
    ("hubspot", "POST", HUBSPOT_CONTACTS + "/search", {"limit": "many"}),
    (
        "hubspot",
        "POST",
        HUBSPOT_CONTACTS + "/search",
        {"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "soon"}]}]},
    ),
    ("hubspot", "POST", HUBSPOT_CONTACTS, [1]),
    ("hubspot", "POST", HUBSPOT_CONTACTS, {"properties": {"email": 5}}),
    ("hubspot", "POST", HUBSPOT_CONTACTS + "/batch/create", {"inputs": [1]}),
    ("pipedrive", "GET", "/v1/personFields?start=x", None),
    ("pipedrive", "POST", PIPEDRIVE_PERSONS, [1]),
    ("pipedrive", "POST", "/v1/webhooks", [1]),
    ("pipedrive", "POST", "/v1/personFields", "not json"),
]


@pytest.mark.parametrize(("provider", "method", "path", "body"), MALFORMED)
def test_malformed_requests_get_a_400_not_a_sandbox_failure(crm_sandbox, provider, method, path, body):
    account = crm_sandbox.sandbox.account_create(provider, rate_limits=False)
    account.control_create({"email": "someone@example.com"})  # so that search filters meet a record
    headers = {"Authorization": f"Bearer {account.token}"}
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode() if body is not None else None

    answer = requests.request(method, account.base_url + path, data=data, headers=headers)

    assert answer.status_code == 400, answer.text


def test_webhooks_wait_refuses_a_timeout_that_is_not_a_number(control):
    assert control.call("POST", "/webhooks/wait", {"timeout": "soon"}).status_code == 400


def _authorize_code(account, redirect):
    authorize = requests.get(
        f"{account.base_url}/oauth/authorize",
        params={"client_id": account.client_id, "redirect_uri": redirect, "state": "s"},
        allow_redirects=False,
        timeout=10,
    )
    return parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]


def _oauth_and_webhook_requests(server) -> tuple[dict[str, str], list[dict]]:
    """Drive every request that sends a secret; return the secrets sent and the log entries of the requests."""
    redirect = "http://localhost:8000/oauth/callback/"
    hubspot = server.sandbox.account_create("hubspot", rate_limits=False, client_secret="hs-client-secret-1")
    pipedrive = server.sandbox.account_create("pipedrive", rate_limits=False, client_secret="pd-client-secret-1")

    hubspot_code = _authorize_code(hubspot, redirect)
    client = {"client_id": hubspot.client_id, "client_secret": hubspot.client_secret, "redirect_uri": redirect}
    exchange = {**client, "grant_type": "authorization_code", "code": hubspot_code}
    tokens = requests.post(f"{hubspot.base_url}/oauth/v1/token", data=exchange, timeout=10).json()
    refresh = {**client, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = requests.post(f"{hubspot.base_url}/oauth/v1/token", data=refresh, timeout=10).json()
    info = requests.get(f"{hubspot.base_url}/oauth/v1/access-tokens/{refreshed['access_token']}", timeout=10)
    assert info.status_code == 200
    secrets = {
        "hubspot client secret": hubspot.client_secret,
        "hubspot code": hubspot_code,
        "hubspot refresh token": tokens["refresh_token"],
        "hubspot second refresh token": refreshed["refresh_token"],
        "hubspot access token": refreshed["access_token"],
    }

    pipedrive_code = _authorize_code(pipedrive, redirect)
    credentials = base64.b64encode(f"{pipedrive.client_id}:{pipedrive.client_secret}".encode()).decode()
    basic = {"Authorization": f"Basic {credentials}"}
    form = {"grant_type": "authorization_code", "code": pipedrive_code, "redirect_uri": redirect}
    tokens = requests.post(f"{pipedrive.base_url}/oauth/token", data=form, headers=basic, timeout=10).json()
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert requests.post(f"{pipedrive.base_url}/oauth/token", data=form, headers=basic, timeout=10).ok
    hook = {
        "subscription_url": "https://app.example.com/webhooks/pipedrive/",
        "event_action": "*",
        "event_object": "person",
        "name": "contactsync",
        "http_auth_user": "contactsync",
        "http_auth_password": "hook-password-1",
    }
    created = requests.post(
        f"{pipedrive.base_url}/v1/webhooks", json=hook, headers={"x-api-token": pipedrive.token}, timeout=10
    )
    assert created.status_code == 201
    secrets |= {
        "pipedrive client secret": pipedrive.client_secret,
        "pipedrive code": pipedrive_code,
        "pipedrive refresh token": tokens["refresh_token"],
        "webhook password": "hook-password-1",
    }

    entries = server.sandbox.requests_since()
    assert [(e["method"], e["endpoint"], e["status"]) for e in entries] == [
        ("GET", "GET /oauth/authorize", 302),
        ("POST", "POST /oauth/v1/token", 200),
        ("POST", "POST /oauth/v1/token", 200),
        ("GET", "GET /oauth/v1/access-tokens/{token}", 200),
        ("GET", "GET /oauth/authorize", 302),
        ("POST", "POST /oauth/token", 200),
        ("POST", "POST /oauth/token", 200),
        ("POST", "POST /v1/webhooks", 201),
    ]
    return secrets, entries


def test_the_request_log_redacts_oauth_secrets_tokens_and_webhook_passwords(tmp_path, caplog):
    path = tmp_path / "requests.jsonl"
    caplog.set_level(logging.DEBUG, logger="syncapp.sandbox.server")
    with SandboxServer(request_log=str(path)) as server:
        secrets, entries = _oauth_and_webhook_requests(server)
        served = requests.get(f"{server.url}/_sandbox/requests", timeout=10).text
        # A faulted request is logged too: its path is masked the same way.
        server.sandbox.faults_set(rate=1, kinds=["503"])
        hubspot = next(a for a in server.sandbox.accounts.values() if a.provider == "hubspot")
        requests.get(f"{hubspot.base_url}/oauth/v1/access-tokens/{secrets['hubspot access token']}", timeout=10)
        fault = server.sandbox.requests_since()[-1]

    written = path.read_text()
    for name, secret in secrets.items():
        assert secret not in served, name
        assert secret not in written, name
        assert secret not in caplog.text, name
    # The keys stay, with their values redacted, so scripts/check_request_log.py can check them.
    exchange, refresh, info = entries[1], entries[2], entries[3]
    assert exchange["body_format"] == "form"
    assert exchange["body"] == {
        "client_id": "sandbox-client-id",
        "client_secret": "[redacted]",
        "redirect_uri": "http://localhost:8000/oauth/callback/",
        "grant_type": "authorization_code",
        "code": "[redacted]",
    }
    assert refresh["body"]["refresh_token"] == "[redacted]" and refresh["body"]["grant_type"] == "refresh_token"
    assert info["path"] == "/oauth/v1/access-tokens/[redacted]"
    assert entries[5]["body"]["code"] == "[redacted]" and entries[6]["body"]["refresh_token"] == "[redacted]"
    webhook = entries[7]
    assert webhook["body_format"] == "json"
    assert webhook["body"]["http_auth_password"] == "[redacted]" and webhook["body"]["http_auth_user"] == "contactsync"
    assert fault["endpoint"] == "fault" and fault["path"] == "/oauth/v1/access-tokens/[redacted]"
    assert "/oauth/v1/access-tokens/[redacted]" in caplog.text  # the debug line keeps method and masked path


def test_an_accounts_webhook_target_sets_its_default_webhook_url(crm_sandbox, control):
    created = control.ok("POST", "/accounts", {"provider": "hubspot", "webhook_target": "http://app.example:8000/"})
    assert created["webhook_url"] == "http://app.example:8000/webhooks/hubspot/"
    given = {"provider": "hubspot", "webhook_target": "http://app.example", "webhooks": {"url": "http://x.example/h"}}
    assert control.ok("POST", "/accounts", given)["webhook_url"] == "http://x.example/h"
    pipedrive = control.ok("POST", "/accounts", {"provider": "pipedrive", "webhook_target": "http://app.example"})
    account = control.ok("GET", f"/accounts/pipedrive/{pipedrive['account_id']}")
    assert account["webhooks"]["url"] == ""  # Pipedrive delivers to its registered webhooks
    assert control.call("POST", "/accounts", {"provider": "hubspot", "webhook_target": 5}).status_code == 400
