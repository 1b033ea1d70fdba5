"""End-to-end tests: the real HubSpot and Pipedrive connectors (HTTP, clients, adapters) against the CRM sandbox.

Every test ends by comparing both sides field by field: the tenant's live app contacts against the
sandbox account's live records (``control_list(include_deleted=False)``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from syncapp.engine import FIELDS, ContactRecord
from syncapp.models import Contact, ContactLink, CrmConnection, OutboxEntry, SyncRun
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync
from tests.helpers import sandbox_connection

PROVIDERS = ("hubspot", "pipedrive")
# The request-log labels of the API calls that change one linked record, and that remove one.
UPDATE_ENDPOINT = {
    "hubspot": "POST /crm/v3/objects/contacts/batch/update",
    "pipedrive": "PATCH /api/v2/persons/{person_id}",
}
DELETE_ENDPOINT = {
    "hubspot": "POST /crm/v3/objects/contacts/batch/archive",
    "pipedrive": "DELETE /api/v2/persons/{person_id}",
}


@dataclass
class Crm:
    """A connection of the test tenant to one sandbox account, and ways to act as the CRM's user."""

    provider: str
    connection: CrmConnection
    account: object
    server: object

    @property
    def sandbox(self):
        return self.server.sandbox

    def create(self, *, notify: bool = True, **values) -> str:
        with self.account.lock:
            return self.account.control_create(values, notify=notify)["id"]

    def update(self, record_id: str, **values) -> dict:
        with self.account.lock:
            return self.account.control_update(record_id, values)

    def delete(self, record_id: str) -> None:
        with self.account.lock:
            self.account.control_delete(record_id)

    def live(self) -> list[dict]:
        with self.account.lock:
            return self.account.control_list(include_deleted=False)

    def all(self) -> dict[str, dict]:
        with self.account.lock:
            return {record["id"]: record for record in self.account.control_list(include_deleted=True)}

    def get(self, record_id: str) -> dict:
        return self.all()[record_id]

    def by_email(self, email: str) -> dict:
        (record,) = [r for r in self.live() if normalized(r)["email"] == email]
        return record

    def sync(self, **kwargs) -> SyncRun:
        self.connection.refresh_from_db()
        return connection_sync(connection=self.connection, **kwargs)

    def setup_pronouns(self):
        setup = connection_setup_pronouns(connection=self.connection)
        assert setup.state == CrmConnection.PronounsState.CONFIGURED, setup.message
        self.connection.refresh_from_db()
        return setup

    def mark(self) -> int:
        """The request log's position now: pass it to ``requests_since``/``writes_since``."""
        return self.sandbox.log_sequence

    def requests_since(self, mark: int) -> list[dict]:
        return self.sandbox.requests_since(mark, provider=self.provider, account_id=self.account.account_id)

    def writes_since(self, mark: int) -> list[str]:
        """The endpoints of the record writes the account answered since ``mark`` (reads and searches left out)."""
        return [entry["endpoint"] for entry in self.requests_since(mark) if is_record_write(entry)]


def is_record_write(entry: dict) -> bool:
    if entry["method"] == "GET":
        return False
    path = entry["path"]
    if path.endswith(("/search", "/batch/read")):
        return False
    return "/objects/contacts" in path or path.startswith("/api/v2/persons")


def normalized(values: dict, fields=FIELDS) -> dict[str, str]:
    """Values as the sync contract compares them: trimmed, emails case-insensitive."""
    record = ContactRecord.from_dict({name: values.get(name) or "" for name in FIELDS}).as_dict()
    return {name: record[name] for name in fields}


def app_live(tenant, fields=FIELDS) -> dict[str, dict[str, str]]:
    contacts = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True)
    emails = Counter(normalized({"email": c.email})["email"] for c in contacts)
    duplicates = [email for email, count in emails.items() if count > 1]
    assert not duplicates, f"duplicate app contacts for {duplicates}"
    return {normalized({"email": c.email})["email"]: normalized(c.to_record().as_dict(), fields) for c in contacts}


def assert_agree(crm: Crm, tenant, *, fields=FIELDS, excluded_ids=()) -> dict[str, str]:
    """Assert that the app's live contacts and the CRM's live records hold the same values, one record per email.

    Every live contact must be linked to the live record with its email. ``excluded_ids`` are CRM
    records the sync must leave out (no email). Returns {email: CRM record id}.
    """
    records = [record for record in crm.live() if record["id"] not in set(excluded_ids)]
    emails = Counter(normalized(record)["email"] for record in records)
    duplicates = [email for email, count in emails.items() if count > 1]
    assert not duplicates, f"duplicate CRM records for {duplicates}"
    remote = {normalized(record)["email"]: normalized(record, fields) for record in records}
    local = app_live(tenant, fields)
    assert local == remote
    ids = {normalized(record)["email"]: record["id"] for record in records}
    links = {
        normalized({"email": link.contact.email})["email"]: link.remote_id
        for link in ContactLink.objects.filter(
            connection=crm.connection, contact__deleted_at__isnull=True
        ).select_related("contact")
    }
    assert links == ids, "every live contact is linked to the live record with its email"
    return ids


def assert_succeeded(run: SyncRun) -> SyncRun:
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.errors == 0
    return run


def outbox_of(crm: Crm) -> list[OutboxEntry]:
    return list(OutboxEntry.objects.filter(connection=crm.connection))


def make_crm(tenant, server, provider: str, **account_options) -> Crm:
    connection, account = sandbox_connection(tenant, server, provider, **account_options)
    return Crm(provider=provider, connection=connection, account=account, server=server)


@pytest.fixture(autouse=True)
def sandbox_is_the_crm(request):
    """The CRMs' messages (a spent daily quota, missing scopes) reach the tests as the real CRMs' would."""
    if "crm_sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox_as_crm")


@pytest.fixture(params=PROVIDERS)
def crm(request, tenant, crm_sandbox) -> Crm:
    """A connection to a fresh sandbox account of each provider in turn (no rate limits, no webhooks)."""
    return make_crm(tenant, crm_sandbox, request.param)


@pytest.fixture
def crm_with_pronouns(crm) -> Crm:
    crm.setup_pronouns()
    return crm
