"""A HubSpot adapter over the in-memory CRM, and helpers to sign and load webhook deliveries."""

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

from syncapp.providers.hubspot.webhooks import HubspotWebhookHandler
from syncapp.services.connections import connection_create
from tests.fakes import InMemoryAdapter, InMemoryCrm

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
SECRET = "test-webhook-secret"
PORTAL_ID = "62515"
WEBHOOK_URI = "http://testserver/webhooks/hubspot/"


class TestHubspotAdapter(InMemoryAdapter):
    __test__ = False  # not a test class, despite the name

    id = "hubspot"
    name = "HubSpot (in memory)"
    webhook_handler_class = HubspotWebhookHandler


def configure(settings) -> None:
    """Route the provider id hubspot to the in-memory adapter and sign with SECRET."""
    settings.SYNCAPP_PROVIDERS = {
        **settings.SYNCAPP_PROVIDERS,
        "hubspot": "tests.providers.hubspot.webhook_adapter.TestHubspotAdapter",
    }
    settings.HUBSPOT_WEBHOOK_SECRET = SECRET
    settings.HUBSPOT_CLIENT_SECRET = ""
    settings.HUBSPOT_ACCEPT_V2_SIGNATURE = False
    settings.WEBHOOK_REPLAY_WINDOW = 300_000
    settings.WEBHOOK_MAX_BODY_BYTES = 1024 * 1024


def load_events(name: str, **changes) -> list[dict]:
    """Return the events of fixture ``name`` (say "contact.creation"), with ``changes`` applied to each."""
    events = json.loads((FIXTURES / f"{name}.json").read_text())
    return [{**event, **changes} for event in events]


def sign_v3(body: bytes, *, secret: str = SECRET, uri: str = WEBHOOK_URI, timestamp: int | None = None) -> dict:
    """Return the headers HubSpot would send with ``body`` posted to ``uri`` (as signed, decoded)."""
    timestamp = str(int(time.time() * 1000) if timestamp is None else timestamp)
    message = b"POST" + uri.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}


def hubspot_connection(tenant, account_id: str = PORTAL_ID):
    """Connect ``tenant`` to HubSpot portal ``account_id``, served by a new in-memory CRM; return both."""
    crm = InMemoryCrm(account_id)
    connection = connection_create(
        tenant=tenant, provider="hubspot", account_id=account_id, credentials={"token": "secret-token"}
    )
    return connection, crm
