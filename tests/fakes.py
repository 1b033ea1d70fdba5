"""An in-memory CRM and the adapter that talks to it: a test double for the provider contract.

The CRM behaves like the real ones where sync correctness depends on it: ids, versions,
archived records, merges, unique emails (HubSpot) or duplicates allowed (Pipedrive), and
failures injected on request, either before a call takes effect or after (a lost response).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from syncapp.engine import FIELDS, ContactRecord, RemoteState
from syncapp.exceptions import ProviderError, TransientProviderError
from syncapp.providers.base import CrmAdapter, CustomFieldResult, RemotePage, WriteResult
from syncapp.providers.base.paging import changed_since


@dataclass
class StoredRecord:
    id: str
    values: dict[str, str]
    seq: int
    modified_at: object
    archived: bool = False
    merged_ids: list[str] = field(default_factory=list)


class InMemoryCrm:
    accounts: dict[str, InMemoryCrm] = {}

    def __init__(self, account_id: str, *, unique_emails: bool = True, page_size: int = 3):
        self.account_id = account_id
        self.unique_emails = unique_emails
        self.page_size = page_size
        self.records: dict[str, StoredRecord] = {}
        self.merged_into: dict[str, str] = {}
        self.custom_fields: dict[str, str] = {}
        self._ids = itertools.count(101)
        self._seq = itertools.count(1)
        self.calls: list[str] = []
        # (remote id, field, value) for every value an API write set.
        self.api_writes: list[tuple[str, str, str]] = []
        # (remote id, field, value) for every value a read returned to the sync.
        self.observed: set[tuple[str, str, str]] = set()
        # Each item is "before" (the call fails, nothing happens) or "after" (it happens, the reply is lost).
        self.failures: list[str] = []
        # Values the CRM refuses with a 400, like an invalid phone number.
        self.invalid_values: set[str] = set()
        # Values the CRM refuses for now, per record (a 207 item saying "try again later").
        self.busy_values: set[str] = set()
        # Ids whose read the CRM refuses with a 400 for the whole batch, like an id it cannot parse.
        self.unreadable_ids: set[str] = set()
        # What a CRM user does while a full listing runs: {page number: action}, run right after
        # list_all read that page (1 is the first), before the sync sees it.
        self.after_listing_page: dict[int, Callable[[], None]] = {}
        InMemoryCrm.accounts[account_id] = self

    # What a CRM user does in the CRM's own UI ------------------------------------

    def user_create(self, **values) -> str:
        return self._create(values).id

    def user_edit(self, remote_id: str, **values) -> None:
        self._write(self.records[remote_id], values)

    def user_delete(self, remote_id: str) -> None:
        record = self.records[remote_id]
        record.archived = True
        self._touch(record)

    def user_restore(self, remote_id: str) -> None:
        record = self.records[remote_id]
        record.archived = False
        self._touch(record)

    def user_merge(self, primary_id: str, merged_id: str) -> None:
        primary, merged = self.records[primary_id], self.records.pop(merged_id)
        primary.merged_ids.append(merged_id)
        for name, value in merged.values.items():
            primary.values.setdefault(name, value)
        self.merged_into[merged_id] = primary_id
        self._touch(primary)

    # Views used by assertions ------------------------------------------------------

    def call_counts(self) -> Counter:
        """Return how many API calls of each kind the sync made."""
        return Counter(self.calls)

    def live(self) -> dict[str, dict[str, str]]:
        return {r.id: self._full(r) for r in self.live_records()}

    @property
    def api_writes_set(self) -> set[tuple[str, str, str]]:
        return set(self.api_writes)

    def live_records(self) -> list[StoredRecord]:
        return [r for r in self.records.values() if not r.archived]

    def live_record(self, remote_id: str) -> ContactRecord:
        return ContactRecord.from_dict(self.records[remote_id].values)

    # Internals ---------------------------------------------------------------------

    def _full(self, record: StoredRecord) -> dict[str, str]:
        return {name: record.values.get(name, "") for name in FIELDS}

    def _touch(self, record: StoredRecord) -> None:
        record.seq = next(self._seq)
        record.modified_at = timezone.now()

    def _create(self, values: dict) -> StoredRecord:
        record = StoredRecord(id=str(next(self._ids)), values={}, seq=0, modified_at=None)
        self.records[record.id] = record
        self._write(record, values)
        return record

    def _write(self, record: StoredRecord, values: dict) -> None:
        record.values.update(values)
        self._touch(record)

    def email_owner(self, email: str, *, exclude: str | None = None) -> str | None:
        email = email.strip().lower()
        for record in self.records.values():
            if not record.archived and record.id != exclude and record.values.get("email", "").lower() == email:
                return record.id
        return None

    def payload(self, record: StoredRecord) -> dict:
        """What this CRM's API returns for a record."""
        self.observed.update((record.id, name, value) for name, value in self._full(record).items())
        return {
            "id": record.id,
            "properties": dict(record.values),
            "archived": record.archived,
            "updatedAt": record.modified_at,
            "version": record.seq,
            "mergedIds": list(record.merged_ids),
        }

    def call(self, name: str, effect):
        """Run one API call, honouring injected failures."""
        self.calls.append(name)
        mode = self.failures.pop(0) if self.failures else None
        if mode == "before":
            raise TransientProviderError(f"{name}: 503 Service Unavailable", status=503)
        result = effect()
        if mode == "after":
            raise TransientProviderError(f"{name}: connection reset after the write", status=None)
        return result


class InMemoryAdapter(CrmAdapter):
    id = "memory"
    name = "In-memory CRM"

    @property
    def crm(self) -> InMemoryCrm:
        return InMemoryCrm.accounts[self.connection.account_id]

    def to_record(self, data):
        return RemoteState(
            remote_id=data["id"],
            record=ContactRecord.from_dict(data["properties"]),
            deleted=data["archived"],
            modified_at=data["updatedAt"],
            version=str(data["version"]),
            merged_ids=tuple(data["mergedIds"]),
        )

    def from_record(self, values):
        return {name: value for name, value in values.items() if name in FIELDS}

    def _call(self, name, effect):
        self.calls += 1
        return self.crm.call(name, effect)

    @property
    def refuses_duplicate_emails(self):
        # Like HubSpot when emails are unique (a create answers "Existing ID"), like Pipedrive otherwise.
        return self.crm.unique_emails

    def list_all(self, *, resume=None):
        """Yield pages by id, one API call each, resuming after the last id of the previous page.

        Like a cursor API, an answer says whether more follow, so a listing takes exactly as many
        calls as it has pages (one, empty, when nothing matches). Every page carries the high-water
        mark of when the listing began, from which an incremental listing continues.
        """
        high_water = str(max((r.seq for r in self.crm.records.values()), default=0))
        after, number = int(resume or 0), 0
        while True:
            found = self._call(
                "list_all",
                lambda after=after: sorted(
                    (r for r in self.crm.records.values() if not r.archived and int(r.id) > after),
                    key=lambda r: int(r.id),
                )[: self.crm.page_size + 1],
            )
            page, more = found[: self.crm.page_size], len(found) > self.crm.page_size
            records = [self.to_record(self.crm.payload(r)) for r in page]
            number += 1
            if action := self.crm.after_listing_page.pop(number, None):
                action()
            yield RemotePage(records=records, cursor=high_water, resume=page[-1].id if more else None)
            if not more:
                return
            after = int(page[-1].id)

    def list_changed(self, *, cursor):
        """Read by modification order with offset paging, like HubSpot's search: writes between pages shift it."""

        def changed(since, offset):
            start = int(offset or 0)
            found = self._call(
                "list_changed",
                lambda: sorted((r for r in self.crm.records.values() if r.seq >= since), key=lambda r: r.seq),
            )
            page = [self.to_record(self.crm.payload(r)) for r in found[start : start + self.crm.page_size]]
            return page, str(start + self.crm.page_size) if len(found) > start + self.crm.page_size else None

        pages = changed_since(
            changed,
            since=int(cursor or 0) + 1,
            stamp=lambda remote: int(remote.version),
            identity=lambda remote: (remote.remote_id, remote.version),
        )
        for page, fresh in pages:
            yield RemotePage(records=fresh, cursor=page[-1].version if page else None)

    def read_many(self, remote_ids):
        def effect():
            if refused := self.crm.unreadable_ids.intersection(remote_ids):
                raise ProviderError(f"400 Bad Request: invalid id {sorted(refused)[0]!r}", status=400)
            found = {}
            for rid in remote_ids:
                rid = self.crm.merged_into.get(rid, rid)
                record = self.crm.records.get(rid)
                if record and not record.archived:
                    found[rid] = self.to_record(self.crm.payload(record))
            return list(found.values())

        return self._call("read_many", effect)

    def find_by_emails(self, emails):
        wanted = {email.lower() for email in emails}
        return self._call(
            "find_by_emails",
            lambda: [
                self.to_record(self.crm.payload(r))
                for r in self.crm.live_records()
                if r.values.get("email", "").lower() in wanted
            ],
        )

    def create_many(self, records):
        def effect():
            results = []
            for record in records:
                owner = self.crm.email_owner(record.email) if self.crm.unique_emails and record.email else None
                if owner:
                    results.append(
                        WriteResult(
                            ok=False, existing_remote_id=owner, error=f"Contact already exists. Existing ID: {owner}"
                        )
                    )
                    continue
                values = self.from_record({k: v for k, v in record.as_dict().items() if v})
                stored = self.crm._create(values)
                self.crm.api_writes.extend((stored.id, k, v) for k, v in values.items())
                results.append(WriteResult(ok=True, remote_id=stored.id, version=str(stored.seq)))
            return results

        return self._call("create_many", effect)

    def update_many(self, changes):
        def effect():
            results = []
            for remote_id, values in changes:
                record = self.crm.records.get(remote_id)
                if record is None or record.archived:
                    results.append(WriteResult(ok=False, error=f"Record {remote_id} not found (404)"))
                    continue
                if (
                    values.get("email")
                    and self.crm.unique_emails
                    and self.crm.email_owner(values["email"], exclude=remote_id)
                ):
                    results.append(WriteResult(ok=False, error="A contact with this email already exists (409)"))
                    continue
                refused = self.crm.invalid_values & set(values.values())
                if refused:
                    results.append(WriteResult(ok=False, error=f"Property values were not valid: {sorted(refused)}"))
                    continue
                if self.crm.busy_values & set(values.values()):
                    results.append(WriteResult(ok=False, error="Record is locked, try again later", retryable=True))
                    continue
                values = self.from_record(values)
                self.crm._write(record, values)
                self.crm.api_writes.extend((remote_id, k, v) for k, v in values.items())
                results.append(WriteResult(ok=True, remote_id=remote_id, version=str(record.seq)))
            return results

        return self._call("update_many", effect)

    def archive_many(self, remote_ids):
        def effect():
            results = []
            for remote_id in remote_ids:
                record = self.crm.records.get(remote_id)
                if record is not None and not record.archived:
                    record.archived = True
                    self.crm._touch(record)
                # Archiving something already gone is a success: the goal state holds.
                results.append(WriteResult(ok=True, remote_id=remote_id, version=str(record.seq) if record else ""))
            return results

        return self._call("archive_many", effect)

    def restore(self, remote_id, record):
        def effect():
            stored = self.crm.records.get(remote_id)
            if stored is None:
                stored = self.crm._create({})
            stored.archived = False
            self.crm._write(stored, record.as_dict())
            self.crm.api_writes.extend((stored.id, k, v) for k, v in record.as_dict().items())
            return WriteResult(ok=True, remote_id=stored.id, version=str(stored.seq))

        return self._call("restore", effect)

    def custom_fields(self):
        return self._call(
            "custom_fields",
            lambda: [
                CustomFieldResult(key=key, created=False, label=label) for key, label in self.crm.custom_fields.items()
            ],
        )

    def ensure_custom_field(self, *, name, label):
        def effect():
            created = name not in self.crm.custom_fields
            self.crm.custom_fields.setdefault(name, label)
            return CustomFieldResult(key=name, created=created, label=label)

        return self._call("ensure_custom_field", effect)
