"""Every URL of the app, walked from its URL patterns: another tenant's objects are a 404 and stay as they were.

A new URL with an object in its path joins this test by itself; one with a kind of id the test does
not know fails it until the id is added to ``objects`` below.
"""

import pytest
from django.test import Client
from django.urls import URLPattern, reverse

from syncapp import urls
from syncapp.models import ContactLink, CrmConnection, SyncConflict
from syncapp.tenancy import SESSION_TENANT
from tests.views.test_conflicts import make_conflict

pytestmark = pytest.mark.django_db

# Pages anyone may reach: CRMs call the webhooks, and the OAuth callback checks its own signed state.
PUBLIC = {"webhook", "webhook-connection", "oauth-callback"}
# Path parts that name no tenant's object.
SHARED = {"provider_id": "hubspot"}


def patterns() -> list[URLPattern]:
    return [pattern for pattern in urls.urlpatterns if pattern.name not in PUBLIC]


@pytest.fixture
def objects(connection):
    """One of each kind of object a URL names, all belonging to alice's tenant."""
    conflict = make_conflict(connection, resolution=SyncConflict.Resolution.OPEN)
    link = conflict.link
    link.status = ContactLink.Status.ERROR
    link.save(update_fields=["status"])
    return {
        "connection_id": connection.pk,
        "contact_id": link.contact_id,
        "conflict_id": conflict.pk,
        "link_id": link.pk,
    }


def state(objects):
    """What a request of another tenant must not change."""
    connection = CrmConnection.objects.get(pk=objects["connection_id"])
    conflict = SyncConflict.objects.get(pk=objects["conflict_id"])
    link = ContactLink.objects.get(pk=objects["link_id"])
    contact = link.contact
    return (
        connection.status,
        connection.conflict_strategy,
        connection.pronouns_state,
        conflict.resolution,
        link.status,
        contact.to_record(),
        contact.deleted_at,
    )


def test_every_page_needs_a_login(objects):
    anonymous = Client()
    for pattern in patterns():
        known = {**SHARED, **objects}
        url = reverse(f"syncapp:{pattern.name}", kwargs={k: known[k] for k in pattern.pattern.converters})
        for response in (anonymous.get(url), anonymous.post(url)):
            # The login check comes before the method check, so neither method reaches the view.
            assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_every_url_naming_another_tenants_object_is_a_404_and_changes_nothing(objects, bob):
    before = state(objects)
    walked = 0
    for pattern in patterns():
        names = set(pattern.pattern.converters)
        assert names <= set(objects) | set(SHARED), f"{pattern.name}: add an object for {names - set(objects)}"
        if not names & set(objects):
            continue
        url = reverse(f"syncapp:{pattern.name}", kwargs={name: {**SHARED, **objects}[name] for name in names})
        answers = {bob.get(url).status_code, bob.post(url, {"winner": "app", "create": "1"}).status_code}
        # A page answers 404 to the method it serves; 405 to the other one, before any lookup.
        assert 404 in answers and answers <= {404, 405}, (url, answers)
        walked += 1
    assert walked >= 12
    assert state(objects) == before


def test_switching_to_another_tenant_is_a_404_and_changes_nothing(objects, bob):
    """The switch names its tenant in the body, not the path, so the walk above does not reach it."""
    alices_tenant = CrmConnection.objects.get(pk=objects["connection_id"]).tenant_id
    before = state(objects)

    assert bob.post(reverse("syncapp:tenant-switch"), {"tenant": alices_tenant, "next": "/"}).status_code == 404
    assert SESSION_TENANT not in bob.session
    assert bob.get(reverse("syncapp:connection-status", args=[objects["connection_id"]])).status_code == 404
    assert "Globex" in bob.get(reverse("syncapp:status")).content.decode()
    assert state(objects) == before
