"""Plain data the engine reasons about: the universal contact and each side's view of it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime

FIELDS = ("email", "first_name", "last_name", "phone", "job_title", "pronouns")


def normalize_email(value: str | None) -> str:
    """Return the dedupe form of an email: trimmed and lower-cased."""
    return (value or "").strip().lower()


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
            value = normalize_email(value) if f.name == "email" else (value or "").strip()
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


@dataclass(frozen=True)
class Policy:
    """How conflicts are resolved for one connection."""

    strategy: str = "crm_wins"
    # field -> "app" or "crm", used by the field_priority strategy; unlisted fields go to the CRM.
    field_owners: dict[str, str] = field(default_factory=dict)
    # False: a record deleted in the CRM is restored there instead of deleting the app contact.
    crm_deletes_contact: bool = True
    # Fields this CRM account cannot hold (a custom field not set up yet): neither pulled nor pushed.
    ignored_fields: frozenset[str] = frozenset()
