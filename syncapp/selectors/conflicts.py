"""Conflict reads, scoped to a tenant through the conflict's connection."""

from django.db.models import QuerySet

from syncapp.models import SyncConflict, Tenant


def conflict_list(*, tenant: Tenant, open_only: bool = False) -> QuerySet[SyncConflict]:
    """Return the tenant's conflicts, newest first; ``open_only``: those still awaiting a person."""
    conflicts = SyncConflict.objects.filter(link__connection__tenant=tenant).select_related(
        "link__contact", "link__connection", "resolved_by"
    )
    if open_only:
        conflicts = conflicts.filter(resolution=SyncConflict.Resolution.OPEN)
    return conflicts.order_by("-created_at", "-pk")


def conflict_get(*, tenant: Tenant, conflict_id: int) -> SyncConflict | None:
    return conflict_list(tenant=tenant).filter(pk=conflict_id).first()
