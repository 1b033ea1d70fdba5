"""Per-field three-way merge of app (L), CRM (R) and base (B), and the conflict strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .records import (
    CRM_WINS,
    EMPTY,
    FIELD_PRIORITY,
    FIELDS,
    LATEST_WINS,
    MANUAL_REVIEW,
    ContactRecord,
    LocalState,
    Policy,
    RemoteState,
)

APP = "app"
CRM = "crm"

STRATEGIES = (CRM_WINS, LATEST_WINS, MANUAL_REVIEW, FIELD_PRIORITY)


@dataclass(frozen=True)
class Conflict:
    """Both sides changed ``field`` to different values since the base."""

    field: str
    local_value: str
    remote_value: str
    local_modified_at: datetime | None
    remote_modified_at: datetime | None
    strategy: str
    winner: str | None  # APP, CRM, or None while it waits for manual review


@dataclass
class FieldMerge:
    """The outcome of merging one pair's fields."""

    agreed: ContactRecord
    pull: dict[str, str] = field(default_factory=dict)  # values to write into the app
    push: dict[str, str] = field(default_factory=dict)  # values to write to the CRM
    conflicts: list[Conflict] = field(default_factory=list)


def choose_winner(
    *, field_name: str, policy: Policy, local_modified_at: datetime | None, remote_modified_at: datetime | None
) -> str | None:
    """Return which side wins a conflict on ``field_name``, or None when a person must decide."""
    if policy.strategy == MANUAL_REVIEW:
        return None
    if policy.strategy == FIELD_PRIORITY:
        return APP if policy.field_owners.get(field_name) == APP else CRM
    if policy.strategy == LATEST_WINS:
        # Each side's own record of when it was edited; ties and unknown times go to the CRM.
        if local_modified_at and remote_modified_at and local_modified_at > remote_modified_at:
            return APP
        return CRM
    return CRM


def merge_fields(*, local: LocalState, remote: RemoteState, base: ContactRecord | None, policy: Policy) -> FieldMerge:
    """Merge every field of a linked (or just matched) pair.

    With no base (first contact) every field's base is empty, so an empty side fills from the
    other and two different non-empty values are a conflict.
    """
    base = base or EMPTY
    agreed: dict[str, str] = {}
    result = FieldMerge(agreed=EMPTY)
    for name in FIELDS:
        mine, theirs, was = local.record.get(name), remote.record.get(name), base.get(name)
        if name in policy.ignored_fields:
            agreed[name] = was  # merged once the field exists, against the base from before
        elif mine == theirs:
            agreed[name] = mine
        elif mine == was:
            agreed[name] = result.pull[name] = theirs
        elif theirs == was:
            agreed[name] = result.push[name] = mine
        else:
            winner = choose_winner(
                field_name=name,
                policy=policy,
                local_modified_at=local.modified_at_of(name),
                remote_modified_at=remote.modified_at,
            )
            result.conflicts.append(
                Conflict(
                    field=name,
                    local_value=mine,
                    remote_value=theirs,
                    local_modified_at=local.modified_at_of(name),
                    remote_modified_at=remote.modified_at,
                    strategy=policy.strategy,
                    winner=winner,
                )
            )
            if winner == CRM:
                agreed[name] = result.pull[name] = theirs
            elif winner == APP:
                agreed[name] = result.push[name] = mine
            else:
                agreed[name] = was  # untouched on both sides until someone picks a value
    result.agreed = ContactRecord(**agreed)
    return result
