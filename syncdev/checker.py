"""The soak's verdict, from what each side holds and what the workload did; no ORM, no HTTP.

It never reads the sync's own bookkeeping (links, cursors, run counts) except the one count it is
asked to judge, the records left pending, so a bug that fools the bookkeeping still shows here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "pronouns")
# The pseudo-field of an edit that creates ("1"), deletes ("0") or restores ("1") a person.
LIVE = "_live"


@dataclass(frozen=True)
class Record:
    """One contact or CRM record as its side holds it: universal field values, email included."""

    id: str
    values: Mapping[str, str]
    deleted: bool = False

    @property
    def email(self) -> str:
        return (self.values.get("email") or "").lower()


@dataclass(frozen=True)
class Edit:
    """One change the workload made to one field of one person (``tenant``, ``email``) on one side."""

    tenant: str
    email: str
    field: str
    value: str
    at: float
    side: str


@dataclass(frozen=True)
class Write:
    """A record that came to life (``create``, ``restore``) or ended (``delete``) in one CRM account."""

    account: str
    email: str
    kind: str
    at: float
    origin: str  # "api" (the sync, per the request log) or "user" (the workload, through the control API)


@dataclass
class Verdict:
    field_mismatches: list[str] = field(default_factory=list)
    duplicate_emails: list[str] = field(default_factory=list)
    created_twice: list[str] = field(default_factory=list)
    lost_edits: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {name: len(items) for name, items in vars(self).items()}

    @property
    def ok(self) -> bool:
        return not any(self.counts().values())


def _live_by_email(records: Iterable[Record]) -> dict[str, Record]:
    return {record.email: record for record in records if not record.deleted and record.email}


def field_mismatches(*, tenant: str, app: Iterable[Record], crms: Mapping[str, Iterable[Record]]) -> list[str]:
    """Every live app contact is in every CRM account with the same values, and nothing else is."""
    found = []
    contacts = _live_by_email(app)
    for account, records in crms.items():
        held = _live_by_email(records)
        found += [f"{tenant} {account}: {email} is missing" for email in sorted(contacts.keys() - held.keys())]
        found += [f"{tenant} {account}: {email} is not in the app" for email in sorted(held.keys() - contacts.keys())]
        for email in sorted(contacts.keys() & held.keys()):
            for name in FIELDS:
                ours, theirs = contacts[email].values.get(name) or "", held[email].values.get(name) or ""
                if ours.lower() != theirs.lower() if name == "email" else ours != theirs:
                    found.append(f"{tenant} {account}: {email} {name} is {theirs!r}, the app's {ours!r}")
    return found


def duplicate_emails(*, side: str, records: Iterable[Record]) -> list[str]:
    """Emails that two live records of one side hold."""
    holders = defaultdict(list)
    for record in records:
        if not record.deleted and record.email:
            holders[record.email].append(record.id)
    return [f"{side}: {email} is held by {', '.join(ids)}" for email, ids in sorted(holders.items()) if len(ids) > 1]


def created_twice(writes: Iterable[Write]) -> list[str]:
    """Creations by the API of a person whose record was live at that moment in the same account.

    A person may be created again after their record was deleted (an app restore does that where the CRM
    cannot restore); a creation while a record with the email lives is the double work this looks for.
    """
    found = []
    live: dict[tuple[str, str], int] = defaultdict(int)
    # Deletions before creations at the same instant, so a delete-then-create in one tick is not flagged.
    order = {"delete": 0, "create": 1, "restore": 1}
    for write in sorted(writes, key=lambda w: (w.at, order[w.kind])):
        key = (write.account, write.email.lower())
        if write.kind == "delete":
            live[key] = max(0, live[key] - 1)
            continue
        if write.kind == "create" and write.origin == "api" and live[key]:
            found.append(f"{write.account}: {write.email} created again at {write.at:.3f} while its record lived")
        live[key] += 1
    return found


def lost_edits(
    edits: Iterable[Edit], final: Mapping[tuple[str, str], Mapping[str, str] | None], *, window: float
) -> list[str]:
    """Edits whose value is not what the sides agree on at the end.

    ``final`` maps (tenant, email) to the app's live values, or None when the person is deleted. The value
    of a field's last edit must be the final one, unless another side edited the same field less than
    ``window`` seconds before it: those two were a true conflict, which the strategy may settle either way.
    The workload spaces other edits of one person further apart than any sync takes to carry them.
    Field edits of a person who ends deleted are not judged (only the deletion is).
    """
    by_field: dict[tuple[str, str, str], list[Edit]] = defaultdict(list)
    for edit in edits:
        by_field[(edit.tenant, edit.email.lower(), edit.field)].append(edit)
    found = []
    for (tenant, email, name), items in sorted(by_field.items()):
        items.sort(key=lambda e: e.at)
        last = items[-1]
        allowed = {e.value for e in items if e.at >= last.at - window}
        values = final.get((tenant, email))
        if name == LIVE:
            got = "0" if values is None else "1"
        elif values is None:
            continue
        else:
            got = values.get(name) or ""
        if got not in allowed:
            found.append(
                f"{tenant}: {email} {name} is {got!r}; the last edit ({last.side}, {last.at:.3f}) set {last.value!r}"
            )
    return found


def log_writes(entries: Iterable[Mapping], *, emails: Mapping[tuple[str, str], str]) -> list[Write]:
    """The creations and deletions the sync made, read from the sandbox's request log.

    ``emails`` maps (account, record id) to the record's email, for deletions, which name only the id.
    Failed and faulted requests changed nothing and are left out.
    """
    writes = []
    for entry in entries:
        status = entry.get("status")
        if not isinstance(status, int) or status >= 300:
            continue
        account = f"{entry['provider']}:{entry['account_id']}"
        for kind, email in _request_writes(entry, account, emails):
            writes.append(Write(account=account, email=email.lower(), kind=kind, at=entry["time"], origin="api"))
    return writes


def _request_writes(entry: Mapping, account: str, emails: Mapping[tuple[str, str], str]):
    method, path, body = entry["method"], entry["path"].rstrip("/"), entry.get("body") or {}
    if entry["provider"] == "hubspot":
        if method == "POST" and path == "/crm/v3/objects/contacts/batch/create":
            # A 207 refuses only items with an invalid email, which the soak never writes.
            yield from (("create", item["properties"].get("email", "")) for item in body.get("inputs", []))
        elif method == "POST" and path == "/crm/v3/objects/contacts":
            yield "create", body.get("properties", {}).get("email", "")
        elif method == "POST" and path == "/crm/v3/objects/contacts/batch/archive":
            yield from (("delete", emails.get((account, str(i["id"])), "")) for i in body.get("inputs", []))
        elif method == "DELETE" and path.startswith("/crm/v3/objects/contacts/"):
            yield "delete", emails.get((account, path.rsplit("/", 1)[1]), "")
    elif entry["provider"] == "pipedrive":
        if method == "POST" and path == "/api/v2/persons":
            primary = [e["value"] for e in body.get("emails", []) if e.get("primary")] or [""]
            yield "create", primary[0]
        elif method == "DELETE" and path.startswith("/api/v2/persons/"):
            yield "delete", emails.get((account, path.rsplit("/", 1)[1]), "")
