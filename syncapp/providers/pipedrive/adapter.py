"""Pipedrive as a CRM adapter: v2 persons polled by update_time, v1 person fields and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.core.cache import cache

from syncapp.engine import ContactRecord, RemoteState, email_spellings
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
from .client import PipedriveClient
from .oauth import PIPEDRIVE_OAUTH, pipedrive_company_id
from .webhooks import PipedriveWebhookHandler

# update_time has whole seconds and updated_since is inclusive: re-read a little to miss nothing.
POLL_OVERLAP = timedelta(seconds=60)
FIELDS_CACHE_SECONDS = 3600


class PipedriveAdapter(CrmAdapter):
    id = "pipedrive"
    name = "Pipedrive"
    max_batch_size = 100  # ids= reads take at most 100
    writes_in_batches = False  # one call per person written
    generated_field_keys = True
    webhook_handler_class = PipedriveWebhookHandler
    sandbox_class = "syncapp.providers.pipedrive.sandbox.PipedriveSandboxAccount"
    oauth = PIPEDRIVE_OAUTH
    # Each company's API answers at its own api_domain, https://<company>.pipedrive.com.
    api_hosts = ("api.pipedrive.com", ".pipedrive.com")

    def __init__(self, *, connection):
        super().__init__(connection=connection)
        self.client = PipedriveClient(connection=connection)
        # Raw persons from the last reads, so a write keeps the emails and phones it does not own.
        self._raw: dict[str, dict] = {}
        # Pipedrive's clock: the Date header of its latest answer (see list_all).
        self._crm_date: str | None = None
        self.client.session.hooks["response"].append(self._note_crm_date)

    @classmethod
    def oauth_account_id(cls, *, access_token: str, api_base_url: str) -> str:
        return pipedrive_company_id(access_token=access_token, api_domain=api_base_url)

    @classmethod
    def token_account_id(cls, *, token: str, api_base_url: str) -> str:
        return pipedrive_company_id(access_token=token, api_domain=api_base_url, api_token=True)

    def _note_crm_date(self, response, *args, **kwargs) -> None:
        self._crm_date = response.headers.get("Date")

    # Mapping --------------------------------------------------------------------------

    @property
    def pronouns_key(self) -> str:
        configured = self.connection.pronouns_state == self.connection.PronounsState.CONFIGURED
        return self.connection.pronouns_field_key if configured else ""

    def to_record(self, data: dict) -> RemoteState:
        self._raw[str(data["id"])] = data
        return mapping.to_state(data, pronouns_key=self.pronouns_key)

    def from_record(self, values: dict[str, str]) -> dict:
        return mapping.to_body(values, current=None, full=values, pronouns_key=self.pronouns_key)

    def unsupported_fields(self) -> frozenset[str]:
        missing = set() if self.pronouns_key else {"pronouns"}
        # job_title exists only where the company enabled contact sync; person fields say so.
        keys = cache.get_or_set(
            f"syncapp:pipedrive-fields:{self.connection.pk}",
            lambda: [field.get("key") for field in self.client.person_fields()],
            FIELDS_CACHE_SECONDS,
        )
        if "job_title" not in keys:
            missing.add("job_title")
        return frozenset(missing)

    def webhook_path(self) -> str:
        return f"/webhooks/pipedrive/{self.connection.webhook_key}/"

    # Reads --------------------------------------------------------------------------------

    def _pages(self, *, cursor: str | None = None, **query):
        while True:
            records, next_cursor = self._page(self.client.persons_list(cursor=cursor, **query))
            yield records, next_cursor
            if not next_cursor or next_cursor == cursor:  # null at the end; a repeat would loop forever
                return
            cursor = next_cursor

    def _page(self, body: dict) -> tuple[list[RemoteState], str | None]:
        self._raw = {}  # a listing keeps one page in memory, the one being reconciled
        records = [self.to_record(item) for item in body.get("data") or []]
        return records, (body.get("additional_data") or {}).get("next_cursor")

    def list_all(self, *, resume=None):
        # The cursor is when the listing began, so reading changes from it covers the whole listing
        # window. The latest update_time listed would not: a person on an early page edited while
        # later pages were read can have changed before it. The start is taken by Pipedrive's own
        # clock, the Date of the first page's answer; Pipedrive stamps that after reading the page,
        # and list_changed goes back POLL_OVERLAP from it. Without a Date it is our clock less
        # POLL_OVERLAP (list_changed then goes back twice that), so a small clock skew misses nothing.
        started = datetime.now(UTC) - POLL_OVERLAP
        cursor = None
        for records, next_cursor in self._pages(cursor=resume):
            cursor = cursor or (_http_date(self._crm_date) or started).isoformat()
            yield RemotePage(records=records, cursor=cursor, resume=next_cursor)

    def list_changed(self, *, cursor):
        def persons(since, after):
            body = self.client.persons_list(cursor=after, updated_since=since.strftime("%Y-%m-%dT%H:%M:%SZ"))
            return self._page(body)

        pages = changed_since(
            persons,
            # In whole seconds, like update_time, so a page of one second counts as no progress.
            since=(_parse(cursor) - POLL_OVERLAP).replace(microsecond=0)
            if cursor
            else datetime(2000, 1, 1, tzinfo=UTC),
            stamp=lambda record: record.modified_at,
            identity=lambda record: (record.remote_id, record.version),
        )
        for records, fresh in pages:
            latest = max((r.modified_at for r in records if r.modified_at), default=None)
            yield RemotePage(records=fresh, cursor=latest.isoformat() if latest else cursor)

    def read_many(self, remote_ids):
        body = self.client.persons_list(cursor=None, ids=sorted(remote_ids, key=lambda rid: (len(rid), rid)))
        return [self.to_record(item) for item in body.get("data") or [] if not item.get("is_deleted")]

    def find_by_emails(self, emails):
        spellings = [spelling for email in emails for spelling in email_spellings(email)]
        ids = sorted({pid for spelling in spellings for pid in self.client.persons_search_email(spelling)}, key=int)
        found = []
        for start in range(0, len(ids), self.max_batch_size):
            found += self.read_many(ids[start : start + self.max_batch_size])
        return found

    # Writes (Pipedrive has no batch person writes: one call each) ----------------------------

    def create_many(self, records: list[ContactRecord]) -> list[WriteResult]:
        return self._write_each(self._create, [(record,) for record in records])

    def update_many(self, changes):
        return self._write_each(self._update, list(changes))

    def archive_many(self, remote_ids):
        return self._write_each(self._delete, [(remote_id,) for remote_id in remote_ids])

    def _write_each(self, call, items: list[tuple]) -> list[WriteResult]:
        """Write one by one; if the CRM fails midway, keep what was written.

        An error that is not this record's own (a 5xx or dropped connection after the client's
        retries, a 429 to wait out, the daily budget spent, refused credentials) stops the writes:
        PartialWriteError carries the results so far, and the sync queues the rest, untried, for
        a later run. A create the error stopped may have been made; the next run looks it up first.
        """
        results: list[WriteResult] = []
        for args in items:
            try:
                results.append(self._write(call, *args))
            except SyncError as exc:
                if not results:
                    raise
                raise PartialWriteError(results, exc) from exc
        return results

    def _create(self, record: ContactRecord) -> dict:
        # The client resends a create answered 429 (refused before anything was created), never one
        # that failed otherwise.
        return self.client.person_create(self._body(record.as_dict(), None))

    def _update(self, remote_id: str, values: dict[str, str]) -> dict:
        return self.client.person_update(remote_id, self._body(values, self._current(remote_id)))

    def _delete(self, remote_id: str) -> dict:
        self.client.person_delete(remote_id)
        return {"id": remote_id}

    def _current(self, remote_id: str) -> dict:
        return self._raw.get(remote_id) or self.client.person_get(remote_id) or {}

    def _body(self, values: dict[str, str], current: dict | None) -> dict:
        full = mapping.to_state(current, pronouns_key=self.pronouns_key).record.as_dict() if current else {}
        body = mapping.to_body(values, current=current, full={**full, **values}, pronouns_key=self.pronouns_key)
        if "job_title" in self.unsupported_fields():
            body.pop("job_title", None)
        return body

    def _write(self, call, *args) -> WriteResult:
        try:
            data = call(*args)
        except ProviderAuthError as exc:
            if exc.status != 403:
                raise  # bad credentials: the connection needs fixing
            return WriteResult(ok=False, error=str(exc))  # no permission on this one person
        except (TransientProviderError, QuotaExhaustedError):
            raise  # the connection, not this record, needs to wait
        except ProviderError as exc:
            return WriteResult(ok=False, error=str(exc))
        if data and "id" in data and "emails" in data:
            self.to_record(data)
        return WriteResult(ok=True, remote_id=str(data["id"]), version=(data or {}).get("update_time") or "")

    # Custom fields and webhooks ---------------------------------------------------------------

    def custom_fields(self) -> list[CustomFieldResult]:
        return [
            CustomFieldResult(key=field["key"], created=False, label=field.get("name") or "")
            for field in self.client.person_fields()
        ]

    def ensure_custom_field(self, *, name: str, label: str) -> CustomFieldResult:
        for field in self.custom_fields():
            if field.label.strip().lower() == label.lower():
                return field
        created = self.client.person_field_create(name=label)
        cache.delete(f"syncapp:pipedrive-fields:{self.connection.pk}")
        return CustomFieldResult(key=created["key"], created=True, label=label)

    registers_webhooks = True

    def register_webhooks(self, *, subscription_url: str, user: str, password: str) -> list[dict]:
        """Register person webhooks (create, change, delete) for this URL, replacing earlier ones."""
        earlier = [hook["id"] for hook in self.client.webhooks() if hook.get("subscription_url") == subscription_url]
        created = [
            self.client.webhook_create(
                {
                    "subscription_url": subscription_url,
                    "event_action": action,
                    "event_object": "person",
                    "name": f"contactsync {self.connection.pk} {action}",
                    "http_auth_user": user,
                    "http_auth_password": password,
                    "version": "2.0",
                }
            )
            for action in ("create", "change", "delete")
        ]
        # Removed only once the new ones exist, so a failure never leaves the connection without webhooks.
        for webhook_id in earlier:
            self.client.webhook_delete(webhook_id)
        return created


def _http_date(value: str | None) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) if moment else None


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
