"""The suppression list: people a privacy request keeps out of a tenant's app.

A suppression stores a keyed hash of the person's normalised email, never the email. The key is
derived per tenant from each SYNC_ENCRYPTION_KEY secret, so the table alone cannot be matched
against a list of guessed addresses, nor compared across tenants. New rows are hashed with the
current (first) secret; lookups try every listed secret, so rotating the key the documented way
(new key first, old keys kept) keeps every suppression working. Dropping an old secret from the
list makes the suppressions hashed with it stop matching.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from syncapp.crypto import encryption_secrets
from syncapp.engine import normalize_email
from syncapp.models import Contact, ContactLink, CrmConnection, ExcludedRecord, Suppression, Tenant
from syncapp.providers import get_adapter
from syncapp.services.task_names import ARCHIVE_TASK

logger = logging.getLogger(__name__)

SUPPRESSED_MESSAGE = (
    "This email address belongs to a person deleted at their request (a privacy deletion). "
    "An operator must lift the suppression before the contact can be added again."
)


def _tenant_key(secret: str, tenant_id: int) -> bytes:
    return hmac.new(secret.encode(), f"contactsync.suppression:{tenant_id}".encode(), hashlib.sha256).digest()


def email_hash(*, tenant_id: int, email: str, secret: str | None = None) -> str:
    """Return the hash stored for ``email`` in the tenant: HMAC-SHA256 under the tenant's key, hex."""
    key = _tenant_key(secret or encryption_secrets()[0], tenant_id)
    return hmac.new(key, normalize_email(email).encode(), hashlib.sha256).hexdigest()


def _active(*, tenant_id: int, emails: Iterable[str]) -> dict[str, Suppression]:
    """Return the active suppression of each of ``emails`` that has one, by normalised email."""
    by_hash = {
        email_hash(tenant_id=tenant_id, email=email, secret=secret): email
        for email in {normalize_email(email) for email in emails} - {""}
        for secret in encryption_secrets()
    }
    if not by_hash:
        return {}
    rows = Suppression.objects.filter(tenant_id=tenant_id, lifted_at__isnull=True, email_hash__in=list(by_hash))
    return {by_hash[row.email_hash]: row for row in rows.order_by("pk")}


def _reason(suppression: Suppression) -> str:
    origin = suppression.get_source_display()
    if suppression.remote_id:
        origin += f" of {suppression.provider} record {suppression.remote_id}"
    return f"Suppressed by a privacy request ({origin}, {suppression.created_at:%Y-%m-%d}); an operator can lift it."


def suppression_reasons(*, tenant_id: int, emails: Iterable[str]) -> dict[str, str]:
    """Return, for each of ``emails`` that is suppressed in the tenant, the reason shown when excluding it."""
    return {email: _reason(row) for email, row in _active(tenant_id=tenant_id, emails=emails).items()}


def suppression_last_lift(*, tenant_id: int) -> datetime | None:
    """Return when a suppression of the tenant was last lifted, or None."""
    return Suppression.objects.filter(tenant_id=tenant_id).aggregate(last=Max("lifted_at"))["last"]


@transaction.atomic
def person_forget(
    *,
    tenant: Tenant,
    emails: Iterable[str],
    source: str,
    provider: str = "",
    remote_id: str = "",
    reason: str = "",
    by: str = "",
    source_connection: CrmConnection | None = None,
) -> int:
    """Suppress ``emails`` in the tenant and erase its contacts holding them; return the contacts deleted.

    The contacts are deleted outright, with their links, conflicts and outbox rows, and so are the
    exclusions that list the emails. As for any app delete, their records in the tenant's CRMs are
    archived (a task per connection, once this commits), except in ``source_connection``, whose
    own privacy deletion removed its record already.
    """
    emails = {normalize_email(email) for email in emails} - {""}
    if not emails:
        return 0
    active = _active(tenant_id=tenant.pk, emails=emails)
    Suppression.objects.bulk_create(
        [
            Suppression(
                tenant=tenant,
                email_hash=email_hash(tenant_id=tenant.pk, email=email),
                source=source,
                provider=provider,
                remote_id=remote_id,
                reason=reason,
                created_by=by,
            )
            for email in sorted(emails - active.keys())
        ]
    )
    holding = Q()
    for email in emails:
        holding |= Q(email__iexact=email)
    contacts = Contact.objects.filter(holding, tenant=tenant)
    to_archive: dict[int, list[str]] = defaultdict(list)
    links = ContactLink.objects.filter(contact__in=contacts, remote_id__isnull=False, base_deleted=False)
    if source_connection is not None:
        links = links.exclude(connection=source_connection)
    for connection_id, linked_id in links.values_list("connection_id", "remote_id"):
        to_archive[connection_id].append(linked_id)
    ExcludedRecord.objects.filter(holding, connection__tenant=tenant).delete()
    deleted = contacts.delete()[1].get(Contact._meta.label, 0)
    for connection_id, remote_ids in sorted(to_archive.items()):
        transaction.on_commit(lambda pk=connection_id, ids=remote_ids: _archive_queue(pk, ids), robust=True)
    logger.info("tenant %s: %d email(s) suppressed (%s), %d contact(s) erased", tenant.pk, len(emails), source, deleted)
    return deleted


def _archive_queue(connection_id: int, remote_ids: list[str]) -> None:
    from django_q.tasks import async_task

    async_task(ARCHIVE_TASK, connection_id, remote_ids, group=f"archive-{connection_id}")


def crm_records_archive(*, connection: CrmConnection, remote_ids: list[str]) -> int:
    """Archive the records of a forgotten person in one CRM; return how many the CRM archived.

    A record left in the CRM (a paused connection, a refusal) is listed as excluded (suppressed)
    by the next sync, for an operator to delete there. No sync lock is needed: the app holds no
    link to these records any more, and archiving twice is harmless.
    """
    if connection.status not in CrmConnection.SYNCABLE_STATUSES:
        logger.info("connection %s is %s; forgotten records left in the CRM", connection.pk, connection.status)
        return 0
    results = get_adapter(connection).archive_many(remote_ids)
    outcomes = zip(remote_ids, results, strict=True)
    refused = [(remote_id, result.error) for remote_id, result in outcomes if not result.ok]
    for remote_id, error in refused:
        logger.warning("connection %s: archiving forgotten record %s failed: %s", connection.pk, remote_id, error)
    return len(remote_ids) - len(refused)


@transaction.atomic
def suppression_lift(*, tenant: Tenant, email: str, by: str) -> int:
    """Lift the active suppression of ``email`` in the tenant; return how many were lifted (0 or 1).

    The next sync brings the person's CRM records back like any new record.
    """
    active = _active(tenant_id=tenant.pk, emails=[email])
    return suppressions_lift(suppressions=Suppression.objects.filter(pk__in=[row.pk for row in active.values()]), by=by)


def suppressions_lift(*, suppressions, by: str) -> int:
    """Lift the given active suppressions (an operator's selection in the admin); return how many."""
    return suppressions.filter(lifted_at__isnull=True).update(lifted_at=timezone.now(), lifted_by=by)
