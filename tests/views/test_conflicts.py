"""The conflicts pages: login, tenant isolation, CSRF, restore and pick, and the strategy form."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from syncapp.exceptions import ValidationError
from syncapp.models import ContactLink, CrmConnection, OutboxEntry, SyncConflict
from syncapp.services.connections import connection_conflict_policy_set
from syncapp.services.contacts import contact_create

pytestmark = pytest.mark.django_db


def make_conflict(connection, *, resolution, winner="", field="phone", email="ada@example.com"):
    """A conflict as a sync records it: the app had "app", the CRM "crm"; the contact holds the winner's value."""
    held = {"app": "app", "crm": "crm", "": "app"}[winner]
    contact = contact_create(tenant=connection.tenant, values={"email": email, field: held})
    OutboxEntry.objects.all().delete()
    link = ContactLink.objects.create(
        connection=connection, contact=contact, remote_id=f"R-{contact.pk}", base={field: "0"}
    )
    now = timezone.now()
    return SyncConflict.objects.create(
        link=link,
        field=field,
        local_value="app",
        remote_value="crm",
        local_modified_at=now,
        remote_modified_at=now,
        strategy=connection.conflict_strategy,
        winner=winner,
        resolution=resolution,
    )


@pytest.fixture
def automatic(connection):
    return make_conflict(connection, resolution=SyncConflict.Resolution.AUTOMATIC, winner="crm")


@pytest.fixture
def open_conflict(connection):
    return make_conflict(connection, resolution=SyncConflict.Resolution.OPEN, email="m@example.com")


def urls(conflict):
    return [
        reverse("syncapp:conflict-list"),
        reverse("syncapp:conflict-detail", args=[conflict.pk]),
        reverse("syncapp:conflict-restore", args=[conflict.pk]),
        reverse("syncapp:conflict-pick", args=[conflict.pk]),
        reverse("syncapp:connection-policy", args=[conflict.link.connection_id]),
    ]


def test_every_page_requires_login(automatic):
    for url in urls(automatic):
        assert Client().get(url).status_code == 302, url
        response = Client().post(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_another_tenants_conflicts_and_connections_are_404_and_lists_show_only_their_own(automatic, open_conflict, bob):
    assert bob.get(urls(automatic)[1]).status_code == 404
    for url in urls(automatic)[2:] + urls(open_conflict)[2:]:
        assert bob.post(url, {"winner": "app", "policy-1-conflict_strategy": "crm_wins"}).status_code == 404, url
    assert {c.resolution for c in SyncConflict.objects.all()} == {"automatic", "open"}
    for show in ("open", "all"):
        response = bob.get(reverse("syncapp:conflict-list"), {"show": show})
        assert response.status_code == 200 and not response.context["page"].object_list
        assert response.context["policy_forms"] == []


def test_every_post_needs_the_csrf_token(automatic, open_conflict):
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    for url in urls(automatic)[2:] + urls(open_conflict)[3:4]:
        assert client.post(url, {"winner": "app"}).status_code == 403, url
    assert {c.resolution for c in SyncConflict.objects.all()} == {"automatic", "open"}


def test_list_shows_open_ones_by_default_and_all_on_request(alice, automatic, open_conflict):
    default = alice.get(reverse("syncapp:conflict-list"))
    assert list(default.context["page"].object_list) == [open_conflict]
    everything = alice.get(reverse("syncapp:conflict-list"), {"show": "all"})
    assert set(everything.context["page"].object_list) == {automatic, open_conflict}


def test_detail_shows_the_field_both_values_and_times_the_strategy_the_winner_and_the_resolution(alice, automatic):
    body = alice.get(reverse("syncapp:conflict-detail", args=[automatic.pk])).content.decode()
    for text in ("phone", "app", "crm", "CRM wins", "Resolved by strategy", "Restore the losing value"):
        assert text in body, text
    assert "Keep the app's value" not in body
    assert body.count(timezone.localtime(automatic.local_modified_at).strftime("%Y-%m-%d %H:%M")) >= 2


def test_restore_puts_the_losing_value_back_and_records_the_resolution(alice, automatic, tenant):
    response = alice.post(reverse("syncapp:conflict-restore", args=[automatic.pk]))
    assert response.status_code == 302
    automatic.refresh_from_db()
    contact = automatic.link.contact
    contact.refresh_from_db()
    assert contact.phone == "app"
    assert automatic.resolution == SyncConflict.Resolution.RESTORED
    assert automatic.resolved_by.username == "alice" and automatic.resolved_at
    assert OutboxEntry.objects.filter(contact=contact, connection=automatic.link.connection).exists()

    again = alice.post(reverse("syncapp:conflict-restore", args=[automatic.pk]), follow=True)
    assert b"Only a conflict the strategy resolved" in again.content


@pytest.mark.parametrize(
    ("winner", "value", "resolution"), [("app", "app", "picked_app"), ("crm", "crm", "picked_crm")]
)
def test_pick_keeps_the_chosen_value_and_records_the_resolution(alice, open_conflict, winner, value, resolution):
    body = alice.get(reverse("syncapp:conflict-detail", args=[open_conflict.pk])).content.decode()
    assert "Keep the app's value" in body and "Keep the CRM's value" in body

    response = alice.post(reverse("syncapp:conflict-pick", args=[open_conflict.pk]), {"winner": winner})
    assert response.status_code == 302
    open_conflict.refresh_from_db()
    contact = open_conflict.link.contact
    contact.refresh_from_db()
    assert contact.phone == value
    assert (open_conflict.winner, open_conflict.resolution) == (winner, resolution)
    assert open_conflict.resolved_by.username == "alice"
    assert OutboxEntry.objects.filter(contact=contact).exists()


def test_pick_with_a_bad_side_changes_nothing(alice, open_conflict):
    response = alice.post(reverse("syncapp:conflict-pick", args=[open_conflict.pk]), {"winner": "both"}, follow=True)
    assert b"Pick &#x27;app&#x27; or &#x27;crm&#x27;" in response.content
    open_conflict.refresh_from_db()
    assert open_conflict.resolution == SyncConflict.Resolution.OPEN


def test_strategy_form_saves_the_strategy_and_the_field_owners(alice, connection):
    prefix = f"policy-{connection.pk}-"
    data = {prefix + "conflict_strategy": "field_priority"}
    data |= {f"{prefix}owner_{name}": "crm" for name in ("email", "first_name", "last_name", "job_title", "pronouns")}
    data[prefix + "owner_phone"] = "app"
    response = alice.post(reverse("syncapp:connection-policy", args=[connection.pk]), data)
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.conflict_strategy == CrmConnection.Strategy.FIELD_PRIORITY
    assert connection.field_priorities["phone"] == "app" and connection.field_priorities["email"] == "crm"

    form = alice.get(reverse("syncapp:conflict-list")).context["policy_forms"][0]
    assert form.initial["conflict_strategy"] == "field_priority" and form.initial["owner_phone"] == "app"


def test_strategy_form_refuses_an_unknown_strategy_or_side(alice, connection):
    prefix = f"policy-{connection.pk}-"
    data = {prefix + "conflict_strategy": "coin_toss", prefix + "owner_phone": "nobody"}
    response = alice.post(reverse("syncapp:connection-policy", args=[connection.pk]), data)
    assert response.status_code == 400
    form = response.context["policy_forms"][0]
    assert "conflict_strategy" in form.errors and "owner_phone" in form.errors
    assert b"Select a valid choice" in response.content
    connection.refresh_from_db()
    assert connection.conflict_strategy == "crm_wins" and connection.field_priorities == {}


def test_connection_conflict_policy_set_validates_and_saves(connection):
    connection_conflict_policy_set(connection=connection, strategy="latest_wins", field_priorities={"email": "app"})
    connection.refresh_from_db()
    assert (connection.conflict_strategy, connection.field_priorities) == ("latest_wins", {"email": "app"})
    with pytest.raises(ValidationError, match="Unknown conflict strategy"):
        connection_conflict_policy_set(connection=connection, strategy="coin_toss")
    with pytest.raises(ValidationError, match="Unknown contact field"):
        connection_conflict_policy_set(connection=connection, strategy="crm_wins", field_priorities={"fax": "app"})
    with pytest.raises(ValidationError, match="must be 'app' or 'crm'"):
        connection_conflict_policy_set(connection=connection, strategy="crm_wins", field_priorities={"phone": "x"})
    connection.refresh_from_db()
    assert connection.conflict_strategy == "latest_wins"
