"""Contact reads."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from syncapp.engine import normalize_email, text_normalize
from syncapp.models import Contact, ContactLink, CrmConnection, OutboxEntry, Tenant


def contact_list_live(*, tenant: Tenant) -> QuerySet[Contact]:
    return Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("email", "pk")


def contact_get_live_by_email(*, tenant: Tenant, email: str) -> Contact | None:
    return contact_list_live(tenant=tenant).filter(email__iexact=normalize_email(email)).first()


# Each search word adds three LIKE clauses: an unbounded query is an unbounded SQL expression
# (SQLite answers "Expression tree is too large").
SEARCH_MAX_CHARS = 200
SEARCH_MAX_WORDS = 10


@dataclass(frozen=True)
class SearchQuery:
    """What a search looks for: ``words`` of the typed text; ``cut`` when some of it was left out."""

    text: str
    words: tuple[str, ...]
    cut: bool


def contact_search_query(text: str) -> SearchQuery:
    """Return the search ``text`` asks for, bounded to SEARCH_MAX_CHARS and SEARCH_MAX_WORDS distinct words."""
    cleaned = text_normalize(text)
    words = tuple(dict.fromkeys(cleaned[:SEARCH_MAX_CHARS].split()))[:SEARCH_MAX_WORDS]
    return SearchQuery(text=" ".join(words), words=words, cut=words != tuple(dict.fromkeys(cleaned.split())))


def contact_search(*, tenant: Tenant, query: str = "") -> QuerySet[Contact]:
    """Return the tenant's live contacts whose email or name contains every word of ``query`` (bounded)."""
    contacts = contact_list_live(tenant=tenant)
    for word in contact_search_query(query).words:
        contacts = contacts.filter(
            Q(email__icontains=word) | Q(first_name__icontains=word) | Q(last_name__icontains=word)
        )
    return contacts


def contact_get_live(*, tenant: Tenant, contact_id: int) -> Contact | None:
    return contact_list_live(tenant=tenant).filter(pk=contact_id).first()


def contact_link_list(*, contact: Contact) -> list[dict]:
    """Return, for each connection of the contact's tenant, its link to the contact (or None) and pending pushes."""
    links = {link.connection_id: link for link in ContactLink.objects.filter(contact=contact)}
    pending = dict(
        OutboxEntry.objects.filter(contact=contact)
        .values("connection_id")
        .annotate(count=Count("pk"))
        .values_list("connection_id", "count")
    )
    connections = CrmConnection.objects.filter(tenant_id=contact.tenant_id).order_by("pk")
    return [
        {"connection": connection, "link": links.get(connection.pk), "pending": pending.get(connection.pk, 0)}
        for connection in connections
    ]
