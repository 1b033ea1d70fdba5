"""Contact reads."""

from django.db.models import QuerySet

from syncapp.engine import normalize_email
from syncapp.models import Contact, Tenant


def contact_list_live(*, tenant: Tenant) -> QuerySet[Contact]:
    return Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("email", "pk")


def contact_get_live_by_email(*, tenant: Tenant, email: str) -> Contact | None:
    return contact_list_live(tenant=tenant).filter(email__iexact=normalize_email(email)).first()
