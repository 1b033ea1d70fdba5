"""Reads of the suppression list."""

from django.db.models import QuerySet

from syncapp.models import Suppression, Tenant


def suppression_list(*, tenant: Tenant, include_lifted: bool = False) -> QuerySet[Suppression]:
    """Return the tenant's suppressions, newest first; only the active ones unless ``include_lifted``."""
    suppressions = Suppression.objects.filter(tenant=tenant).order_by("-created_at", "-pk")
    return suppressions if include_lifted else suppressions.filter(lifted_at__isnull=True)
