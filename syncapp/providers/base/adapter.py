"""The contract every CRM implements.

An adapter translates between a CRM's payloads and the engine's records and performs the HTTP
calls; it never decides what to write. Required methods raise NotImplementedError naming
themselves; optional ones have a working default.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from syncapp.engine import ContactRecord, RemoteState, oldest_first


@dataclass(frozen=True)
class RemotePage:
    """One page of a listing. ``cursor`` is where a restarted listing resumes after this page.

    ``resume``, on the pages of ``list_all`` but the last, is where a listing cut after this page
    continues: ``list_all(resume=...)`` yields the pages that follow it.
    """

    records: list[RemoteState]
    cursor: str | None = None
    resume: str | None = None


@dataclass(frozen=True)
class WriteResult:
    """The per-item outcome of a batch write, in the order of the inputs.

    ``existing_remote_id`` is set when a create failed because the CRM already holds a record
    with that email (HubSpot's 409): the caller links to it instead of failing. ``retryable`` marks
    a passing failure (HubSpot's INTERNAL_ERROR for one item, say): the record is not written yet
    and waits for the next run, never counted as its failure. An error that stops a whole write
    call is raised instead (PartialWriteError when some items were answered before it).
    """

    ok: bool
    remote_id: str | None = None
    version: str = ""
    modified_at: datetime | None = None
    error: str = ""
    retryable: bool = False
    existing_remote_id: str | None = None


@dataclass(frozen=True)
class CustomFieldResult:
    """The state of a custom field after ``ensure_custom_field``: its key and whether it was created."""

    key: str
    created: bool
    label: str = ""


class CrmAdapter:
    id: str = ""
    name: str = ""
    # Largest batch one write call accepts.
    max_batch_size: int = 100
    # False where every write is its own API call (Pipedrive): a full sync then gains nothing by
    # holding a listing's writes back until they fill a batch, and writes each page's at once.
    writes_in_batches: bool = True
    # True where the CRM refuses to create a record whose email a live record already has, and
    # create_many names that record as ``existing_remote_id`` (HubSpot's 409 "Existing ID"): the
    # create then links instead of duplicating, so a full sync needs no catch-up read before it
    # creates the app contacts its listing did not match.
    refuses_duplicate_emails: bool = False
    # The setting (milliseconds) that says how often this CRM is polled.
    poll_interval_setting = "DEFAULT_SYNC_INTERVAL"

    # The CrmClient an adapter talks through, when it has one.
    client = None
    # Dotted path of the CRM sandbox's account class that emulates this CRM's API (syncapp/sandbox/).
    sandbox_class = ""
    # The CRM's OAuth app (an OAuthConfig), where people may connect through OAuth.
    oauth = None
    # Hosts a connection's API base URL may name (a leading dot allows subdomains): the CRM's own.
    api_hosts: tuple[str, ...] = ()

    def __init__(self, *, connection):
        self.connection = connection
        # Calls made by an adapter without a client.
        self.calls = 0

    @classmethod
    def oauth_account_id(cls, *, access_token: str, api_base_url: str) -> str:
        """Return the id of the CRM account an OAuth access token was granted for (where ``oauth`` is set)."""
        raise NotImplementedError

    @classmethod
    def token_account_id(cls, *, token: str, api_base_url: str) -> str:
        """Return the id of the CRM account a pasted private-app / API token opens, or "" if the CRM cannot say.

        Raises OAuthError with the CRM's message when it refuses the token.
        """
        return ""

    @property
    def api_calls(self) -> int:
        """Return how many API calls this adapter made (reported on the sync run)."""
        return self.client.calls if self.client else self.calls

    # Mapping ---------------------------------------------------------------------

    def to_record(self, data: dict) -> RemoteState:
        """Translate one CRM payload into the engine's view of that record."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a to_record() method")

    def from_record(self, values: dict[str, str]) -> dict:
        """Translate universal field values into the CRM's write payload (fields it lacks left out)."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a from_record() method")

    def unsupported_fields(self) -> frozenset[str]:
        """Return the universal fields this account cannot hold yet; they are skipped and reported."""
        return frozenset()

    # Reads -------------------------------------------------------------------

    def list_all(self, *, resume: str | None = None) -> Iterator[RemotePage]:
        """Yield every live record, page by page; exhausting the iterator means the listing is complete.

        The last page's cursor is where ``list_changed`` continues afterwards. It must cover the
        whole listing window: a record created or changed while the listing ran (even on a page
        already read) is changed since that cursor. A full sync reads from it once more before
        it creates records, and so does the next poll. With ``resume`` (a page's ``resume``), yield
        only the pages after that page; a listing resumed in a later task keeps its first cursor.
        """
        raise NotImplementedError("subclasses of CrmAdapter must provide a list_all() method")

    def list_changed(self, *, cursor: str | None) -> Iterator[RemotePage]:
        """Yield records changed since ``cursor`` (None: since the beginning), oldest first.

        Deleted records are included with ``deleted=True`` where the CRM reports them with the
        changes (``list_deleted`` finds the others). The window may overlap the previous one;
        the engine is idempotent.
        """
        raise NotImplementedError("subclasses of CrmAdapter must provide a list_changed() method")

    def deletions_cursor(self, *, changes_cursor: str | None) -> str | None:
        """Return where ``list_deleted`` starts to find the records deleted since a ``list_changed`` cursor.

        None where the CRM cannot list its deletions: the daily full sync finds them.
        """
        return None

    def list_deleted(self, *, cursor: str) -> Iterator[RemotePage]:
        """Yield records deleted since ``cursor`` (``deleted=True``; records found live again as they are).

        Only the last page carries a cursor, where the next scan continues. The engine saves it
        only after the whole iteration, so a scan cut short by any fault is repeated from the
        same point and no deletion is skipped.
        """
        yield from ()

    def read_many(self, remote_ids: list[str]) -> list[RemoteState]:
        """Return the current state of the given records; ids the CRM no longer has are left out."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a read_many() method")

    def find_by_emails(self, emails: list[str]) -> list[RemoteState]:
        """Return the live records carrying any of ``emails`` (several per email where the CRM allows it)."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a find_by_emails() method")

    # Writes (at most max_batch_size items per call) ---------------------------

    def create_many(self, records: list[ContactRecord]) -> list[WriteResult]:
        """Create records; one result per input."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a create_many() method")

    def update_many(self, changes: list[tuple[str, dict[str, str]]]) -> list[WriteResult]:
        """Write changed fields ``(remote_id, {field: value})``; one result per input."""
        raise NotImplementedError("subclasses of CrmAdapter must provide an update_many() method")

    def archive_many(self, remote_ids: list[str]) -> list[WriteResult]:
        """Archive (delete) records; one result per input."""
        raise NotImplementedError("subclasses of CrmAdapter must provide an archive_many() method")

    def restore(self, remote_id: str, record: ContactRecord) -> WriteResult:
        """Bring an archived record back with ``record``'s values.

        CRMs that cannot revive a record create a new one; the result's ``remote_id`` then differs
        and the link follows it. A live record with the email already (say, from a restore whose
        reply was lost) is reported as existing, not created twice.
        """
        existing = self.find_by_emails([record.email]) if record.email else []
        if existing:
            oldest = min(existing, key=lambda item: oldest_first(item.remote_id))
            return WriteResult(ok=False, existing_remote_id=oldest.remote_id, error="A record with this email exists.")
        (result,) = self.create_many([record])
        return result

    def webhook_path(self) -> str | None:
        """Return the path below PUBLIC_BASE_URL where this connection's CRM delivers webhooks, if any."""
        return None

    # True where webhooks are subscribed through the CRM's API (Pipedrive); False where they are set up
    # in the CRM's own app settings (HubSpot), so `setup_webhooks` has nothing to do.
    registers_webhooks = False

    def register_webhooks(self, *, subscription_url: str, user: str, password: str) -> list[dict]:
        """Subscribe ``subscription_url``, with these Basic credentials, to the CRM's person events, replacing
        the subscriptions made earlier for that URL; return them as the CRM describes them."""
        raise NotImplementedError("adapters with registers_webhooks must provide register_webhooks()")

    # Custom fields --------------------------------------------------------------

    # True where the CRM invents a field's key (Pipedrive's 40-character hashes), so a field is
    # recognised by its label; False where we choose the key ourselves (HubSpot property names).
    generated_field_keys = False

    def custom_fields(self) -> list[CustomFieldResult]:
        """Return the contact fields the account has (key and label)."""
        raise NotImplementedError("subclasses of CrmAdapter must provide a custom_fields() method")

    def ensure_custom_field(self, *, name: str, label: str) -> CustomFieldResult:
        """Create the text field ``name`` labelled ``label`` unless it exists; "already exists" is success."""
        raise NotImplementedError("subclasses of CrmAdapter must provide an ensure_custom_field() method")
