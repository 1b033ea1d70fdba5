"""App-side contact writes. Each one records its outbox rows in the same transaction."""

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from syncapp.engine import FIELDS, ContactRecord, email_invisible, text_unstorable
from syncapp.exceptions import ValidationError
from syncapp.models import Contact, Tenant
from syncapp.services.outbox import outbox_enqueue
from syncapp.services.suppressions import suppression_check

MAX_LENGTHS = {name: Contact._meta.get_field(name).max_length for name in FIELDS}


def contact_clean(values: dict) -> dict[str, str]:
    """Return ``values`` normalised and validated, or raise ValidationError naming the problem."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValidationError(f"Unknown contact field(s): {', '.join(sorted(unknown))}.")
    # A person gets told rather than have characters vanish (a CRM's values are cleaned instead, by
    # ContactRecord, and reach this point clean).
    for name, value in values.items():
        if char := text_unstorable(value):
            raise ValidationError(f"{name} contains the unprintable character U+{ord(char):04X}; remove it.")
    if char := email_invisible(values.get("email")):
        raise ValidationError(f"email contains the invisible character U+{ord(char):04X}; type the address again.")
    cleaned = ContactRecord.from_dict(values).as_dict()
    cleaned = {name: cleaned[name] for name in values}
    for name, value in cleaned.items():
        if len(value) > MAX_LENGTHS[name]:
            raise ValidationError(f"{name} is longer than {MAX_LENGTHS[name]} characters.")
    if cleaned.get("email"):
        try:
            validate_email(cleaned["email"])
        except DjangoValidationError:
            raise ValidationError(f"'{cleaned['email']}' is not a valid email address.") from None
    return cleaned


def contact_validate(*, tenant_id: int, values: dict, contact_id: int | None = None) -> dict[str, str]:
    """Return ``values`` cleaned, or raise ValidationError (bad value, or email in use by a live contact)."""
    cleaned = contact_clean(values)
    _check_email_free(tenant_id=tenant_id, email=cleaned.get("email", ""), contact_id=contact_id)
    return cleaned


def _check_email_free(*, tenant_id: int, email: str, contact_id: int | None = None) -> None:
    if not email:
        return
    # A person erased by a privacy request is not added back until an operator lifts it.
    suppression_check(tenant_id=tenant_id, email=email)
    taken = Contact.objects.filter(tenant_id=tenant_id, email__iexact=email, deleted_at__isnull=True)
    if contact_id:
        taken = taken.exclude(pk=contact_id)
    if taken.exists():
        raise ValidationError(f"Another contact already uses the email address {email}.")


def _stamp(contact: Contact, names, modified_at: datetime | None) -> None:
    when = (modified_at or timezone.now()).isoformat()
    contact.field_modified_at = {**contact.field_modified_at, **dict.fromkeys(names, when)}


def _save(contact: Contact, **kwargs) -> None:
    try:
        with transaction.atomic():
            contact.save(**kwargs)
    except IntegrityError:
        # A concurrent write took the email between the check and the save.
        raise ValidationError(f"Another contact already uses the email address {contact.email}.") from None


@transaction.atomic
def contact_create(
    *, tenant: Tenant, values: dict, source_connection_id: int | None = None, modified_at: datetime | None = None
) -> Contact:
    """Create a contact.

    For values pulled from a CRM, ``source_connection_id`` is that connection (the change is not
    sent back to it) and ``modified_at`` the CRM's own time of the change.
    """
    # Values pulled from a CRM were matched by email against the live contacts already; a contact
    # created meanwhile is caught by the unique constraint (see _save), so the check is not repeated.
    if source_connection_id is None:
        cleaned = contact_validate(tenant_id=tenant.pk, values=values)
    else:
        cleaned = contact_clean(values)
    contact = Contact(tenant=tenant, **cleaned)
    _stamp(contact, cleaned, modified_at)
    _save(contact)
    outbox_enqueue(contact=contact, exclude_connection_id=source_connection_id)
    return contact


@transaction.atomic
def contact_update(
    *, contact: Contact, values: dict, source_connection_id: int | None = None, modified_at: datetime | None = None
) -> Contact:
    """Change some fields of a contact (see contact_create). Unchanged values write nothing and reach no CRM."""
    cleaned = contact_clean(values)
    changed = {name: value for name, value in cleaned.items() if getattr(contact, name) != value}
    if not changed:
        return contact
    if "email" in changed and not contact.is_deleted:
        _check_email_free(tenant_id=contact.tenant_id, email=changed["email"], contact_id=contact.pk)
    for name, value in changed.items():
        setattr(contact, name, value)
    _stamp(contact, changed, modified_at)
    _save(contact, update_fields=[*changed, "field_modified_at", "updated_at"])
    outbox_enqueue(contact=contact, exclude_connection_id=source_connection_id)
    return contact


@transaction.atomic
def contact_delete(*, contact: Contact, source_connection_id: int | None = None) -> Contact:
    """Soft-delete a contact; its CRM records are archived by the next push."""
    if contact.is_deleted:
        return contact
    contact.deleted_at = timezone.now()
    contact.save(update_fields=["deleted_at", "updated_at"])
    outbox_enqueue(contact=contact, exclude_connection_id=source_connection_id)
    return contact


@transaction.atomic
def contact_restore(
    *,
    contact: Contact,
    values: dict | None = None,
    source_connection_id: int | None = None,
    modified_at: datetime | None = None,
) -> Contact:
    """Bring a soft-deleted contact back, optionally with new values; its CRM records revive."""
    if not contact.is_deleted:
        return contact
    cleaned = contact_clean(values or {})
    for name, value in cleaned.items():
        setattr(contact, name, value)
    _stamp(contact, cleaned, modified_at)
    _check_email_free(tenant_id=contact.tenant_id, email=contact.email, contact_id=contact.pk)
    contact.deleted_at = None
    _save(contact)
    outbox_enqueue(contact=contact, exclude_connection_id=source_connection_id)
    return contact
