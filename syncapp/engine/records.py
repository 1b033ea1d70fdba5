"""Plain data the engine reasons about: the universal contact and each side's view of it."""

from __future__ import annotations

import contextlib
import functools
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from datetime import datetime

import idna

FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "pronouns")

# The six fields are single-line. Line breaks, tabs and the other whitespace controls become one
# space; the other control characters (C0, DEL, C1) and lone surrogates are dropped: PostgreSQL
# refuses NUL, psycopg refuses surrogates, and none of them means anything in a name or a phone.
_LINE_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
_UNSTORABLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")


def text_normalize(value: str | None) -> str:
    """Return a field value as the app stores it: on one line, without control characters, trimmed."""
    value = value or ""
    if value.isprintable():  # the common case, checked in C: none of the characters below is printable
        return value.strip()
    return _UNSTORABLE.sub("", _LINE_BREAKS.sub(" ", value)).strip()


def text_unstorable(value: str | None) -> str | None:
    """Return the first character ``text_normalize`` would drop from ``value``, or None."""
    found = _UNSTORABLE.search(value or "")
    return found.group() if found else None


def email_invisible(value: str | None) -> str | None:
    """Return the first invisible format character (Unicode Cf: zero-width space, BOM, bidi marks) in ``value``."""
    return next((char for char in value or "" if unicodedata.category(char) == "Cf"), None)


# Every record built normalises its email, and a sync builds several per contact: the IDNA mapping
# alone was a third of an initial sync's CPU. Caching is safe, as the function is pure.
@functools.lru_cache(maxsize=2**16)
def normalize_email(value: str | None) -> str:
    """Return the one form of an email that is stored, compared, matched and hashed.

    Trimmed, lower-cased and in NFKC (fullwidth letters become ASCII), the domain in its IDNA
    form (UTS #46: ``bob@Bücher.example`` and ``bob@XN--BCHER-KVA.example`` are both
    ``bob@xn--bcher-kva.example``). An email holding an invisible format character is only
    trimmed and lower-cased: mapping would hide the character, and such emails are refused.
    """
    email = text_normalize(value)
    if email_invisible(email):
        return email.lower()
    # NFKC again after lower(): lower-casing can undo NFKC, and the form must not change when applied twice.
    email = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email).lower()).strip()
    local, at, domain = email.rpartition("@")
    if not at:
        return email
    return f"{local}@{_idna_domain(domain)}"


@functools.lru_cache(maxsize=2**12)
def _idna_domain(domain: str) -> str:
    """Return ``domain`` in its IDNA form, or as it is when it is not a valid domain name (validation refuses it)."""
    with contextlib.suppress(idna.IDNAError):
        return idna.encode(domain, uts46=True).decode("ascii")
    return domain


def email_spellings(email: str) -> list[str]:
    """The ways a CRM may hold ``email`` (one in normalize_email's form): as it is, and with its domain in Unicode.

    CRMs search emails as typed, so a record whose user typed ``bücher.example`` is not found by
    ``xn--bcher-kva.example``; a lookup asks for both, and the answers are matched by normalize_email.
    """
    local, at, domain = email.rpartition("@")
    if not at or "xn--" not in domain:
        return [email]
    try:
        return [email, f"{local}@{idna.decode(domain)}"]
    except idna.IDNAError:
        return [email]


@dataclass(frozen=True)
class ContactRecord:
    """The universal contact. Values are normalised on construction so comparisons are exact."""

    email: str = ""
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    job_title: str = ""
    pronouns: str = ""

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            value = normalize_email(value) if f.name == "email" else text_normalize(value)
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_dict(cls, data: dict) -> ContactRecord:
        return cls(**{name: data.get(name) or "" for name in FIELDS})

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}

    def get(self, name: str) -> str:
        return getattr(self, name)

    def with_values(self, values: dict[str, str]) -> ContactRecord:
        return replace(self, **values)


EMPTY = ContactRecord()


@dataclass(frozen=True)
class LocalState:
    """An app contact as the engine sees it.

    ``field_modified_at`` holds when each field's value was written (by a person in the app, or by
    the CRM a pulled value came from); ``modified_at`` stands in for fields without a time.
    """

    contact_id: int
    record: ContactRecord
    deleted: bool = False
    modified_at: datetime | None = None
    field_modified_at: dict[str, datetime] = field(default_factory=dict)

    def modified_at_of(self, name: str) -> datetime | None:
        return self.field_modified_at.get(name) or self.modified_at


@dataclass(frozen=True)
class RemoteState:
    """A CRM record as the engine sees it.

    ``merged_ids`` lists the ids of records the CRM merged into this one (HubSpot merges).
    """

    remote_id: str
    record: ContactRecord
    deleted: bool = False
    modified_at: datetime | None = None
    version: str = ""
    merged_ids: tuple[str, ...] = ()
    # Addresses the record holds besides its primary email (Pipedrive's non-primary emails[]).
    other_emails: tuple[str, ...] = ()

    @property
    def ids(self) -> frozenset[str]:
        """Every id that names this record: its own and those merged into it."""
        return frozenset((self.remote_id, *self.merged_ids))


def answered_ids(remotes) -> set[str]:
    """Every id a read's records answer for, merged-away ids included."""
    return {remote_id for remote in remotes for remote_id in remote.ids}


@dataclass(frozen=True)
class LinkState:
    """What both sides last agreed on. A link without a remote id is a create still to succeed."""

    contact_id: int
    remote_id: str | None
    base: ContactRecord = EMPTY
    deleted: bool = False
    remote_version: str = ""


# The conflict strategies (merge.STRATEGIES); the models' choices take these names.
CRM_WINS, LATEST_WINS, MANUAL_REVIEW, FIELD_PRIORITY = "crm_wins", "latest_wins", "manual_review", "field_priority"


@dataclass(frozen=True)
class Policy:
    """How conflicts are resolved for one connection."""

    strategy: str = CRM_WINS
    # field -> "app" or "crm", used by the field_priority strategy; unlisted fields go to the CRM.
    field_owners: dict[str, str] = field(default_factory=dict)
    # False: a record deleted in the CRM is restored there instead of deleting the app contact.
    crm_deletes_contact: bool = True
    # Fields this CRM account cannot hold (a custom field not set up yet): neither pulled nor pushed.
    ignored_fields: frozenset[str] = frozenset()
