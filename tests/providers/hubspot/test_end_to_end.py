"""HubSpot end to end over mocked HTTP: a full sync, a push of app edits, and a webhook round trip."""

import json

import pytest
import responses
from django.test import Client
from responses.registries import OrderedRegistry

from syncapp.models import Contact, ContactLink, SyncRun, WebhookEvent
from syncapp.services.connections import connection_create
from syncapp.services.contacts import contact_create, contact_update
from syncapp.services.sync import connection_sync
from syncapp.services.webhooks import webhook_events_process
from tests.providers.hubspot.webhook_adapter import SECRET, sign_v3

pytestmark = pytest.mark.django_db

CONTACTS = "https://api.hubapi.com/crm/v3/objects/contacts"


def hubspot_contact(remote_id, email, updated, **properties):
    return {
        "id": remote_id,
        "properties": {"email": email, "lastmodifieddate": updated, **properties},
        "createdAt": "2026-11-01T00:00:00.000Z",
        "updatedAt": updated,
        "archived": False,
    }


def test_full_sync_push_and_webhook_round_trip_with_echo_suppression(tenant, settings):
    settings.HUBSPOT_WEBHOOK_SECRET = SECRET
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id="62515", credentials={"access_token": "pat-secret"}
    )
    contact_create(tenant=tenant, values={"email": "app@example.com", "first_name": "App"})
    ada = hubspot_contact("512", "ada@example.com", "2026-11-25T09:00:00.000Z", firstname="Ada")
    ada_edited = hubspot_contact("512", "ada@example.com", "2026-11-26T09:00:00.000Z", firstname="Ada", phone="123")

    with responses.RequestsMock(registry=OrderedRegistry, assert_all_requests_are_fired=True) as http:
        # 1. The first full sync: Ada comes in, and the app's contact is created. No lookup by email and
        # no catch-up search: a contact created in HubSpot meanwhile would make the create answer 409.
        http.get(CONTACTS, json={"results": [ada]})
        http.post(f"{CONTACTS}/batch/create", status=201, json={"status": "COMPLETE", "results": [
            {**hubspot_contact("601", "app@example.com", "2026-11-26T08:00:00.000Z", firstname="App"),
             "objectWriteTraceId": "0"}]})  # fmt: skip
        full = connection_sync(connection=connection, full=True)
        assert (full.status, full.created, full.api_calls) == (SyncRun.Status.SUCCEEDED, 2, 2)
        assert Contact.objects.get(email="ada@example.com").first_name == "Ada"

        # 2. An app edit is pushed: Ada is read again, then only the changed property is written.
        contact_update(contact=Contact.objects.get(email="ada@example.com"), values={"phone": "123"})
        http.post(f"{CONTACTS}/batch/read", json={"results": [ada]})
        http.post(f"{CONTACTS}/batch/update", json={"status": "COMPLETE", "results": [
            {**ada_edited, "objectWriteTraceId": "0"}]})  # fmt: skip
        push = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
        assert push.updated == 1
        update = json.loads(http.calls[-1].request.body)
        assert update["inputs"] == [{"id": "512", "properties": {"phone": "123"}, "objectWriteTraceId": "0"}]

        # 3. HubSpot's webhook for our own write arrives: stored, answered, re-read, and nothing is written.
        event = {"eventId": 1, "subscriptionId": 9, "portalId": 62515, "appId": 1, "occurredAt": 1795687200000,
                 "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 512,
                 "propertyName": "phone", "propertyValue": "123", "changeSource": "INTEGRATION"}  # fmt: skip
        body = json.dumps([event]).encode()
        answer = Client().post("/webhooks/hubspot/", body, content_type="application/json", headers=sign_v3(body))
        assert answer.status_code == 200
        http.post(f"{CONTACTS}/batch/read", json={"results": [ada_edited]})
        assert webhook_events_process(connection=connection) == 1

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    echo = connection.runs.get(trigger=SyncRun.Trigger.WEBHOOK)
    assert (echo.status, echo.updated, echo.unchanged, echo.conflicts) == (SyncRun.Status.SUCCEEDED, 0, 1, 0)
    assert ContactLink.objects.get(remote_id="512").base["phone"] == "123"
