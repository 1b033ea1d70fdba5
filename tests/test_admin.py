"""The admin writes through the services: contacts reach the outbox, deletes are soft, hosts are checked."""

import pytest
from django.contrib.auth import get_user_model

from syncapp.models import Contact, CrmConnection, OutboxEntry
from tests.conftest import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1234")
    client.force_login(user)
    return client


def test_a_contact_added_in_the_admin_is_normalised_and_queued_for_every_crm(admin_client, tenant):
    connection, _ = make_connection(tenant)
    response = admin_client.post(
        "/admin/syncapp/contact/add/",
        {"tenant": tenant.pk, "email": " Ann@Example.COM ", "first_name": "Ann", "last_name": "", "phone": "",
         "job_title": "", "pronouns": ""},
    )  # fmt: skip
    assert response.status_code == 302
    contact = Contact.objects.get()
    assert contact.email == "ann@example.com"
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).exists()


def test_a_duplicate_email_is_a_form_error_and_a_delete_is_soft(admin_client, tenant):
    from syncapp.services.contacts import contact_create

    contact = contact_create(tenant=tenant, values={"email": "taken@example.com"})
    response = admin_client.post(
        "/admin/syncapp/contact/add/",
        {"tenant": tenant.pk, "email": "TAKEN@example.com", "first_name": "", "last_name": "", "phone": "",
         "job_title": "", "pronouns": ""},
    )  # fmt: skip
    assert response.status_code == 200 and "already uses the email address" in response.content.decode()

    admin_client.post(f"/admin/syncapp/contact/{contact.pk}/delete/", {"post": "yes"})
    contact.refresh_from_db()
    assert contact.is_deleted


def test_a_connection_cannot_be_pointed_at_a_host_outside_the_allowed_list(admin_client, tenant):
    connection, _ = make_connection(tenant)
    data = {
        "tenant": tenant.pk, "provider": "memory", "account_id": connection.account_id,
        "api_base_url": "http://169.254.169.254/", "status": "active", "status_message": "",
        "conflict_strategy": "crm_wins", "field_priorities": "{}", "on_crm_delete": "delete_contact",
        "pronouns_state": "unknown", "pronouns_field_key": "", "pronouns_message": "",
    }  # fmt: skip
    response = admin_client.post(f"/admin/syncapp/crmconnection/{connection.pk}/change/", data)
    assert response.status_code == 200 and "CRM_API_ALLOWED_HOSTS" in response.content.decode()
    assert CrmConnection.objects.get().api_base_url == ""


def test_deleting_a_connection_in_the_admin_stops_its_poll(admin_client, tenant):
    from django_q.models import Schedule

    from syncapp.tasks import connection_poll

    connection, _ = make_connection(tenant)
    assert Schedule.objects.filter(name=f"contactsync-poll-{connection.pk}").exists()
    admin_client.post(f"/admin/syncapp/crmconnection/{connection.pk}/delete/", {"post": "yes"})
    assert not CrmConnection.objects.exists()
    assert not Schedule.objects.filter(name__startswith="contactsync-poll-").exists()
    assert connection_poll(connection.pk) is None
