"""A Pipedrive adapter over the in-memory CRM, and helpers to build and send webhook deliveries."""

import base64
import copy
import itertools
import json
from pathlib import Path

from syncapp.providers.pipedrive.webhooks import PipedriveWebhookHandler
from syncapp.services.connections import connection_create
from tests.fakes import InMemoryAdapter, InMemoryCrm

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
COMPANY_ID = "8087566"
WEBHOOK_USER = "contactsync-test-user"
WEBHOOK_PASSWORD = "test-webhook-password"
SHARED_SECRET = "shared-webhook-secret"


class TestPipedriveAdapter(InMemoryAdapter):
    __test__ = False  # not a test class, despite the name

    id = "pipedrive"
    name = "Pipedrive (in memory)"
    webhook_handler_class = PipedriveWebhookHandler

    # Every register_webhooks call: (connection id, subscription_url, user, password).
    registrations: list[tuple[int, str, str, str]] = []
    _webhook_ids = itertools.count(4710827)
    registers_webhooks = True

    def register_webhooks(self, *, subscription_url: str, user: str, password: str) -> list[dict]:
        """Record the call and return the webhooks Pipedrive would describe (password left out)."""
        self.registrations.append((self.connection.pk, subscription_url, user, password))
        return [
            {
                "id": next(self._webhook_ids),
                "company_id": int(self.connection.account_id),
                "event_action": action,
                "event_object": "person",
                "subscription_url": subscription_url,
                "version": "2.0",
                "is_active": 1,
                "http_auth_user": user,
                "name": f"contactsync {self.connection.pk} {action}",
            }
            for action in ("create", "change", "delete")
        ]


def configure(settings) -> None:
    """Route the provider id pipedrive to the in-memory adapter; no shared secret."""
    settings.SYNCAPP_PROVIDERS = {
        **settings.SYNCAPP_PROVIDERS,
        "pipedrive": "tests.providers.pipedrive.webhook_adapter.TestPipedriveAdapter",
    }
    settings.PIPEDRIVE_WEBHOOK_SECRET = ""
    settings.WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
    TestPipedriveAdapter.registrations = []


def load_event(name: str, *, data: dict | None = None, **meta) -> dict:
    """Return the delivery of fixture ``name`` (say "person.create") with ``meta`` changes applied."""
    payload = json.loads((FIXTURES / f"{name}.json").read_text())
    payload["meta"].update(meta)
    if data is not None:
        payload["data"] = {**(payload["data"] or {}), **data}
    return copy.deepcopy(payload)


def basic_auth(user: str = WEBHOOK_USER, password: str = WEBHOOK_PASSWORD) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def pipedrive_connection(tenant, account_id: str = COMPANY_ID, *, webhook_credentials: bool = True):
    """Connect ``tenant`` to Pipedrive company ``account_id``, served by a new in-memory CRM; return both."""
    crm = InMemoryCrm(account_id, unique_emails=False)
    credentials = {"api_token": "secret-token"}
    if webhook_credentials:
        credentials |= {"webhook_user": WEBHOOK_USER, "webhook_password": WEBHOOK_PASSWORD}
    connection = connection_create(tenant=tenant, provider="pipedrive", account_id=account_id, credentials=credentials)
    return connection, crm
