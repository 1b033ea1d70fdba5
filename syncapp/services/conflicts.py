"""Resolving conflicts by hand: restore a losing value, pick one under manual review, or accept the outcome."""

from django.db import transaction
from django.utils import timezone

from syncapp.exceptions import ValidationError
from syncapp.models import SyncConflict
from syncapp.services.contacts import contact_update
from syncapp.services.outbox import outbox_enqueue


def _apply(*, conflict: SyncConflict, value: str, resolution: str, user) -> SyncConflict:
    link = conflict.link
    # With what the CRM holds now as the base, a different app value is a plain push.
    crm_holds = conflict.local_value if conflict.winner == SyncConflict.Winner.APP else conflict.remote_value
    if conflict.resolution == SyncConflict.Resolution.OPEN:
        crm_holds = conflict.remote_value  # manual review overwrote nothing
    link.base = {**link.base, conflict.field: crm_holds}
    link.save(update_fields=["base"])
    if getattr(link.contact, conflict.field) == value:
        # The app already holds the value; only this link's CRM needs it.
        outbox_enqueue(contact=link.contact)
    else:
        contact_update(contact=link.contact, values={conflict.field: value})
    conflict.resolution, conflict.resolved_by, conflict.resolved_at = resolution, user, timezone.now()
    conflict.save(update_fields=["resolution", "resolved_by", "resolved_at"])
    return conflict


@transaction.atomic
def conflict_restore(*, conflict: SyncConflict, user) -> SyncConflict:
    """Put the value that lost back on the contact; it then reaches every connected CRM."""
    if conflict.resolution != SyncConflict.Resolution.AUTOMATIC:
        raise ValidationError("Only a conflict the strategy resolved can have its losing value restored.")
    return _apply(
        conflict=conflict, value=conflict.losing_value, resolution=SyncConflict.Resolution.RESTORED, user=user
    )


@transaction.atomic
def conflict_pick(*, conflict: SyncConflict, winner: str, user) -> SyncConflict:
    """Decide a conflict waiting for manual review: ``winner`` is "app" or "crm"."""
    if conflict.resolution != SyncConflict.Resolution.OPEN:
        raise ValidationError("This conflict is already resolved.")
    if winner not in (SyncConflict.Winner.APP, SyncConflict.Winner.CRM):
        raise ValidationError("Pick 'app' or 'crm'.")
    value = conflict.local_value if winner == SyncConflict.Winner.APP else conflict.remote_value
    conflict.winner = winner
    conflict.save(update_fields=["winner"])
    resolution = SyncConflict.Resolution.PICKED_APP if winner == "app" else SyncConflict.Resolution.PICKED_CRM
    return _apply(conflict=conflict, value=value, resolution=resolution, user=user)


def conflict_acknowledge(*, conflict: SyncConflict, user) -> SyncConflict:
    """Mark a conflict the strategy resolved as reviewed, keeping the strategy's outcome.

    A conflict awaiting manual review needs a side picked (conflict_pick) instead: until then the
    next sync would only find it again.
    """
    if conflict.resolution == SyncConflict.Resolution.OPEN:
        raise ValidationError("This conflict awaits a decision: pick the app or the CRM value.")
    if conflict.resolved_at is not None:
        raise ValidationError("This conflict is already resolved.")
    conflict.resolved_by, conflict.resolved_at = user, timezone.now()
    conflict.save(update_fields=["resolved_by", "resolved_at"])
    return conflict
