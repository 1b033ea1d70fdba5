"""Tenants and their members."""

from django.contrib.auth import get_user_model, password_validation
from django.core import exceptions as django_exceptions
from django.db import transaction

from syncapp.exceptions import ValidationError
from syncapp.models import Membership, Tenant


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str = "",
    username: str = "",
    password: str = "",
    add_existing_user: bool = False,
    reset_password: bool = False,
) -> Tenant:
    """Create a tenant, and optionally a member (see ``tenant_add_member`` for the flags)."""
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError(f"Tenant '{slug}' already exists.")
    tenant = Tenant.objects.create(slug=slug, name=name or slug)
    if username:
        tenant_add_member(
            tenant=tenant,
            username=username,
            password=password,
            add_existing_user=add_existing_user,
            reset_password=reset_password,
        )
    return tenant


@transaction.atomic
def tenant_add_member(
    *,
    tenant: Tenant,
    username: str,
    password: str = "",
    add_existing_user: bool = False,
    reset_password: bool = False,
) -> Membership:
    """Make ``username`` a member of ``tenant``, creating the user if missing.

    A new user gets ``password`` (checked by AUTH_PASSWORD_VALIDATORS) or none that works. An account
    that already exists may belong to someone else: giving it this tenant's data needs
    ``add_existing_user``, and replacing its password needs ``reset_password``.
    """
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created = user is None
    if created:
        user = user_model(username=username)
    else:
        # The messages name the command's flags: the command is where a person meets them.
        if not add_existing_user and not Membership.objects.filter(tenant=tenant, user=user).exists():
            raise ValidationError(
                f"User '{username}' already exists; to make them a member of '{tenant.slug}' too, "
                "pass --add-existing-user."
            )
        if password and not reset_password:
            raise ValidationError(
                f"User '{username}' already exists; to replace their password, pass --reset-password."
            )
    try:
        if created:
            user_model._meta.get_field(user_model.USERNAME_FIELD).run_validators(username)
        if password:
            password_validation.validate_password(password, user=user)
    except django_exceptions.ValidationError as exc:
        raise ValidationError(" ".join(exc.messages)) from exc

    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    if created or password:
        user.save()
    membership, _ = Membership.objects.get_or_create(tenant=tenant, user=user)
    return membership
