"""Turn one batch of app contacts, CRM records and links into a plan of writes.

The planner is pure: it never reads or writes anything itself, so every rule of DESIGN.md's
"Sync semantics" can be tested with plain values. Services load the batch and apply the plan.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

from .merge import Conflict, merge_fields
from .records import EMPTY, FIELDS, ContactRecord, LinkState, LocalState, Policy, RemoteState, normalize_email


@dataclass
class PairPlan:
    """What to do for one app contact and its CRM record.

    ``contact_id`` is None when the app contact must be created, ``remote_id`` is None when the
    CRM record must be created. Local ops: "", "create", "update", "delete", "restore". Remote
    ops: "", "create", "update", "archive", "restore". After the writes both sides hold ``base``.
    """

    contact_id: int | None
    remote_id: str | None
    local_op: str = ""
    local_values: dict[str, str] = field(default_factory=dict)
    remote_op: str = ""
    remote_values: dict[str, str] = field(default_factory=dict)
    base: ContactRecord | None = None
    deleted: bool = False
    remote_version: str = ""
    # When the CRM says its record last changed: the time of any value pulled from it.
    remote_modified_at: datetime | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    # The base to keep if the CRM write fails, so the push is tried again next time.
    base_if_remote_fails: ContactRecord | None = None
    deleted_if_remote_fails: bool = False
    # The remote id this link pointed at before the CRM merged that record into ``remote_id``.
    relinked_from: str | None = None

    @property
    def is_noop(self) -> bool:
        return not (self.local_op or self.remote_op or self.relinked_from)


@dataclass(frozen=True)
class Exclusion:
    """A record left out of the sync, with the reason shown to operators."""

    NO_EMAIL = "no_email"
    DUPLICATE = "duplicate_email"
    EMAIL_LINKED = "email_linked_elsewhere"
    SECONDARY_EMAIL = "secondary_email"
    SUPPRESSED = "suppressed"

    side: str  # "app" or "crm"
    record_id: str
    email: str
    reason: str
    code: str


@dataclass
class Plan:
    pairs: list[PairPlan] = field(default_factory=list)
    excluded: list[Exclusion] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Conflict]:
        return [c for pair in self.pairs for c in pair.conflicts]


def plan_pair(*, local: LocalState, remote: RemoteState, link: LinkState | None, policy: Policy) -> PairPlan:
    """Reconcile one pair. Existence is merged first, like a field; field values only when both live."""
    base_deleted = link.deleted if link else False
    plan = PairPlan(
        contact_id=local.contact_id,
        remote_id=remote.remote_id,
        remote_version=remote.version,
        remote_modified_at=remote.modified_at,
    )
    # Existence is three-way merged like a field; it cannot conflict, being a yes/no value.
    deleted = local.deleted if local.deleted != base_deleted else remote.deleted
    if deleted and not local.deleted and not policy.crm_deletes_contact:
        deleted = False  # the app keeps the contact, so the CRM record comes back
    if deleted:
        # Field changes wait: a later restore merges them against the untouched base.
        plan.base = link.base if link else remote.record
        plan.deleted = True
        plan.local_op = "" if local.deleted else "delete"
        plan.remote_op = "" if remote.deleted else "archive"
        plan.base_if_remote_fails = link.base if link else remote.record
        plan.deleted_if_remote_fails = base_deleted
        return plan

    merged = merge_fields(local=local, remote=remote, base=link.base if link else None, policy=policy)
    plan.base = merged.agreed
    plan.conflicts = merged.conflicts
    if local.deleted:
        plan.local_op, plan.local_values = "restore", merged.pull
    elif merged.pull:
        plan.local_op, plan.local_values = "update", merged.pull
    if remote.deleted:
        plan.remote_op, plan.remote_values = "restore", _without(merged.agreed, policy.ignored_fields).as_dict()
    elif merged.push:
        plan.remote_op, plan.remote_values = "update", merged.push
    old_base = link.base if link else merged.agreed.with_values({name: "" for name in merged.push})
    plan.base_if_remote_fails = merged.agreed.with_values({name: old_base.get(name) for name in merged.push})
    plan.deleted_if_remote_fails = remote.deleted
    return plan


def _without(record: ContactRecord, names: frozenset[str]) -> ContactRecord:
    """Return ``record`` as a CRM that lacks the fields ``names`` holds it."""
    return record.with_values(dict.fromkeys(names, ""))


def oldest_first(remote_id: str) -> tuple:
    """Sort key of "oldest record wins" when a CRM holds several records with one email: numeric ids
    sort by age (the order the CRM gave them out), others after them by text."""
    return (0, int(remote_id), "") if remote_id.isdigit() else (1, 0, remote_id)


def _remote_sort_key(remote: RemoteState) -> tuple:
    return oldest_first(remote.remote_id)


def plan_batch(
    *,
    locals: list[LocalState],
    remotes: list[RemoteState],
    links: list[LinkState],
    policy: Policy,
    absent_remote_ids: frozenset[str] = frozenset(),
    suppressed: dict[str, str] | None = None,
) -> Plan:
    """Plan a batch.

    ``links`` must include every link of the contacts and remote ids in the batch, and ``locals``
    every contact those links point at plus the live contacts whose email an unlinked remote
    carries. ``absent_remote_ids`` are records known to be gone (a failed read, or missing from a
    complete listing). A linked pair whose CRM record was neither read nor found absent is left for
    a batch that reads it; its email still counts as taken. ``suppressed`` maps the batch's emails
    that a privacy request keeps out of the app to the reason: unlinked records holding one are
    excluded, never created or matched.
    """
    plan = Plan()
    local_by_id = {local.contact_id: local for local in locals}
    remote_by_id = {remote.remote_id: remote for remote in remotes}
    linked = [link for link in links if link.remote_id]
    link_by_remote = {link.remote_id: link for link in linked}
    linked_contact_ids = {link.contact_id for link in linked}
    survivor_of = {merged: remote.remote_id for remote in remotes for merged in remote.merged_ids}
    claimed_remote_ids: set[str] = set()

    for link in sorted(linked, key=lambda item: item.contact_id):
        local = local_by_id.get(link.contact_id)
        if local is None:
            continue
        remote_id, relinked_from = link.remote_id, None
        if remote_id in survivor_of and remote_id not in remote_by_id:
            survivor = survivor_of[remote_id]
            if survivor not in link_by_remote and survivor not in claimed_remote_ids:
                remote_id, relinked_from = survivor, link.remote_id
            else:
                # Merged into a record already linked to another contact: this one is gone.
                absent_remote_ids = absent_remote_ids | {remote_id}
        claimed_remote_ids.add(remote_id)
        remote = remote_by_id.get(remote_id)
        if remote is None and remote_id in absent_remote_ids:
            remote = RemoteState(remote_id=remote_id, record=link.base, deleted=True, version=link.remote_version)
        if remote is None:
            continue  # not read in this batch: deciding without the CRM's state could overwrite its edits
        pair = plan_pair(local=local, remote=remote, link=link, policy=policy)
        pair.relinked_from = relinked_from
        plan.pairs.append(pair)

    _plan_first_contacts(
        plan=plan,
        unlinked_locals=[
            local
            for local in sorted(locals, key=lambda item: item.contact_id)
            if local.contact_id not in linked_contact_ids and not local.deleted
        ],
        unlinked_remotes=sorted(
            (
                remote
                for remote in remotes
                if remote.remote_id not in link_by_remote
                and remote.remote_id not in claimed_remote_ids
                and not remote.deleted
            ),
            key=_remote_sort_key,
        ),
        taken_emails={
            local.record.email: str(local.contact_id)
            for local in locals
            if local.contact_id in linked_contact_ids and not local.deleted and local.record.email
        },
        taken_remote_emails={
            remote.record.email: remote.remote_id
            for remote in remotes
            if remote.remote_id in claimed_remote_ids and not remote.deleted and remote.record.email
        },
        secondary_owners={
            normalize_email(email): remote.remote_id
            for remote in sorted(remotes, key=_remote_sort_key, reverse=True)
            if not remote.deleted
            for email in remote.other_emails
        },
        suppressed=suppressed or {},
        policy=policy,
    )
    return plan


def _plan_first_contacts(
    *,
    plan: Plan,
    unlinked_locals: list[LocalState],
    unlinked_remotes: list[RemoteState],
    taken_emails: dict[str, str],
    taken_remote_emails: dict[str, str],
    secondary_owners: dict[str, str],
    suppressed: dict[str, str],
    policy: Policy,
) -> None:
    """Match unlinked records by email; create the other side for the rest."""
    remotes_by_email: dict[str, list[RemoteState]] = defaultdict(list)
    for remote in unlinked_remotes:
        if not remote.record.email:
            plan.excluded.append(Exclusion("crm", remote.remote_id, "", "no email address", Exclusion.NO_EMAIL))
        elif remote.record.email in suppressed:
            # The email is not kept with the exclusion: the person asked to be forgotten.
            plan.excluded.append(
                Exclusion("crm", remote.remote_id, "", suppressed[remote.record.email], Exclusion.SUPPRESSED)
            )
        else:
            remotes_by_email[remote.record.email].append(remote)

    for local in unlinked_locals:
        email = local.record.email
        if not email:
            plan.excluded.append(Exclusion("app", str(local.contact_id), "", "no email address", Exclusion.NO_EMAIL))
        elif email in suppressed:
            plan.excluded.append(Exclusion("app", str(local.contact_id), "", suppressed[email], Exclusion.SUPPRESSED))
        elif remotes_by_email.get(email):
            oldest, *others = remotes_by_email.pop(email)
            plan.pairs.append(plan_pair(local=local, remote=oldest, link=None, policy=policy))
            _exclude_duplicates(plan, others, oldest.remote_id)
        elif email in taken_remote_emails:
            plan.excluded.append(
                Exclusion(
                    "app",
                    str(local.contact_id),
                    email,
                    f"CRM record {taken_remote_emails[email]} with this email is linked to another contact",
                    Exclusion.EMAIL_LINKED,
                )
            )
        elif email in secondary_owners:
            # Creating a record would duplicate the person who already lists this address.
            plan.excluded.append(
                Exclusion(
                    "app",
                    str(local.contact_id),
                    email,
                    f"CRM record {secondary_owners[email]} has this email as a secondary address; "
                    "make it that record's primary email (or remove it there) to sync this contact",
                    Exclusion.SECONDARY_EMAIL,
                )
            )
        else:
            held = _without(local.record, policy.ignored_fields)
            plan.pairs.append(
                PairPlan(
                    contact_id=local.contact_id,
                    remote_id=None,
                    remote_op="create",
                    remote_values=held.as_dict(),
                    base=held,
                )
            )

    for email, (oldest, *others) in remotes_by_email.items():
        if email in taken_emails:
            plan.excluded.append(
                Exclusion(
                    "crm",
                    oldest.remote_id,
                    email,
                    f"app contact {taken_emails[email]} with this email is linked to another record",
                    Exclusion.EMAIL_LINKED,
                )
            )
            _exclude_duplicates(plan, others, taken_emails[email])
            continue
        plan.pairs.append(
            PairPlan(
                contact_id=None,
                remote_id=oldest.remote_id,
                local_op="create",
                local_values=oldest.record.as_dict(),
                base=oldest.record,
                remote_version=oldest.version,
                remote_modified_at=oldest.modified_at,
            )
        )
        _exclude_duplicates(plan, others, oldest.remote_id)


def _exclude_duplicates(plan: Plan, duplicates: list[RemoteState], kept_id: str) -> None:
    for duplicate in duplicates:
        plan.excluded.append(
            Exclusion(
                "crm",
                duplicate.remote_id,
                duplicate.record.email,
                f"duplicate email in the CRM; the oldest record {kept_id} is the one synced",
                Exclusion.DUPLICATE,
            )
        )


def rebase_on_concurrent_edit(
    *, pair: PairPlan, planned: LocalState, current: LocalState, link: LinkState | None
) -> PairPlan:
    """Adjust a pair whose app contact a person edited after the plan was made, before it is applied.

    The CRM writes already happened, so the base still records what the CRM holds, except for
    values the plan meant to pull into a field the person has since changed: that field keeps its
    old base, so the next sync sees both sides changed and resolves it as a conflict. The person's
    edits are never overwritten.
    """
    edited = {name for name in FIELDS if planned.record.get(name) != current.record.get(name)}
    if not edited and planned.deleted == current.deleted:
        return pair
    old_base = link.base if link else EMPTY
    base = pair.base.with_values({name: old_base.get(name) for name in edited if name in pair.local_values})
    local_values = {name: value for name, value in pair.local_values.items() if name not in edited}
    local_op = pair.local_op
    if local_op in ("delete", "restore") and current.deleted == pair.deleted:
        # The person made the same delete or restore meanwhile; only the pulled values remain.
        local_op = "update"
    if local_op == "update" and not local_values:
        local_op = ""
    return replace(pair, local_op=local_op, local_values=local_values, base=base)
