"""Tenants and their members."""

from django.contrib.auth import get_user_model
from django.db import transaction

from syncapp.exceptions import ValidationError
from syncapp.models import Membership, Tenant


@transaction.atomic
def tenant_create(*, slug: str, name: str = "", username: str = "", password: str = "") -> Tenant:
    """Create a tenant, and optionally a user who belongs to it (created if missing)."""
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(f"Tenant '{slug}' already exists.")
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    if username:
        tenant_add_member(tenant=tenant, username=username, password=password)
    return tenant


def tenant_add_member(*, tenant: Tenant, username: str, password: str = "") -> Membership:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.get_or_create(tenant=tenant, user=user)
    return membership
