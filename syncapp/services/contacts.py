"""App-side contact writes. Each one records its outbox rows in the same transaction."""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import DataError, IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from syncapp.engine import FIELDS, ContactRecord, email_invisible, text_unstorable
from syncapp.exceptions import ValidationError
from syncapp.models import Contact, Tenant
from syncapp.services.outbox import outbox_enqueue_many
from syncapp.services.suppressions import SUPPRESSED_MESSAGE, suppression_reasons

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
    refused = _emails_taken(tenant_id=tenant_id, claims=[(email, contact_id)])
    if refused:
        raise refused[0]


def _emails_taken(*, tenant_id: int, claims: list[tuple[str, int | None]]) -> dict[int, ValidationError]:
    """Check which of ``claims`` (email, contact id or None) may not take their email; return them by index.

    A person erased by a privacy request is not added back until an operator lifts it, and a live
    contact's email is its own. One query for the suppressions and one for the live contacts,
    whatever the number of claims.
    """
    emails = {email for email, _ in claims if email}
    if not emails:
        return {}
    suppressed = suppression_reasons(tenant_id=tenant_id, emails=emails)
    holders: dict[str, set[int]] = {}
    live = Contact.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True).annotate(lowered=Lower("email"))
    for pk, email in live.filter(lowered__in={email.lower() for email in emails}).values_list("pk", "lowered"):
        holders.setdefault(email, set()).add(pk)
    refused = {}
    for index, (email, contact_id) in enumerate(claims):
        if not email:
            continue
        if email in suppressed:
            refused[index] = ValidationError(SUPPRESSED_MESSAGE)
        elif holders.get(email.lower(), set()) - {contact_id}:
            refused[index] = ValidationError(f"Another contact already uses the email address {email}.")
    return refused


def _stamp(contact: Contact, names, modified_at: datetime | None) -> None:
    when = (modified_at or timezone.now()).isoformat()
    contact.field_modified_at = {**contact.field_modified_at, **dict.fromkeys(names, when)}


@dataclass(frozen=True)
class ContactChange:
    """One change for ``contacts_apply_many``: ``op`` is create, update, delete or restore.

    ``contact`` is the contact to change (None for a create); ``modified_at`` is when the values
    were written where they come from (a CRM's time of the change), else now.
    """

    op: str
    contact: Contact | None = None
    values: dict = field(default_factory=dict)
    modified_at: datetime | None = None


def contacts_apply_many(
    *, tenant_id: int, changes: list[ContactChange], source_connection_id: int | None = None
) -> list[Contact | Exception]:
    """Apply ``changes`` with a constant number of queries; return, for each, its contact or why it was refused.

    A change whose values are invalid, or whose email another live contact holds or a privacy
    request suppressed, is refused (a ValidationError in its place) and writes nothing; a change
    that changes nothing writes nothing either. The others are written together (one insert, one
    update) with their outbox rows, for every live connection but ``source_connection_id`` (values
    pulled from that CRM are not sent back to it). A change passed in ``contact`` is made on that
    instance. Values pulled from a CRM (``source_connection_id``) were matched by email already,
    so a create does not look the email up; a contact created meanwhile is caught by the unique
    constraint.

    When the database refuses the writes (IntegrityError, DataError), which change it refused is
    known only for a single change: that one is answered with the refusal (an IntegrityError as
    "Another contact already uses the email address"). With several, the error is raised, nothing
    is written, and the caller applies them one at a time to find it. Run inside a transaction.
    """
    results: list[Contact | Exception | None] = [None] * len(changes)
    cleaned: dict[int, dict[str, str]] = {}
    claims: dict[int, tuple[str, int | None]] = {}
    for index, change in enumerate(changes):
        contact = change.contact
        if change.op == "delete" or (change.op == "restore" and not contact.is_deleted):
            continue
        try:
            values = contact_clean(change.values)
        except ValidationError as exc:
            results[index] = exc
            continue
        if change.op == "update":
            values = {name: value for name, value in values.items() if getattr(contact, name) != value}
        cleaned[index] = values
        if change.op == "create" and source_connection_id is None:
            claims[index] = (values.get("email", ""), None)
        elif (change.op == "update" and "email" in values and not contact.is_deleted) or change.op == "restore":
            claims[index] = (values.get("email", contact.email), contact.pk)
    refusals = _emails_taken(tenant_id=tenant_id, claims=list(claims.values()))
    for index, refusal in zip(claims, map(refusals.get, range(len(claims))), strict=True):
        if refusal is not None:
            results[index] = refusal
    now = timezone.now()
    created, updated, fields = [], [], set()
    for index, change in enumerate(changes):
        if results[index] is not None:
            continue
        contact, values = change.contact, cleaned.get(index, {})
        results[index] = contact
        if change.op == "create":
            contact = results[index] = Contact(tenant_id=tenant_id, **values)
            _stamp(contact, values, change.modified_at)
            created.append(contact)
            continue
        if change.op == "delete":
            if contact.is_deleted:
                continue
            contact.deleted_at = now
            fields.add("deleted_at")
        elif change.op == "restore":
            if not contact.is_deleted:
                continue
            contact.deleted_at = None
            fields.add("deleted_at")
        elif not values:
            continue  # an update that changes nothing reaches no CRM
        for name, value in values.items():
            setattr(contact, name, value)
        if values:
            _stamp(contact, values, change.modified_at)
            fields.update(values, {"field_modified_at"})
        contact.updated_at = now
        updated.append(contact)
    try:
        _write(created, updated, fields)
    except (IntegrityError, DataError) as exc:
        if len(changes) > 1:
            raise
        email = (created or updated)[0].email
        if isinstance(exc, IntegrityError):
            # A concurrent write took the email between the check and the save.
            exc = ValidationError(f"Another contact already uses the email address {email}.")
        return [exc]
    outbox_enqueue_many(contacts=updated + created, exclude_connection_id=source_connection_id)
    return results


def _write(created: list[Contact], updated: list[Contact], fields: set[str]) -> None:
    """Write the changed contacts, then the new ones (a change may free an email a new contact takes)."""
    with transaction.atomic():
        if updated:
            Contact.objects.bulk_update(updated, sorted({*fields, "updated_at"}))
        if created:
            Contact.objects.bulk_create(created)


def _one(result: Contact | Exception) -> Contact:
    if isinstance(result, Exception):
        raise result
    return result


@transaction.atomic
def contact_create(
    *, tenant: Tenant, values: dict, source_connection_id: int | None = None, modified_at: datetime | None = None
) -> Contact:
    """Create a contact.

    For values pulled from a CRM, ``source_connection_id`` is that connection (the change is not
    sent back to it) and ``modified_at`` the CRM's own time of the change.
    """
    change = ContactChange("create", values=values, modified_at=modified_at)
    return _one(
        contacts_apply_many(tenant_id=tenant.pk, changes=[change], source_connection_id=source_connection_id)[0]
    )


@transaction.atomic
def contact_update(
    *, contact: Contact, values: dict, source_connection_id: int | None = None, modified_at: datetime | None = None
) -> Contact:
    """Change some fields of a contact (see contact_create). Unchanged values write nothing and reach no CRM."""
    change = ContactChange("update", contact, values, modified_at)
    return _one(
        contacts_apply_many(tenant_id=contact.tenant_id, changes=[change], source_connection_id=source_connection_id)[0]
    )


@transaction.atomic
def contact_delete(*, contact: Contact, source_connection_id: int | None = None) -> Contact:
    """Soft-delete a contact; its CRM records are archived by the next push."""
    change = ContactChange("delete", contact)
    return _one(
        contacts_apply_many(tenant_id=contact.tenant_id, changes=[change], source_connection_id=source_connection_id)[0]
    )


@transaction.atomic
def contact_restore(
    *,
    contact: Contact,
    values: dict | None = None,
    source_connection_id: int | None = None,
    modified_at: datetime | None = None,
) -> Contact:
    """Bring a soft-deleted contact back, optionally with new values; its CRM records revive."""
    change = ContactChange("restore", contact, values or {}, modified_at)
    return _one(
        contacts_apply_many(tenant_id=contact.tenant_id, changes=[change], source_connection_id=source_connection_id)[0]
    )
