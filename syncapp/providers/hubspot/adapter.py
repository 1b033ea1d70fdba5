"""HubSpot as a CRM adapter: contacts API v3 in batches of 100, search for incremental reads."""

from __future__ import annotations

import json
import re
import time

from syncapp.engine import ContactRecord, RemoteState, email_spellings, normalize_email
from syncapp.engine.records import answered_ids
from syncapp.exceptions import (
    PartialWriteError,
    ProviderAuthError,
    ProviderError,
    QuotaExhaustedError,
    SyncError,
    TransientProviderError,
)
from syncapp.providers.base import CrmAdapter, CustomFieldResult, RemotePage, WriteResult
from syncapp.providers.base.paging import changed_since

from . import mapping
from .client import HubspotClient
from .oauth import HUBSPOT_OAUTH, hubspot_portal_id, hubspot_token_portal_id
from .webhooks import HubspotWebhookHandler

# Search results appear "after a few moments": each incremental read goes back this far.
SEARCH_OVERLAP_MS = 2 * 60 * 1000
# HubSpot refuses to page a search past 10,000 results.
SEARCH_RESULT_CAP = 10_000
# Contacts archived in one batch may reach the recycling bin a moment apart, so a scan looks
# this far behind the latest archivedAt it saw (skipping the ids it already reported there).
BIN_OVERLAP_MS = SEARCH_OVERLAP_MS
EXISTING_ID = re.compile(r"Existing ID: (\d+)")


class HubspotAdapter(CrmAdapter):
    id = "hubspot"
    name = "HubSpot"
    max_batch_size = 100
    # A create with an email another contact has answers 409 "Existing ID: N" (see _refused). That,
    # not a catch-up search after the full listing, keeps a contact created meanwhile from being
    # duplicated: search results lag "a few moments", and a search since the listing began would
    # read again every contact the full sync itself updated (200 a page).
    refuses_duplicate_emails = True
    webhook_handler_class = HubspotWebhookHandler
    sandbox_class = "syncapp.providers.hubspot.sandbox.HubspotSandboxAccount"
    oauth = HUBSPOT_OAUTH
    api_hosts = ("api.hubapi.com", "app.hubspot.com")
    # Webhooks are the fast path; the poll is a safety net for deliveries that never came.
    poll_interval_setting = "HUBSPOT_POLL_INTERVAL"

    def __init__(self, *, connection):
        super().__init__(connection=connection)
        self.client = HubspotClient(connection=connection)

    @classmethod
    def oauth_account_id(cls, *, access_token: str, api_base_url: str) -> str:
        return hubspot_portal_id(access_token=access_token, api_base_url=api_base_url)

    @classmethod
    def token_account_id(cls, *, token: str, api_base_url: str) -> str:
        return hubspot_token_portal_id(token=token, api_base_url=api_base_url)

    # Mapping -------------------------------------------------------------------------------

    @property
    def names(self) -> dict[str, str]:
        configured = self.connection.pronouns_state == self.connection.PronounsState.CONFIGURED
        return mapping.property_names(pronouns_property=self.connection.pronouns_field_key if configured else None)

    @property
    def properties(self) -> list[str]:
        return [*self.names.values(), *mapping.EXTRA_PROPERTIES]

    def to_record(self, data: dict) -> RemoteState:
        return mapping.to_state(data, names=self.names)

    def from_record(self, values: dict[str, str]) -> dict:
        return mapping.to_properties(values, names=self.names)

    def unsupported_fields(self) -> frozenset[str]:
        return frozenset({"pronouns"} - set(self.names))

    def webhook_path(self) -> str:
        return "/webhooks/hubspot/"

    # Reads ------------------------------------------------------------------------------------

    def list_all(self, *, resume=None):
        # Taken before the first page, so changes made while the listing runs are picked up by the
        # next incremental read (which goes back SEARCH_OVERLAP_MS once more).
        cursor = str(int(time.time() * 1000) - SEARCH_OVERLAP_MS)
        for results, after in self._listing(archived=False, after=resume):
            yield RemotePage(records=[self.to_record(item) for item in results], cursor=cursor, resume=after)

    def _listing(self, *, archived: bool, after: str | None = None):
        """Yield each page's results and the token of the page after it (None on the last page)."""
        while True:
            body = self.client.list_contacts(properties=self.properties, after=after, archived=archived)
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            yield body.get("results", []), after
            if not after:
                return

    def list_changed(self, *, cursor):
        yield from self._modified_since(max(int(cursor or 0) - SEARCH_OVERLAP_MS, 0))

    def deletions_cursor(self, *, changes_cursor):
        # The first scan starts where the search would (cursor - 2 min): the cursor is our clock's
        # and archivedAt HubSpot's, so the search's lookback covers the skew once. Later scans go
        # by archivedAt alone.
        return _bin_cursor(since=max(int(changes_cursor or 0) - SEARCH_OVERLAP_MS, 0), handled=[])

    def list_deleted(self, *, cursor):
        """Pages of the contacts archived since ``cursor``, read back before they count as gone.

        Search never shows archived contacts, and the recycling bin (90 days of deletions) can
        only be listed whole, in id order. A contact restored meanwhile, or merged into another
        (which archives it too), reads back live: the survivor answers for it, so only the
        contacts still gone are reported deleted. The cursor, on the last page, is the latest
        archivedAt seen minus BIN_OVERLAP_MS, with the ids already reported inside that overlap
        so they are not read again.
        """
        state = json.loads(cursor)
        since, handled = state["since"], set(state["handled"])
        archived_at: dict[str, int] = {}
        for results, _ in self._listing(archived=True):  # pages of 100, a batch read's limit
            recent = {str(item["id"]): item for item in results if mapping.archived_ms(item) >= since}
            archived_at.update({remote_id: mapping.archived_ms(item) for remote_id, item in recent.items()})
            unseen = [item for remote_id, item in recent.items() if remote_id not in handled]
            if unseen:
                live = self.read_many([str(item["id"]) for item in unseen])
                answered = answered_ids(live)
                gone = [self.to_record(item) for item in unseen if str(item["id"]) not in answered]
                yield RemotePage(records=live + gone)
        if archived_at:
            since = max(since, max(archived_at.values()) - BIN_OVERLAP_MS)
            handled = sorted(remote_id for remote_id, moment in archived_at.items() if moment >= since)
            cursor = _bin_cursor(since=since, handled=handled)
        yield RemotePage(records=[], cursor=cursor)

    def _modified_since(self, since: int):
        def search(since, after):
            body = self.client.search_modified_since(since_ms=since, properties=self.properties, after=after)
            return body.get("results", []), ((body.get("paging") or {}).get("next") or {}).get("after")

        pages = changed_since(
            search,
            since=since,
            stamp=mapping.modified_ms,
            identity=lambda item: (item["id"], item.get("updatedAt")),
            # Past the cap, a query from the next millisecond: more than 10,000 contacts modified in one
            # millisecond cannot all be read.
            past_cap=lambda reach, since: since + 1 if reach > SEARCH_RESULT_CAP else None,
        )
        for results, fresh in pages:
            if fresh:
                records = [self.to_record(item) for item in fresh]
                yield RemotePage(records=records, cursor=str(mapping.modified_ms(results[-1])))

    def read_many(self, remote_ids):
        return self._read(ids=list(remote_ids))

    def find_by_emails(self, emails):
        spellings = [spelling for email in emails for spelling in email_spellings(email)]
        size = self.max_batch_size  # a second spelling can take a batch over HubSpot's limit
        return [
            found
            for start in range(0, len(spellings), size)
            for found in self._read(ids=spellings[start : start + size], id_property="email")
        ]

    def _read(self, *, ids: list[str], id_property: str | None = None) -> list[RemoteState]:
        body = self.client.batch_read(ids=ids, properties=self.properties, id_property=id_property)
        # Only "not found" may mean gone: any other per-item error must not look like a deletion.
        failures = [error for error in body.get("errors", []) if error.get("category") != "OBJECT_NOT_FOUND"]
        if failures:
            raise TransientProviderError(f"HubSpot could not read some contacts: {failures[0].get('message', '')}")
        return [self.to_record(item) for item in body.get("results", [])]

    # Writes -------------------------------------------------------------------------------------

    def create_many(self, records: list[ContactRecord]) -> list[WriteResult]:
        inputs = [
            {
                "properties": self.from_record(_non_empty(record.as_dict())),
                "associations": [],
                "objectWriteTraceId": str(i),
            }
            for i, record in enumerate(records)
        ]
        return self._write(self.client.batch_create, inputs, self.create_many, records, key="email")

    def update_many(self, changes):
        inputs = [
            {"id": remote_id, "properties": self.from_record(values), "objectWriteTraceId": str(i)}
            for i, (remote_id, values) in enumerate(changes)
        ]
        return self._write(self.client.batch_update, inputs, self.update_many, changes, key="id")

    def _write(self, send, inputs: list[dict], retry_one, items: list, *, key: str) -> list[WriteResult]:
        try:
            body = send(inputs=inputs)
        except ProviderError as exc:
            if isinstance(exc, (TransientProviderError, ProviderAuthError, QuotaExhaustedError)):
                raise  # the connection, not a record, is the problem: nothing of this batch was written
            if len(inputs) == 1:
                return [_refused(str(exc))]
            # One bad record (a duplicate email, an invalid value) fails the whole batch: go one by
            # one, so the others are written and the bad one's message reaches its link.
            results: list[WriteResult] = []
            for item in items:
                try:
                    results += retry_one([item])
                except SyncError as stop:
                    if not results:
                        raise
                    raise PartialWriteError(results, stop) from stop  # say what was written before it
            return results
        return _per_item(inputs, body, key=key)

    def archive_many(self, remote_ids):
        self.client.batch_archive(ids=list(remote_ids))
        return [WriteResult(ok=True, remote_id=remote_id) for remote_id in remote_ids]

    # Custom fields ------------------------------------------------------------------------------

    def ensure_custom_field(self, *, name: str, label: str) -> CustomFieldResult:
        if self.client.property_get(name):
            return CustomFieldResult(key=name, created=False, label=label)
        try:
            self.client.property_create({**mapping.PRONOUNS_PROPERTY, "name": name, "label": label})
        except ProviderError as exc:
            # Created meanwhile by someone else: HubSpot answers 409 (or 400 "already exists").
            if exc.status == 409 or "already exists" in str(exc).lower():
                return CustomFieldResult(key=name, created=False, label=label)
            raise
        return CustomFieldResult(key=name, created=True, label=label)

    def custom_fields(self) -> list[CustomFieldResult]:
        return [
            CustomFieldResult(key=prop["name"], created=False, label=prop.get("label") or "")
            for prop in self.client.property_list()
        ]


def _bin_cursor(*, since: int, handled: list[str]) -> str:
    return json.dumps({"since": since, "handled": handled}, separators=(",", ":"))


def _non_empty(values: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def _refused(message: str) -> WriteResult:
    existing = EXISTING_ID.search(message)
    return WriteResult(ok=False, error=message, existing_remote_id=existing.group(1) if existing else None)


# Per-item error categories that may pass on a later try.
RETRYABLE_CATEGORIES = {"INTERNAL_ERROR", "RATE_LIMITS", "LOCKED", "TIMEOUT"}


def _per_item(inputs: list[dict], body: dict, *, key: str) -> list[WriteResult]:
    """Pair a batch (or 207 multi-status) answer with its inputs.

    HubSpot echoes each input's objectWriteTraceId; where it does not, results are matched by id
    (updates) or by email (creates).
    """
    by_trace: dict[str, WriteResult] = {}
    trace_of = {_input_key(item, key): item["objectWriteTraceId"] for item in inputs}
    for item in body.get("results", []):
        trace = item.get("objectWriteTraceId") or trace_of.get(_result_key(item, key))
        by_trace[trace] = WriteResult(ok=True, remote_id=str(item["id"]), version=item.get("updatedAt") or "")
    for error in body.get("errors", []):
        message = f"HubSpot {error.get('category', 'ERROR')}: {error.get('message', '')}".strip()
        retryable = error.get("category") in RETRYABLE_CATEGORIES
        existing = _refused(message).existing_remote_id
        for trace in (error.get("context") or {}).get("objectWriteTraceId", []):
            by_trace[trace] = WriteResult(ok=False, error=message, retryable=retryable, existing_remote_id=existing)
    missing = WriteResult(ok=False, error="HubSpot did not report on this record; it will be retried.", retryable=True)
    return [by_trace.get(item["objectWriteTraceId"], missing) for item in inputs]


def _input_key(item: dict, key: str) -> str:
    return str(item["id"]) if key == "id" else normalize_email(item["properties"].get("email"))


def _result_key(item: dict, key: str) -> str:
    return str(item["id"]) if key == "id" else normalize_email((item.get("properties") or {}).get("email"))
