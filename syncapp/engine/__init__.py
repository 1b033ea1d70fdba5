"""Provider-agnostic reconciliation: plain data in, a plan of writes out. No HTTP, no ORM."""

from .merge import APP, CRM, STRATEGIES, Conflict, choose_winner, merge_fields
from .plan import Exclusion, PairPlan, Plan, oldest_first, plan_batch, plan_pair
from .records import (
    EMPTY,
    FIELDS,
    ContactRecord,
    LinkState,
    LocalState,
    Policy,
    RemoteState,
    email_invisible,
    email_spellings,
    normalize_email,
    text_normalize,
    text_unstorable,
)

__all__ = [
    "APP",
    "CRM",
    "EMPTY",
    "FIELDS",
    "STRATEGIES",
    "Conflict",
    "ContactRecord",
    "Exclusion",
    "LinkState",
    "LocalState",
    "PairPlan",
    "Plan",
    "Policy",
    "RemoteState",
    "choose_winner",
    "email_invisible",
    "merge_fields",
    "email_spellings",
    "normalize_email",
    "oldest_first",
    "plan_batch",
    "plan_pair",
    "text_normalize",
    "text_unstorable",
]
