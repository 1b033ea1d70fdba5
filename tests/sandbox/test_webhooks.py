"""Webhook delivery from sandbox accounts to a real receiver: payloads, signatures, Basic auth, retries."""

import base64
import json
import time

import requests

from syncapp.providers.hubspot.webhooks import signature_v3
from syncapp.sandbox.server import SandboxServer

CONTACTS = "/crm/v3/objects/contacts"
PERSONS = "/api/v2/persons"


def hubspot_account(crm_sandbox, receiver, **webhooks):
    return crm_sandbox.sandbox.account_create(
        "hubspot", rate_limits=False, webhooks={"url": receiver.url, "secret": "s3cret", **webhooks}
    )


def test_hubspot_delivers_signed_event_arrays_for_control_and_api_writes(crm_sandbox, control, receiver):
    account = hubspot_account(crm_sandbox, receiver)
    record = control.record_create(account, email="ada@example.com", first_name="Ada")
    control.wait()
    headers = {"Authorization": f"Bearer {account.token}"}
    patched = requests.patch(
        f"{account.base_url}{CONTACTS}/{record['id']}", json={"properties": {"lastname": "Lovelace"}}, headers=headers
    )
    assert patched.status_code == 200
    control.wait()

    deliveries = receiver.wait_for(2)
    assert len(deliveries) == 2
    for delivery in deliveries:
        assert delivery["method"] == "POST"
        assert delivery["path"] == "/hooks/crm"
        timestamp = delivery["headers"]["X-HubSpot-Request-Timestamp"]
        assert abs(int(timestamp) - time.time() * 1000) < 60_000
        expected = signature_v3(
            secret="s3cret", method="POST", uri=receiver.url, body=delivery["body"], timestamp=timestamp
        )
        assert delivery["headers"]["X-HubSpot-Signature-v3"] == expected

    created, changed = receiver.payloads()
    assert [event["subscriptionType"] for event in created] == ["contact.creation"]
    assert created[0]["objectId"] == int(record["id"])
    assert created[0]["portalId"] == int(account.account_id)
    assert created[0]["changeSource"] == "CRM_UI"
    assert created[0]["attemptNumber"] == 0
    assert changed == [
        {
            **changed[0],
            "subscriptionType": "contact.propertyChange",
            "objectId": int(record["id"]),
            "propertyName": "lastname",
            "propertyValue": "Lovelace",
            "changeSource": "INTEGRATION",
        }
    ]
    assert isinstance(changed[0]["occurredAt"], int) and changed[0]["eventId"] != created[0]["eventId"]


def test_hubspot_batches_events_of_one_moment_into_one_delivery(crm_sandbox, control, receiver):
    account = hubspot_account(crm_sandbox, receiver)
    records = [{"email": f"b{i}@example.com"} for i in range(150)]

    control.ok("POST", f"/accounts/hubspot/{account.account_id}/records/bulk", {"records": records, "webhooks": True})
    control.wait()

    sizes = [len(payload) for payload in receiver.payloads()]
    assert sum(sizes) == 150
    assert max(sizes) == 100  # up to 100 events per request


def test_hubspot_retries_a_failed_delivery_with_the_next_attempt_number(crm_sandbox, control, receiver):
    receiver.statuses = [500]
    account = hubspot_account(crm_sandbox, receiver, retry_delays=[0.1])

    control.record_create(account, email="retry@example.com")
    control.wait()

    first, second = receiver.payloads()
    assert [event["attemptNumber"] for event in first] == [0]
    assert [event["attemptNumber"] for event in second] == [1]
    assert first[0]["eventId"] == second[0]["eventId"]
    stats = control.ok("GET", "/webhooks")
    assert stats["retries"] == 1 and stats["delivered"] == 1 and stats["pending"] == 0


def test_hubspot_gives_up_after_the_last_retry(crm_sandbox, control, receiver):
    receiver.statuses = [500, 503, 502]
    account = hubspot_account(crm_sandbox, receiver, retry_delays=[0.05, 0.05])

    control.record_create(account, email="lost@example.com")
    control.wait()

    assert [payload[0]["attemptNumber"] for payload in receiver.payloads()] == [0, 1, 2]
    assert control.ok("GET", "/webhooks")["failed"] == 1


def test_duplicate_rate_1_delivers_every_batch_twice(crm_sandbox, control, receiver):
    account = hubspot_account(crm_sandbox, receiver, duplicate_rate=1)

    control.record_create(account, email="twice@example.com")
    control.wait()

    first, second = receiver.payloads()
    assert first == second


def test_webhooks_wait_returns_when_idle_and_504_while_deliveries_are_held(crm_sandbox, control, receiver):
    account = hubspot_account(crm_sandbox, receiver, delay_ms=300)

    record = control.record_create(account, email="late@example.com")
    started = time.monotonic()
    answer = control.wait()
    assert answer["idle"] is True and answer["pending"] == 0
    assert time.monotonic() - started >= 0.25
    assert len(receiver.requests) == 1

    control.ok("PATCH", f"/accounts/hubspot/{account.account_id}", {"webhooks": {"paused": True}})
    control.record_update(account, record["id"], first_name="Held")
    held = control.call("POST", "/webhooks/wait", {"timeout": 0.5})
    assert held.status_code == 504 and held.json()["idle"] is False
    assert len(receiver.requests) == 1
    control.ok("PATCH", f"/accounts/hubspot/{account.account_id}", {"webhooks": {"paused": False}})
    control.wait()
    assert len(receiver.requests) == 2


def test_hubspot_merge_and_archive_events(crm_sandbox, control, receiver):
    account = hubspot_account(crm_sandbox, receiver)
    survivor = control.record_create(account, email="keep@example.com")
    merged = control.record_create(account, email="old@example.com")
    control.wait()
    receiver.requests.clear()

    control.merge(account, survivor["id"], merged["id"])
    requests.delete(
        f"{account.base_url}{CONTACTS}/{survivor['id']}", headers={"Authorization": f"Bearer {account.token}"}
    )
    control.wait()

    events = [event for payload in receiver.payloads() for event in payload]
    merge = next(event for event in events if event["subscriptionType"] == "contact.merge")
    assert merge["primaryObjectId"] == int(survivor["id"])
    assert merge["mergedObjectIds"] == [int(merged["id"])]
    assert merge["newObjectId"] == int(survivor["id"])
    deletion = next(event for event in events if event["subscriptionType"] == "contact.deletion")
    assert deletion["objectId"] == int(survivor["id"]) and deletion["changeSource"] == "INTEGRATION"


def pipedrive_hook(account, receiver, **body):
    answer = requests.post(
        f"{account.base_url}/v1/webhooks",
        json={
            "subscription_url": receiver.url,
            "event_action": "*",
            "event_object": "person",
            "name": "contactsync",
            "http_auth_user": "hook-user",
            "http_auth_password": "hook-pass",
            "version": "2.0",
            **body,
        },
        headers={"x-api-token": account.token},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


def test_pipedrive_delivers_v2_payloads_with_basic_credentials(crm_sandbox, control, receiver):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    field = requests.post(
        f"{account.base_url}/v1/personFields",
        json={"name": "Pronouns", "field_type": "varchar"},
        headers={"x-api-token": account.token},
    ).json()["data"]
    hook = pipedrive_hook(account, receiver)
    person = control.record_create(account, email="ada@example.com", first_name="Ada", pronouns="she/her")
    control.wait()
    receiver.requests.clear()

    control.record_update(account, person["id"], last_name="Lovelace")
    control.wait()

    (delivery,) = receiver.requests
    expected = base64.b64encode(b"hook-user:hook-pass").decode()
    assert delivery["headers"]["Authorization"] == f"Basic {expected}"
    payload = json.loads(delivery["body"])
    meta = payload["meta"]
    assert meta["action"] == "change"
    assert meta["entity"] == "person"
    assert meta["entity_id"] == person["id"]
    assert meta["attempt"] == 1
    assert meta["version"] == "2.0"
    assert meta["webhook_id"] == str(hook["id"])
    assert meta["company_id"] == account.account_id
    assert meta["change_source"] == "app"
    assert payload["data"]["name"] == "Ada Lovelace"
    assert payload["data"]["last_name"] == "Lovelace"
    assert payload["data"]["custom_fields"] == {field["key"]: {"type": "varchar", "value": "she/her"}}
    assert payload["previous"] == {"name": "Ada", "last_name": None}


def test_pipedrive_api_writes_are_change_source_api_and_deletes_carry_the_last_state(crm_sandbox, control, receiver):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    pipedrive_hook(account, receiver)
    headers = {"x-api-token": account.token}
    person = requests.post(f"{account.base_url}{PERSONS}", json={"name": "Bob"}, headers=headers).json()["data"]

    requests.delete(f"{account.base_url}{PERSONS}/{person['id']}", headers=headers)
    control.wait()

    # Deliveries run side by side, so they may arrive in either order, as Pipedrive's may.
    by_action = {payload["meta"]["action"]: payload for payload in receiver.payloads()}
    assert sorted(by_action) == ["create", "delete"]
    created, deleted = by_action["create"], by_action["delete"]
    assert created["previous"] is None
    assert created["meta"]["change_source"] == "api"
    assert deleted["meta"]["action"] == "delete"
    assert deleted["data"] is None
    assert deleted["previous"]["name"] == "Bob"
    assert deleted["previous"]["is_deleted"] is False  # the state before the delete


def test_pipedrive_merge_sends_a_delete_with_merged_to_id_and_a_change_with_merged_from_id(
    crm_sandbox, control, receiver
):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    pipedrive_hook(account, receiver)
    survivor = control.record_create(account, email="keep@example.com", first_name="Keep")
    merged = control.record_create(account, email="old@example.com", first_name="Old")
    control.wait()
    receiver.requests.clear()

    answer = control.merge(account, survivor["id"], merged["id"])
    control.wait()

    assert [e["value"] for e in answer["raw"]["emails"]] == ["keep@example.com", "old@example.com"]
    payloads = {payload["meta"]["action"]: payload for payload in receiver.payloads()}
    assert set(payloads) == {"delete", "change"}
    assert payloads["delete"]["meta"]["entity_id"] == merged["id"]
    assert payloads["delete"]["previous"]["merged_to_id"] == int(survivor["id"])
    assert payloads["change"]["meta"]["entity_id"] == survivor["id"]
    assert payloads["change"]["data"]["merged_from_id"] == int(merged["id"])


def test_pipedrive_retries_with_meta_attempt_and_stops_at_deleted_webhooks(crm_sandbox, control, receiver):
    receiver.statuses = [500]
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False, webhooks={"retry_delays": [0.1]})
    hook = pipedrive_hook(account, receiver, event_action="create")

    control.record_create(account, email="a@example.com")
    control.wait()
    assert [payload["meta"]["attempt"] for payload in receiver.payloads()] == [1, 2]

    requests.delete(f"{account.base_url}/v1/webhooks/{hook['id']}", headers={"x-api-token": account.token})
    control.record_create(account, email="b@example.com")
    control.wait()
    assert len(receiver.requests) == 2


def test_pipedrive_only_delivers_the_actions_a_webhook_subscribed_to(crm_sandbox, control, receiver):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    pipedrive_hook(account, receiver, event_action="delete")
    person = control.record_create(account, email="a@example.com")
    control.record_update(account, person["id"], first_name="Changed")
    control.wait()
    assert receiver.requests == []

    control.ok("DELETE", f"/accounts/pipedrive/{account.account_id}/records/{person['id']}")
    control.wait()
    assert [payload["meta"]["action"] for payload in receiver.payloads()] == ["delete"]


def test_the_sandbox_webhook_target_and_secret_are_every_hubspot_accounts_defaults(receiver):
    with SandboxServer(webhook_target=receiver.base_url + "/", webhook_secret="app-secret") as server:
        account = server.sandbox.account_create("hubspot", rate_limits=False)
        pipedrive = server.sandbox.account_create("pipedrive", rate_limits=False)
        assert account.webhooks.url == receiver.base_url + "/webhooks/hubspot/"
        assert pipedrive.webhooks.url == ""  # Pipedrive delivers to the webhooks registered through its API

        account.control_create({"email": "a@example.com"})
        pipedrive.control_create({"email": "a@example.com"})
        server.sandbox.dispatcher.wait_idle(10)

    (delivery,) = receiver.requests
    assert delivery["path"] == "/webhooks/hubspot/"
    timestamp = delivery["headers"]["X-HubSpot-Request-Timestamp"]
    uri = receiver.base_url + "/webhooks/hubspot/"
    assert delivery["headers"]["X-HubSpot-Signature-v3"] == signature_v3(
        secret="app-secret", method="POST", uri=uri, body=delivery["body"], timestamp=timestamp
    )
