"""Run a sync: load a batch, let the engine plan it, write the plan to both sides.

Every run holds its connection's lock, and every step is idempotent: a run that dies halfway
leaves outbox rows and cursors from which the next run finishes the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from syncapp.engine import (
    Conflict,
    ContactRecord,
    Exclusion,
    LinkState,
    LocalState,
    PairPlan,
    Plan,
    Policy,
    RemoteState,
    normalize_email,
    plan_batch,
)
from syncapp.engine.plan import rebase_on_concurrent_edit
from syncapp.engine.records import answered_ids
from syncapp.exceptions import (
    ConnectionInactiveError,
    PartialWriteError,
    ProviderAuthError,
    ProviderError,
    QuotaExhaustedError,
    SyncError,
    TransientProviderError,
)
from syncapp.models import (
    Contact,
    ContactLink,
    CrmConnection,
    ExcludedRecord,
    ListedRecord,
    OutboxEntry,
    SyncConflict,
    SyncRun,
)
from syncapp.providers import get_adapter
from syncapp.providers.base import WriteResult
from syncapp.services.connections import connection_lock, connection_status_set
from syncapp.services.contacts import ContactChange, contacts_apply_many
from syncapp.services.outbox import outbox_batch, outbox_follow_up, push_schedule_clear
from syncapp.services.suppressions import suppression_last_lift, suppression_reasons
from syncapp.services.task_names import SYNC_TASK

logger = logging.getLogger(__name__)


# What applying a pair may change on its link (the others are set when it is created).
LINK_FIELDS = ["remote_id", "base", "base_deleted", "status", "last_error", "remote_version", "last_synced_at"]
# CRM writes a full sync may hold back until they fill a batch (see ConnectionSync.reconcile).
HELD_OPS = frozenset({"update", "archive"})
# Seconds a held pair waits at most, so a sparse listing does not write what it read long ago.
HOLD_AT_MOST = 30
# Seconds before a slice that found its connection's lock taken tries again (a webhook's or a push's run).
SLICE_RETRY_DELAY = 5


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class SyncCounts:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    conflicts: int = 0
    errors: int = 0
    excluded: int = 0
    # CRM writes this run did not make (a transient error, or not tried after one): queued, no failure.
    pending: int = 0
    planned: list[PairPlan] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        """The counts a SyncRun stores."""
        names = ("created", "updated", "deleted", "unchanged", "conflicts", "errors", "excluded", "pending")
        return {name: getattr(self, name) for name in names}


@dataclass
class _Seen:
    """What a full sync's reads returned: every record id, and every email a live record holds."""

    ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    # What add() was given since the last save(): (record id, its emails while it lives).
    unsaved: list[tuple[str, list[str]]] = field(default_factory=list)

    def add(self, remotes: list[RemoteState]) -> None:
        for remote in remotes:
            emails = [] if remote.deleted else _emails(remote)
            self.ids.add(remote.remote_id)
            self.emails.update(emails)
            self.unsaved.append((remote.remote_id, emails))

    def save(self, connection: CrmConnection) -> None:
        """Keep what was added since the last save as read by ``connection``'s listing in progress."""
        ListedRecord.objects.bulk_create(
            [ListedRecord(connection=connection, remote_id=rid, emails=emails) for rid, emails in self.unsaved],
            batch_size=1000,
        )
        self.unsaved = []

    def load(self, connection: CrmConnection) -> None:
        """Add what the earlier slices of ``connection``'s listing in progress read."""
        for remote_id, emails in ListedRecord.objects.filter(connection=connection).values_list("remote_id", "emails"):
            self.ids.add(remote_id)
            self.emails.update(emails)


@dataclass(frozen=True)
class _Held:
    """A record read by a full sync whose pair waits for a full batch of CRM writes."""

    remote: RemoteState
    contact_id: int
    ids: frozenset[str]  # the record's id and the ids merged into it
    emails: frozenset[str]  # the record's, the contact's and the agreed email
    since: float  # time.monotonic() when it was held


def _emails(remote: RemoteState) -> list[str]:
    """Return the normalised emails a record holds: its primary one, and its secondary ones while it lives."""
    secondary = () if remote.deleted else tuple(map(normalize_email, remote.other_emails))
    return [email for email in (remote.record.email, *secondary) if email]


def _listed_email(email: str) -> str:
    """Return ``email`` cut to fit an ExcludedRecord: a CRM may hold a longer one than the app stores."""
    return email[: ExcludedRecord._meta.get_field("email").max_length]


def _status_of(pair: PairPlan) -> str:
    """Return the status of a link once ``pair`` is written: ``conflict`` while a conflict awaits a person."""
    awaiting_review = any(conflict.winner is None for conflict in pair.conflicts)
    return ContactLink.Status.CONFLICT if awaiting_review else ContactLink.Status.OK


def _link_holds(link: ContactLink, pair: PairPlan, *, remote_id: str | None = None) -> bool:
    """Return whether ``link`` already records the outcome of ``pair`` written successfully."""
    state = (remote_id or pair.remote_id, pair.base.as_dict(), pair.deleted, _status_of(pair), "")
    return (link.remote_id, link.base, link.base_deleted, link.status, link.last_error) == state


def _local_state(contact: Contact) -> LocalState:
    return LocalState(
        contact_id=contact.pk,
        record=contact.to_record(),
        deleted=contact.is_deleted,
        modified_at=contact.updated_at,
        field_modified_at={name: datetime.fromisoformat(when) for name, when in contact.field_modified_at.items()},
    )


def _link_state(link: ContactLink) -> LinkState:
    return LinkState(
        contact_id=link.contact_id,
        remote_id=link.remote_id,
        base=ContactRecord.from_dict(link.base),
        deleted=link.base_deleted,
        remote_version=link.remote_version,
    )


@dataclass(frozen=True)
class _Batch:
    """What ``reconcile`` loaded and wrote for a batch, which applying it in the app needs."""

    results: dict[int, WriteResult]  # each pair's CRM write, by id(pair)
    local_states: dict[int, LocalState]  # as planned, by contact id
    links: dict[int, ContactLink]  # by contact id
    link_states: dict[int, LinkState]


class _Requeues:
    """Pushes a batch leaves for a later run, unless the CRM refused the contact too often; one insert.

    Each refusal counts one more ``record_failures`` than the contact's highest; past
    MAX_RETRY_ATTEMPTS the error stays on the link instead (a Retry or the next full listing
    tries it again). ``attempts`` follows the count, so the push's backoff grows with it.
    """

    def __init__(self, connection: CrmConnection, contact_ids: list[int]):
        self.connection = connection
        rows = (
            OutboxEntry.objects.filter(connection=connection, contact_id__in=contact_ids)
            .order_by()
            .values("contact_id")
            .annotate(most=Max("record_failures"))
            .values_list("contact_id", "most")
        )
        self.failures = dict(rows) if contact_ids else {}
        self.entries: list[OutboxEntry] = []

    def requeue(self, contact_id: int, error: str) -> bool:
        """Leave a push of the contact for a later run; return whether queued."""
        failures = (self.failures.get(contact_id) or 0) + 1
        if failures > settings.MAX_RETRY_ATTEMPTS:
            return False
        self.failures[contact_id] = failures
        self.entries.append(
            OutboxEntry(
                connection=self.connection,
                contact_id=contact_id,
                attempts=failures,
                record_failures=failures,
                last_error=error,
            )
        )
        return True

    def save(self) -> None:
        OutboxEntry.objects.bulk_create(self.entries)


class _LinkWrites(_Requeues):
    """A batch's link, conflict, requeue and refusal writes, each kind in one query (see reconcile)."""

    def __init__(self, connection: CrmConnection, *, requeued: list[int], existing_ids: list[str]):
        super().__init__(connection, requeued)
        # Records the CRM named as already holding an email: which link holds each, if any.
        self.holders = dict(
            ContactLink.objects.filter(connection=connection, remote_id__in=existing_ids).values_list("remote_id", "pk")
            if existing_ids
            else ()
        )
        self.links: dict[int, ContactLink] = {}
        self.new_conflicts: list[tuple[ContactLink, Conflict]] = []
        self.refused: list[Exclusion] = []

    def linked_elsewhere(self, remote_id: str, link: ContactLink) -> bool:
        return self.holders.get(remote_id, link.pk) != link.pk

    def link(self, link: ContactLink) -> None:
        self.links[id(link)] = link

    def conflicts(self, link: ContactLink, conflicts: list[Conflict]) -> None:
        self.new_conflicts += [(link, conflict) for conflict in conflicts]

    def save(self) -> None:
        links = list(self.links.values())
        ContactLink.objects.bulk_update([link for link in links if link.pk], LINK_FIELDS)
        ContactLink.objects.bulk_create([link for link in links if not link.pk])
        # An open conflict seen again with the same two values is not logged twice.
        seen = set(
            SyncConflict.objects.filter(
                link__in={link.pk for link, conflict in self.new_conflicts if conflict.winner is None},
                resolution=SyncConflict.Resolution.OPEN,
            ).values_list("link_id", "field", "local_value", "remote_value")
            if any(conflict.winner is None for _, conflict in self.new_conflicts)
            else ()
        )
        SyncConflict.objects.bulk_create(
            [
                SyncConflict(
                    link=link,
                    field=conflict.field,
                    local_value=conflict.local_value,
                    remote_value=conflict.remote_value,
                    local_modified_at=conflict.local_modified_at,
                    remote_modified_at=conflict.remote_modified_at,
                    strategy=conflict.strategy,
                    winner=conflict.winner or "",
                    resolution=SyncConflict.Resolution.OPEN
                    if conflict.winner is None
                    else SyncConflict.Resolution.AUTOMATIC,
                )
                for link, conflict in self.new_conflicts
                if conflict.winner is not None
                or (link.pk, conflict.field, conflict.local_value, conflict.remote_value) not in seen
            ]
        )
        super().save()
        _exclusions_upsert(self.connection, self.refused)


def _exclusions_upsert(connection: CrmConnection, exclusions: list[Exclusion]) -> None:
    """Write ``exclusions`` with one upsert: a record listed already gets the new code and reason."""
    ExcludedRecord.objects.bulk_create(
        [
            ExcludedRecord(
                connection=connection,
                side=exclusion.side,
                record_id=exclusion.record_id,
                email=_listed_email(exclusion.email),
                code=exclusion.code,
                reason=exclusion.reason,
            )
            for exclusion in exclusions
        ],
        update_conflicts=True,
        unique_fields=["connection", "side", "record_id"],
        update_fields=["email", "code", "reason", "seen_at"],
    )


class ConnectionSync:
    """One run against one connection. Created and driven by ``connection_sync``."""

    def __init__(
        self,
        *,
        connection: CrmConnection,
        adapter,
        lock=None,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ):
        self.connection = connection
        self.adapter = adapter
        self.lock = lock
        self.dry_run = dry_run
        # Called with the number of pairs each batch planned and wrote (see reconcile).
        self.progress = progress
        self.counts = SyncCounts()
        self.policy = Policy(
            strategy=connection.conflict_strategy,
            field_owners=connection.field_priorities or {},
            crm_deletes_contact=connection.on_crm_delete == CrmConnection.OnCrmDelete.DELETE_CONTACT,
            ignored_fields=frozenset(adapter.unsupported_fields()),
        )
        self.batch_size = min(settings.SYNC_BATCH_SIZE, adapter.max_batch_size)
        # Outbox rows older than the run are satisfied once their contact is reconciled in it.
        self.outbox_snapshot = OutboxEntry.objects.filter(connection=connection).aggregate(last=Max("pk"))["last"] or 0
        self.reconciled: set[int] = set()
        # A full sync's pairs waiting for a full batch of CRM writes, by remote id (see reconcile).
        self.held: dict[str, _Held] = {}
        # Records named by a webhook that the CRM refused to read, with its reason (see hinted).
        self.refused: dict[str, str] = {}
        # Why the latest CRM write counted in counts.pending was not made.
        self.pending_reason = ""
        # Set when the run stopped after its share of pages (see full and incremental): a later run goes on.
        self.continues = False

    # Entry points ---------------------------------------------------------------

    def incremental(self, *, slice_pages: int | None = None) -> None:
        """Read what changed since the saved cursor, saving the cursor after every page, then what was deleted.

        With ``slice_pages``, stop after that many pages whose cursor was saved (``self.continues``):
        the next incremental run reads on from there, and scans for deletions once it has caught up.
        """
        first = not self.connection.deletion_cursor and self.adapter.deletions_cursor(
            changes_cursor=self.connection.sync_cursor or None
        )
        if first:  # fixed before the search moves its cursor, so a scan that fails still starts from here
            self._save_cursor("deletion_cursor", first)
        pages = 0
        for page in self.adapter.list_changed(cursor=self.connection.sync_cursor or None):
            self.reconcile(remotes=page.records)
            if page.cursor:
                self._save_cursor("sync_cursor", page.cursor)
                pages += 1
                if slice_pages and pages >= slice_pages and not self.dry_run:
                    # Possibly the last page: the next run then reads an empty window, one call.
                    self.continues = True
                    return
        if self.connection.deletion_cursor:
            self._deletions()

    def _deletions(self) -> None:
        """Apply the deletions since the deletion cursor; the cursor moves only after a complete scan."""
        reached = None
        for page in self.adapter.list_deleted(cursor=self.connection.deletion_cursor):
            if page.records:
                self.reconcile(remotes=page.records)
            reached = page.cursor or reached
        if reached and reached != self.connection.deletion_cursor:
            self._save_cursor("deletion_cursor", reached)

    def _save_cursor(self, field: str, value: str) -> None:
        setattr(self.connection, field, value)
        if not self.dry_run:
            self.connection.save(update_fields=[field])

    def full(self, *, slice_pages: int | None = None) -> None:
        """List every CRM record, then create in the CRM the app contacts nothing matched.

        Only a complete listing may conclude that a record is gone. The creates need no lookup
        by email: the listing saw every record that existed before it began, and one catch-up
        read of what changed since then (where the CRM would accept a duplicate) sees the records
        created or re-addressed while it ran.

        With ``slice_pages``, read at most that many pages, then checkpoint (``self.continues``):
        the connection keeps the page to resume from and the listing's first cursor, and
        ListedRecord what was read, so the run that reads the last page decides on deletions and
        creates from the whole listing. A run cut short resumes from the last checkpoint.
        """
        seen = _Seen()
        resume, cursor = self.connection.listing_page or None, self.connection.listing_cursor or None
        if resume is None and not self.dry_run:
            ListedRecord.objects.filter(connection=self.connection).delete()  # left by an abandoned listing
        for pages, page in enumerate(self.adapter.list_all(resume=resume), start=1):
            self.reconcile(remotes=page.records, hold=True)
            seen.add(page.records)
            cursor = cursor or page.cursor
            if page.resume and slice_pages and pages >= slice_pages and not self.dry_run:
                self._listing_checkpoint(seen, resume=page.resume, cursor=cursor)
                return
        if resume:
            seen.load(self.connection)
        caught_up = None
        if not self.adapter.refuses_duplicate_emails and self._unmatched(seen, with_email=True):
            for page in self.adapter.list_changed(cursor=cursor):
                self.reconcile(remotes=page.records, hold=True)
                seen.add(page.records)
                caught_up = page.cursor or caught_up
        self._release_held()
        linked = self.connection.links.filter(remote_id__isnull=False)
        missing = sorted(set(linked.filter(base_deleted=False).values_list("remote_id", flat=True)) - seen.ids)
        for chunk in _chunks(missing, self.batch_size):
            # Read once more before calling them gone: a token that cannot see a record, or a listing
            # that raced an edit, must not delete app contacts.
            still_there = self.adapter.read_many(chunk)
            self.reconcile(remotes=still_there, absent=frozenset(set(chunk) - answered_ids(still_there)))
            seen.add(still_there)
        # An unlinked contact whose email a record read above holds was matched or excluded there.
        for chunk in _chunks(self._unmatched(seen), self.batch_size):
            self.reconcile(remotes=[], contact_ids=set(chunk))
        if not self.dry_run:
            self.connection.last_full_sync_at = timezone.now()
            self.connection.sync_cursor = caught_up or cursor or self.connection.sync_cursor
            self.connection.listing_page = self.connection.listing_cursor = ""
            with transaction.atomic():
                self.connection.save(
                    update_fields=["last_full_sync_at", "sync_cursor", "listing_page", "listing_cursor"]
                )
                ListedRecord.objects.filter(connection=self.connection).delete()

    def _listing_checkpoint(self, seen: _Seen, *, resume: str, cursor: str | None) -> None:
        """End this slice of a full listing: write what it holds back, save where the next slice starts."""
        self._release_held()
        self.connection.listing_page, self.connection.listing_cursor = resume, cursor or ""
        with transaction.atomic():
            seen.save(self.connection)
            self.connection.save(update_fields=["listing_page", "listing_cursor"])
        self.continues = True

    def _unmatched(self, seen: _Seen, *, with_email: bool = False) -> list[int]:
        """Return the live unlinked contacts whose email no record read by this run holds, emailless last."""
        linked = self.connection.links.filter(remote_id__isnull=False).values("contact_id")
        unlinked = (
            Contact.objects.filter(tenant_id=self.connection.tenant_id, deleted_at__isnull=True)
            .exclude(pk__in=linked)
            .values_list("pk", "email")
        )
        if with_email:
            unlinked = unlinked.exclude(email="")
        found = sorted((not email, pk) for pk, email in unlinked if normalize_email(email) not in seen.emails)
        return [pk for _, pk in found]

    def hinted(self, remote_ids: list[str]) -> None:
        """Re-read the records a webhook named; a notification is a hint, the CRM's state is the truth.

        A batch the CRM refuses (a 4xx, such as an id it cannot parse) is split until the refused
        ids stand alone: they land in ``self.refused`` with the CRM's reason, the others are read.
        """
        for chunk in _chunks(sorted(set(remote_ids)), self.batch_size):
            self._read_hinted(chunk)

    def _read_hinted(self, remote_ids: list[str]) -> None:
        try:
            remotes = self.adapter.read_many(remote_ids)
        except ProviderError as exc:
            if isinstance(exc, (TransientProviderError, ProviderAuthError, QuotaExhaustedError)):
                raise  # the connection, not a record, is the problem: retry the whole run later
            if len(remote_ids) == 1:
                self.refused[remote_ids[0]] = str(exc)
                self.counts.errors += 1
                return
            half = len(remote_ids) // 2
            self._read_hinted(remote_ids[:half])
            self._read_hinted(remote_ids[half:])
            return
        self.reconcile(remotes=remotes, absent=frozenset(set(remote_ids) - answered_ids(remotes)))

    def revisit_exclusions(self) -> None:
        """Read again the CRM records left out as duplicates whose email no live contact holds any more.

        Deleting or re-addressing the synced record frees its email; the duplicate then syncs
        like any new record instead of waiting for the next full listing. Likewise for records
        left out as suppressed before a suppression was lifted.
        """
        excluded = dict(
            ExcludedRecord.objects.filter(
                connection=self.connection,
                side=ExcludedRecord.Side.CRM,
                code__in=[ExcludedRecord.Code.DUPLICATE, ExcludedRecord.Code.EMAIL_LINKED],
            ).values_list("record_id", "email")
        )
        taken = set(
            Contact.objects.filter(
                tenant_id=self.connection.tenant_id, deleted_at__isnull=True, email__in=set(excluded.values())
            ).values_list("email", flat=True)
        )
        freed = [record_id for record_id, email in excluded.items() if email not in taken]
        # A lifted suppression frees records it kept out; which ones is unknown (their emails are not
        # kept), so every record excluded as suppressed before the lift is read again.
        lifted_at = suppression_last_lift(tenant_id=self.connection.tenant_id)
        if lifted_at is not None:
            freed += ExcludedRecord.objects.filter(
                connection=self.connection,
                side=ExcludedRecord.Side.CRM,
                code=ExcludedRecord.Code.SUPPRESSED,
                seen_at__lt=lifted_at,
            ).values_list("record_id", flat=True)
        if freed:
            self.hinted(freed)

    def push(self) -> None:
        """Drain the outbox: reconcile each changed contact against a fresh read of its CRM record."""
        if not self.dry_run:
            push_schedule_clear(connection_id=self.connection.pk)
            for chunk in _chunks(sorted(self.reconciled), 500):
                OutboxEntry.objects.filter(
                    connection=self.connection, pk__lte=self.outbox_snapshot, contact_id__in=chunk
                ).delete()
        pending = OutboxEntry.objects.filter(connection=self.connection)
        # Rows written while this push runs (including requeued ones) wait for the next push.
        last_id = pending.aggregate(last=Max("pk"))["last"] or 0
        after_id = 0
        while batch := list(
            pending.filter(pk__gt=after_id, pk__lte=last_id)
            .order_by("pk")
            .values_list("pk", "contact_id")[: self.batch_size]
        ):
            after_id = batch[-1][0]
            entry_ids = [pk for pk, _ in batch]
            # On a dry run nothing left the outbox above: leave out the rows it would have deleted.
            contact_ids = {
                contact_id
                for pk, contact_id in batch
                if not (self.dry_run and pk <= self.outbox_snapshot and contact_id in self.reconciled)
            }
            if not contact_ids:
                continue
            try:
                self._push_contacts(contact_ids)
            except Exception as exc:
                if not self.dry_run:
                    OutboxEntry.objects.filter(pk__in=entry_ids).update(attempts=F("attempts") + 1, last_error=str(exc))
                raise
            if not self.dry_run:
                OutboxEntry.objects.filter(pk__in=entry_ids).delete()

    def _push_contacts(self, contact_ids: set[int]) -> None:
        links = ContactLink.objects.filter(connection=self.connection, contact_id__in=contact_ids)
        linked_ids = [link.remote_id for link in links if link.remote_id]
        remotes = self.adapter.read_many(linked_ids) if linked_ids else []
        returned = answered_ids(remotes)
        linked_contacts = {link.contact_id for link in links if link.remote_id}
        emails = list(
            Contact.objects.filter(pk__in=contact_ids - linked_contacts, deleted_at__isnull=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
        if emails:
            remotes += self.adapter.find_by_emails(emails)
        self.reconcile(remotes=remotes, contact_ids=contact_ids, absent=frozenset(set(linked_ids) - returned))

    # The batch: load, plan, apply ------------------------------------------------

    def reconcile(
        self,
        *,
        remotes: list[RemoteState],
        contact_ids: set[int] = frozenset(),
        absent: frozenset = frozenset(),
        hold: bool = False,
    ) -> Plan:
        """Plan one batch and write it to both sides.

        With ``hold`` (a full sync's reads), a pair whose CRM write is an update or an archive waits
        in ``self.held``, unapplied, until a full batch of them is ready: a listing then spends one
        write call per batch of such pairs, not one per page that has any. A later batch touching a
        held record, its contact or their emails is planned together with it.
        """
        remotes = list({remote.remote_id: remote for remote in remotes}.values())
        links, contacts_by_id = self._load(remotes, contact_ids, absent)
        while taken := self._take_held(remotes, contacts_by_id, absent):
            remotes += taken
            links, contacts_by_id = self._load(remotes, contact_ids, absent)
        local_states = {pk: _local_state(contact) for pk, contact in contacts_by_id.items()}
        link_states = {link.contact_id: _link_state(link) for link in links}
        plan = plan_batch(
            locals=list(local_states.values()),
            remotes=remotes,
            links=list(link_states.values()),
            policy=self.policy,
            absent_remote_ids=frozenset(absent),
            suppressed=suppression_reasons(
                tenant_id=self.connection.tenant_id,
                emails=[remote.record.email for remote in remotes]
                + [state.record.email for state in local_states.values()],
            ),
        )
        self._record_exclusions(plan.excluded)
        self._renew_lock()
        if self.dry_run:
            self.counts.planned.extend(pair for pair in plan.pairs if not pair.is_noop)
            # Nothing leaves the outbox on a dry run: push() skips what was planned here already.
            self.reconciled.update(pair.contact_id for pair in plan.pairs if pair.contact_id)
            for pair in plan.pairs:
                self._count_pair(pair)
            self._report_progress(len(plan.pairs))
            return plan
        pairs = plan.pairs
        if hold and self.adapter.writes_in_batches:
            pairs = self._hold(pairs, remotes=remotes, local_states=local_states)
        results, stopped = self._write_remote(pairs)
        if stopped is not None:
            # The writes stopped partway: apply what the CRM took, then fail with the error. The
            # other pairs stay unapplied, and their contacts wait in the outbox for a later run.
            self._queue_unwritten([pair for pair in pairs if pair.remote_op and id(pair) not in results], stopped)
            if not results:
                raise stopped
            pairs = [pair for pair in pairs if id(pair) in results]
        links_by_contact = {link.contact_id: link for link in links}
        # Nothing to write on either side (an echo, say): no need to lock and re-read the contact.
        settled = [pair for pair in pairs if self._settled(pair, links_by_contact)]
        for pair in settled:
            self._count_pair(pair)
        settled_ids = {id(pair) for pair in settled}
        todo = [pair for pair in pairs if id(pair) not in settled_ids]
        batch = _Batch(results=results, local_states=local_states, links=links_by_contact, link_states=link_states)
        # One transaction per batch, not per pair: a commit (an fsync) per contact would bound a large
        # sync by the disk. The contacts the batch writes are locked together at its start.
        with outbox_batch(), transaction.atomic():
            synced, failure = self._apply_batch(todo, batch)
        synced += settled
        # Held pairs are not counted here: they are when their batch is written.
        self._report_progress(len(pairs))
        self.reconciled.update(pair.contact_id for pair in synced if pair.contact_id)
        # Records that sync now are no longer excluded.
        ExcludedRecord.objects.filter(connection=self.connection).filter(
            Q(side=ExcludedRecord.Side.CRM, record_id__in=[p.remote_id for p in synced if p.remote_id])
            | Q(side=ExcludedRecord.Side.APP, record_id__in=[str(p.contact_id) for p in synced if p.contact_id])
        ).delete()
        # Nor are records that are gone.
        gone_remote = set(absent) | {remote.remote_id for remote in remotes if remote.deleted}
        gone_local = [str(pk) for pk, state in local_states.items() if state.deleted]
        ExcludedRecord.objects.filter(connection=self.connection).filter(
            Q(side=ExcludedRecord.Side.CRM, record_id__in=gone_remote)
            | Q(side=ExcludedRecord.Side.APP, record_id__in=gone_local)
        ).delete()
        if stopped is not None:
            raise stopped
        if failure is not None:
            raise failure
        if hold:
            self._release_held(only_full=True)
        return plan

    def _load(
        self, remotes: list[RemoteState], contact_ids: set[int], absent: frozenset
    ) -> tuple[list[ContactLink], dict[int, Contact]]:
        """Load the links and contacts a batch needs (see plan_batch)."""
        remote_ids = answered_ids(remotes) | set(absent)
        links = list(
            ContactLink.objects.filter(connection=self.connection).filter(
                Q(remote_id__in=remote_ids) | Q(contact_id__in=contact_ids)
            )
        )
        # A contact whose email a record holds as a secondary address is loaded too, so it is listed
        # as excluded rather than created again.
        emails = {email for remote in remotes for email in _emails(remote)}
        contacts = Contact.objects.filter(tenant_id=self.connection.tenant_id).filter(
            Q(pk__in={link.contact_id for link in links} | set(contact_ids))
            | Q(email__in=emails, deleted_at__isnull=True)
        )
        contacts_by_id = {contact.pk: contact for contact in contacts}
        # Contacts found by email may be linked already: their links decide, not the email.
        extra = set(contacts_by_id) - {link.contact_id for link in links}
        links += list(ContactLink.objects.filter(connection=self.connection, contact_id__in=extra))
        return links, contacts_by_id

    def _hold(
        self, pairs: list[PairPlan], *, remotes: list[RemoteState], local_states: dict[int, LocalState]
    ) -> list[PairPlan]:
        """Put the pairs that wait for a full write batch in ``self.held``; return the others."""
        by_id = {remote.remote_id: remote for remote in remotes}
        now, rest = time.monotonic(), []
        for pair in pairs:
            remote = by_id.get(pair.remote_id)
            if pair.remote_op not in HELD_OPS or remote is None or pair.contact_id is None:
                rest.append(pair)
                continue
            emails = set(_emails(remote)) | {pair.base.email if pair.base else ""}
            emails.add(local_states[pair.contact_id].record.email)
            self.held[remote.remote_id] = _Held(
                remote=remote,
                contact_id=pair.contact_id,
                ids=remote.ids,
                emails=frozenset(emails - {""}),
                since=now,
            )
        return rest

    def _take_held(
        self, remotes: list[RemoteState], contacts_by_id: dict[int, Contact], absent: frozenset
    ) -> list[RemoteState]:
        """Take out of ``self.held`` what this batch touches; return the held records it lacks."""
        if not self.held:
            return []
        ids = answered_ids(remotes) | set(absent)
        emails = {email for remote in remotes for email in _emails(remote)}
        emails.update(normalize_email(contact.email) for contact in contacts_by_id.values())
        touched = [
            remote_id
            for remote_id, held in self.held.items()
            if held.ids & ids or held.contact_id in contacts_by_id or held.emails & emails
        ]
        # A record the batch read again is planned with its newer state.
        return [held.remote for held in map(self.held.pop, touched) if held.remote.remote_id not in ids]

    def _release_held(self, *, only_full: bool = False) -> None:
        """Write the held pairs, a batch at a time; with ``only_full``, only full batches (or stale ones)."""
        while self.held and (
            not only_full
            or len(self.held) >= self.batch_size
            or time.monotonic() - next(iter(self.held.values())).since > HOLD_AT_MOST
        ):
            chunk = [self.held.pop(remote_id).remote.remote_id for remote_id in list(self.held)[: self.batch_size]]
            # Read again before writing: a person may have edited the record in the CRM while it waited,
            # and the write must be planned against that edit (one read per batch of held writes).
            self.hinted(chunk)

    def _queue_unwritten(self, pairs: list[PairPlan], error: Exception) -> None:
        """Keep in the outbox the contacts whose CRM writes this run did not make; none is a failure.

        A create among them may have been made before the error (a dropped connection): the next
        push reads the contact's CRM record by email before it plans another create.
        """
        if not pairs:
            return
        self.counts.pending += len(pairs)
        self.pending_reason = str(error)
        contact_ids = {pair.contact_id for pair in pairs if pair.contact_id}
        queued = OutboxEntry.objects.filter(connection=self.connection, contact_id__in=contact_ids)
        waiting = contact_ids - set(queued.values_list("contact_id", flat=True))
        OutboxEntry.objects.bulk_create(
            [
                OutboxEntry(connection=self.connection, contact_id=pk, attempts=1, last_error=str(error))
                for pk in sorted(waiting)
            ]
        )

    def _count_pair(self, pair: PairPlan, *, crm_written: bool = True) -> None:
        """Count what the pair changed; a CRM write that failed is counted as an error or as pending instead."""
        self.counts.conflicts += len(pair.conflicts)
        ops = {pair.local_op, pair.remote_op if crm_written else ""} - {""}
        if not ops and not crm_written:
            return
        if ops & {"create"}:
            self.counts.created += 1
        elif ops & {"delete", "archive"}:
            self.counts.deleted += 1
        elif ops:
            self.counts.updated += 1
        else:
            self.counts.unchanged += 1

    def _record_exclusions(self, exclusions: list[Exclusion]) -> None:
        self.counts.excluded += len(exclusions)
        if self.dry_run or not exclusions:
            return
        _exclusions_upsert(self.connection, exclusions)
        # An app contact left out because its email is linked elsewhere may fit once that link changes.
        linked = [
            exclusion
            for exclusion in exclusions
            if exclusion.side == ExcludedRecord.Side.APP and exclusion.code == Exclusion.EMAIL_LINKED
        ]
        if linked:
            requeues = _Requeues(self.connection, [int(exclusion.record_id) for exclusion in linked])
            for exclusion in linked:
                requeues.requeue(int(exclusion.record_id), exclusion.reason)
            requeues.save()

    def _write_remote(self, pairs: list[PairPlan]) -> tuple[dict[int, WriteResult], Exception | None]:
        """Send the CRM writes in batches; return each pair's result by ``id(pair)``, and what stopped them.

        The second value is None when every write was answered. Otherwise it is the error that
        stopped the writes (a spent daily quota, a 5xx after the client's retries), and only the
        pairs answered before it have a result: the others were not sent, or their outcome is unknown.
        """
        results: dict[int, WriteResult] = {}
        by_op: dict[str, list[PairPlan]] = {}
        for pair in pairs:
            if pair.remote_op:
                by_op.setdefault(pair.remote_op, []).append(pair)
        for op, batch in by_op.items():
            # A restore is one call each, so one that fails leaves the earlier ones answered.
            for chunk in _chunks(batch, 1 if op == "restore" else self.batch_size):
                try:
                    outcomes = self._write_chunk(op, chunk)
                except PartialWriteError as exc:
                    results.update(zip(map(id, chunk), exc.results, strict=False))  # the first items only
                    return results, exc.cause
                except Exception as exc:
                    return results, exc
                results.update(zip(map(id, chunk), outcomes, strict=True))
        return results, None

    def _write_chunk(self, op: str, chunk: list[PairPlan]) -> list[WriteResult]:
        if op == "create":
            return self.adapter.create_many([ContactRecord.from_dict(p.remote_values) for p in chunk])
        if op == "update":
            return self.adapter.update_many([(p.remote_id, p.remote_values) for p in chunk])
        if op == "archive":
            return self.adapter.archive_many([p.remote_id for p in chunk])
        return [self.adapter.restore(p.remote_id, ContactRecord.from_dict(p.remote_values)) for p in chunk]

    def _apply_batch(self, pairs: list[PairPlan], batch: _Batch) -> tuple[list[PairPlan], Exception | None]:
        """Apply ``pairs`` in the app; return those applied, and the error of a pair that failed, if one did.

        The batch is written in one savepoint with a constant number of queries. If the database
        refuses it (a value it cannot store, an email a concurrent write took) or anything else
        fails, the savepoint is undone and the pairs are applied again one at a time, each in a
        savepoint of its own: an error on one pair must not undo the others, whose CRM writes are
        done. The run still fails with that pair's error, once the batch is committed.
        """
        contact_ids = [pair.contact_id for pair in pairs if pair.contact_id]
        locked = Contact.objects.select_for_update().in_bulk(contact_ids)
        counts, pending_reason = replace(self.counts), self.pending_reason
        try:
            with transaction.atomic():
                return self._apply(pairs, batch, locked), None
        except Exception:
            logger.info(
                "connection %s: a batch failed to apply; applying it pair by pair", self.connection.pk, exc_info=True
            )
        self.counts, self.pending_reason = counts, pending_reason
        # The undone batch changed these instances: read them again.
        locked = Contact.objects.select_for_update().in_bulk(contact_ids)
        batch = replace(batch, links=self._reloaded(batch.links))
        synced, failure = [], None
        for pair in pairs:
            try:
                with transaction.atomic():
                    synced += self._apply([pair], batch, locked)
            except Exception as exc:
                logger.exception("connection %s: applying contact %s failed", self.connection.pk, pair.contact_id)
                failure = failure or exc
        return synced, failure

    @staticmethod
    def _reloaded(links: dict[int, ContactLink]) -> dict[int, ContactLink]:
        fresh = ContactLink.objects.in_bulk([link.pk for link in links.values()])
        return {link.contact_id: link for link in fresh.values()}

    def _apply(self, pairs: list[PairPlan], batch: _Batch, locked: dict[int, Contact]) -> list[PairPlan]:
        """Write the pairs' app side, links, conflicts and requeues; return the pairs applied.

        A pair whose values the app refused is not applied: it becomes an error on its link, or an
        excluded record. ``locked`` holds the batch's contacts, locked and read again.
        """
        rebased = [
            # A person may have edited the contact while the CRM was written.
            rebase_on_concurrent_edit(
                pair=pair,
                planned=batch.local_states.get(pair.contact_id),
                current=_local_state(locked[pair.contact_id]),
                link=batch.link_states.get(pair.contact_id),
            )
            if pair.contact_id in locked
            else pair
            for pair in pairs
        ]
        changing = [pair for pair in rebased if pair.local_op]
        changed = contacts_apply_many(
            tenant_id=self.connection.tenant_id,
            changes=[
                ContactChange(
                    pair.local_op,
                    locked.get(pair.contact_id),
                    pair.local_values,
                    None if pair.local_op == "delete" else pair.remote_modified_at,
                )
                for pair in changing
            ],
            source_connection_id=self.connection.pk,
        )
        outcomes = dict(zip(map(id, changing), changed, strict=True))
        failed = {pair.contact_id: batch.results[id(pair)] for pair in pairs if id(pair) in batch.results}
        failed = {contact_id: result for contact_id, result in failed.items() if not result.ok}
        writes = _LinkWrites(
            self.connection,
            requeued=list(failed),
            existing_ids=[result.existing_remote_id for result in failed.values() if result.existing_remote_id],
        )
        applied = []
        for original, pair in zip(pairs, rebased, strict=True):
            contact = outcomes.get(id(pair), locked.get(pair.contact_id))
            link = batch.links.get(pair.contact_id)
            if isinstance(contact, Exception):
                # A value the app or its database cannot store is this record's problem, not the run's.
                self._record_local_refusal(pair, link, contact, writes)
                continue
            result = batch.results.get(id(original))
            # Counted once applied: a refused record is an error, not also a creation or an update.
            self._count_pair(pair, crm_written=result is None or result.ok)
            link = link or ContactLink(connection=self.connection, contact=contact)
            if self._update_link(link, pair, result, writes):
                writes.link(link)
            writes.conflicts(link, pair.conflicts)
            applied.append(original)
        writes.save()
        return applied

    @staticmethod
    def _settled(pair: PairPlan, links_by_contact: dict[int, ContactLink]) -> bool:
        """Whether the pair changes nothing and its link already records that outcome."""
        link = links_by_contact.get(pair.contact_id)
        return bool(pair.is_noop and not pair.conflicts and link and link.pk and _link_holds(link, pair))

    def _record_local_refusal(
        self, pair: PairPlan, link: ContactLink | None, exc: Exception, writes: _LinkWrites
    ) -> None:
        self.counts.errors += 1
        if link:
            link.status, link.last_error = ContactLink.Status.ERROR, f"Could not update the app contact: {exc}"
            writes.link(link)
        else:
            self.counts.excluded += 1
            writes.refused.append(
                Exclusion(
                    side=ExcludedRecord.Side.CRM,
                    record_id=pair.remote_id,
                    email=pair.local_values.get("email", ""),
                    code=ExcludedRecord.Code.REFUSED,
                    reason=str(exc),
                )
            )

    def _update_link(self, link: ContactLink, pair: PairPlan, result: WriteResult | None, writes: _LinkWrites) -> bool:
        """Set the link to what the pair's writes left; return whether it changed."""
        if result is None or result.ok:
            remote_id = (result.remote_id if result else None) or pair.remote_id
            version = (result.version if result else "") or pair.remote_version
            if pair.is_noop and link.pk and _link_holds(link, pair, remote_id=remote_id):
                return False  # nothing changed: skip the write that would only bump last_synced_at
            link.remote_id, link.base, link.base_deleted = remote_id, pair.base.as_dict(), pair.deleted
            link.status, link.last_error = _status_of(pair), ""
            link.remote_version = version
        elif result.existing_remote_id and not writes.linked_elsewhere(result.existing_remote_id, link):
            # The CRM already holds this email: link to that record; the next push merges both.
            link.remote_id, link.base, link.base_deleted = result.existing_remote_id, {}, False
            link.status, link.last_error = ContactLink.Status.PENDING, result.error
            writes.requeue(link.contact_id, result.error)
        else:
            link.remote_id = pair.remote_id
            link.base = pair.base_if_remote_fails.as_dict() if pair.base_if_remote_fails else {}
            link.base_deleted = pair.deleted_if_remote_fails
            if result.retryable and writes.requeue(link.contact_id, result.error):
                # The CRM refused this record for now: it waits for a later run, backing off on its own count.
                link.status, link.last_error = ContactLink.Status.PENDING, f"Not written yet: {result.error}"
                self.counts.pending += 1
                self.pending_reason = result.error
            else:
                self.counts.errors += 1
                link.status, link.last_error = ContactLink.Status.ERROR, result.error
                if result.retryable:
                    link.last_error = f"{result.error} (refused {settings.MAX_RETRY_ATTEMPTS + 1} times in a row)"
                if result.existing_remote_id:
                    link.last_error = (
                        f"{result.error} That CRM record is linked to another contact; change one of the two emails."
                    )
        if _status_of(pair) == ContactLink.Status.CONFLICT:
            link.status = ContactLink.Status.CONFLICT  # awaiting review outranks a failed write
        link.last_synced_at = timezone.now()
        return True

    def _renew_lock(self) -> None:
        if self.lock:
            self.lock.renew()

    def _report_progress(self, pairs: int) -> None:
        if self.progress is not None and pairs:
            self.progress(pairs)


def connection_sync(
    *,
    connection: CrmConnection,
    trigger: str | None = None,
    full: bool = False,
    remote_ids: list[str] | None = None,
    dry_run: bool = False,
    adapter=None,
    progress: Callable[[int], None] | None = None,
    slice_pages: int | None = None,
) -> SyncRun:
    """Run one sync of ``connection`` and return its SyncRun.

    Reads the CRM (everything with ``full``, only ``remote_ids`` when a webhook named them, else
    what changed since the cursor; nothing for a push), then drains the outbox. Raises
    SyncAlreadyRunningError when another sync holds the connection, ConnectionInactiveError when it
    is paused or disconnected. The returned run carries ``plan``: the pair plans with writes
    (filled in on a dry run), and ``refused_remote_ids``: the ``remote_ids`` the CRM refused to
    read (a 4xx), with its reason; the others were read; and ``writes_pending_only``: the run read
    and applied everything it was asked to, and failed only because CRM writes wait in the outbox
    for a later run. ``progress``, when given, is called with
    the number of app contact and CRM record pairs each batch has just reconciled; how many there
    will be is not known beforehand.

    With ``slice_pages`` (the tasks), a listing or a long read of changes stops after that many
    pages and the run queues its continuation on the bulk cluster (``run.continues``); a full
    listing in progress is resumed from its checkpoint by the next run with ``full``. Each slice
    is a SyncRun of its own, counting what that slice did.
    """
    if connection.status not in CrmConnection.SYNCABLE_STATUSES:
        raise ConnectionInactiveError(f"Connection {connection.pk} is {connection.get_status_display().lower()}.")
    if connection.rate_limited_until and connection.rate_limited_until > timezone.now():
        until = f"{connection.rate_limited_until:%Y-%m-%d %H:%M} UTC"
        raise ConnectionInactiveError(f"Connection {connection.pk} waits for its CRM's daily limit until {until}.")
    if trigger is None:
        trigger = (
            SyncRun.Trigger.WEBHOOK
            if remote_ids is not None
            else SyncRun.Trigger.FULL
            if full
            else SyncRun.Trigger.INCREMENTAL
        )
    adapter = adapter or get_adapter(connection)
    retry_after = None
    with connection_lock(connection) as lock:
        connection.refresh_from_db()
        # Holding the lock, any run still marked running was cut short by a killed worker.
        SyncRun.objects.filter(connection=connection, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED,
            error="The worker running this sync stopped before it finished; this run resumed its work.",
            finished_at=timezone.now(),
        )
        run = SyncRun.objects.create(connection=connection, trigger=trigger)
        run.writes_pending_only = False
        sync = None

        def report(pairs: int) -> None:
            # The counts so far, for the status page to show while the run goes on.
            SyncRun.objects.filter(pk=run.pk).update(**sync.counts.totals())
            if progress is not None:
                progress(pairs)

        try:
            # Built inside the try: asking the CRM which fields it has can fail like any other call.
            sync = ConnectionSync(connection=connection, adapter=adapter, lock=lock, dry_run=dry_run, progress=report)
            run.skipped_fields = ", ".join(sorted(sync.policy.ignored_fields))
            if remote_ids is not None:
                sync.hinted(remote_ids)
            elif full:
                sync.full(slice_pages=slice_pages)
            elif trigger != SyncRun.Trigger.PUSH:
                sync.incremental(slice_pages=slice_pages)
            sync.push()
            if not dry_run:
                sync.revisit_exclusions()
            run.status = SyncRun.Status.SUCCEEDED
            run.writes_pending_only = bool(sync.counts.pending)
            if sync.counts.pending:
                # Not a plain success: some CRM writes wait for the next run (after a backoff).
                run.status = SyncRun.Status.FAILED
                run.error = (
                    f"{sync.counts.pending} records not written to the CRM yet; the next run retries them. "
                    f"Last reason: {sync.pending_reason}"
                )
            if not dry_run:
                connection_status_set(connection=connection, status=CrmConnection.Status.ACTIVE)
        except SyncError as exc:
            logger.warning("sync run %s of connection %s failed: %s", run.pk, connection.pk, exc)
            run.status, run.error = SyncRun.Status.FAILED, str(exc)
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(exc, QuotaExhaustedError):
                retry_after = (exc.until - timezone.now()).total_seconds()
                connection_status_set(
                    connection=connection, status=CrmConnection.Status.RATE_LIMITED, message=str(exc), until=exc.until
                )
            elif isinstance(exc, ProviderAuthError):
                connection_status_set(connection=connection, status=CrmConnection.Status.ERROR, message=str(exc))
        except Exception as exc:
            # A bug must not leave the run "running" or the outbox without a follow-up.
            logger.exception("sync run %s of connection %s crashed", run.pk, connection.pk)
            run.status, run.error = SyncRun.Status.FAILED, f"Internal error ({type(exc).__name__}): {exc}"
        finally:
            for name, count in (sync.counts if sync else SyncCounts()).totals().items():
                setattr(run, name, count)
            run.api_calls = adapter.api_calls
            run.continues = bool(sync and sync.continues)
            run.finished_at = timezone.now()
            run.save()
    if not dry_run:
        outbox_follow_up(connection=connection, failed=run.status == SyncRun.Status.FAILED, retry_after=retry_after)
        if run.continues:
            # Queued once the lock is released, so the continuation does not find it held.
            connection_slice_queue(connection=connection, trigger=trigger, full=full)
        elif slice_pages and full:
            # The listing completed, or failed: the next poll that finds a listing due starts a new chain.
            CrmConnection.objects.filter(pk=connection.pk).update(slice_queued_at=None)
    run.plan = sync.counts.planned if sync else []
    run.refused_remote_ids = sync.refused if sync else {}
    return run


def bulk_cluster() -> str | None:
    """Return the django-q2 cluster for listings and continuation slices (None: the default cluster)."""
    return settings.BULK_CLUSTER or None


def connection_slice_queue(*, connection: CrmConnection, trigger: str, full: bool, start: bool = False) -> bool:
    """Queue the next slice of ``connection``'s long sync on the bulk cluster; return whether one was queued.

    A full listing's chain of slices is marked on the connection (``slice_queued_at``). With
    ``start`` (a poll finding a listing due) nothing is queued while a slice of that chain waits or
    runs, unless it was queued longer ago than django-q2's ``retry``, after which django-q2 itself
    presumes a task lost: a worker killed mid-slice ends its chain, and that poll starts it again
    from the listing's checkpoint.
    """
    from django_q.tasks import async_task

    if full:
        now = timezone.now()
        marked = CrmConnection.objects.filter(pk=connection.pk)
        if start:
            lost = now - timedelta(seconds=settings.Q_CLUSTER["retry"])
            marked = marked.filter(Q(slice_queued_at__isnull=True) | Q(slice_queued_at__lt=lost))
        if not marked.update(slice_queued_at=now):
            return False
    async_task(
        SYNC_TASK, connection.pk, trigger=trigger, full=full, group=f"sync-{connection.pk}", cluster=bulk_cluster()
    )
    return True


def connection_slice_retry(*, connection_id: int, trigger: str, full: bool) -> None:
    """Run a slice again shortly: it found another sync of its connection running (one pending retry per connection)."""
    from syncapp.services.schedules import schedule_once_upsert

    if full:
        CrmConnection.objects.filter(pk=connection_id).update(slice_queued_at=timezone.now())
    schedule_once_upsert(
        name=f"contactsync-slice-{connection_id}",
        func=SYNC_TASK,
        args=(connection_id,),
        kwargs={"trigger": trigger, "full": full},
        cluster=bulk_cluster(),
        delay=SLICE_RETRY_DELAY,
    )


def connection_sync_queue(*, connection: CrmConnection, trigger: str = SyncRun.Trigger.MANUAL) -> str:
    """Queue one sync task of ``connection`` (a person's "Sync now"); return the task id.

    Raises ConnectionInactiveError for a paused or disconnected connection, which would not sync.
    """
    from django_q.tasks import async_task

    if connection.status not in CrmConnection.SYNCABLE_STATUSES:
        raise ConnectionInactiveError(f"The connection is {connection.get_status_display().lower()}; resume it first.")
    return async_task(SYNC_TASK, connection.pk, trigger=trigger, group=f"sync-{connection.pk}")
