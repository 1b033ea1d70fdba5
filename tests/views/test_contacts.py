"""The contacts pages: login, tenant isolation, CSRF, and writes through the contact services."""

import pytest
from django.test import Client
from django.urls import reverse

from syncapp.models import Contact, ContactLink, OutboxEntry
from syncapp.services.contacts import contact_create
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def contact(tenant):
    return contact_create(tenant=tenant, values={"email": "ada@example.com", "first_name": "Ada"})


def urls(contact):
    return [
        reverse("syncapp:contact-list"),
        reverse("syncapp:contact-new"),
        reverse("syncapp:contact-detail", args=[contact.pk]),
        reverse("syncapp:contact-edit", args=[contact.pk]),
        reverse("syncapp:contact-delete", args=[contact.pk]),
    ]


def test_every_page_requires_login(contact):
    for url in urls(contact):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_another_tenants_contact_is_a_404_and_the_list_shows_only_their_own(contact, bob):
    for url in urls(contact)[2:]:
        assert bob.get(url).status_code == 404, url
    for url in urls(contact)[3:]:
        assert bob.post(url, {"email": "x@example.com"}).status_code == 404, url
    assert Contact.objects.get(pk=contact.pk).deleted_at is None
    response = bob.get(reverse("syncapp:contact-list"))
    assert response.status_code == 200 and b"ada@example.com" not in response.content


def test_every_post_needs_the_csrf_token(tenant, contact):
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    for url in urls(contact)[1:]:
        assert client.post(url, {"email": "new@example.com"}).status_code == 403, url
    contact.refresh_from_db()
    assert contact.deleted_at is None and Contact.objects.count() == 1


def test_list_searches_by_email_or_name_and_paginates(tenant, alice):
    for i in range(30):
        contact_create(tenant=tenant, values={"email": f"user{i:02}@example.com", "last_name": f"Name{i:02}"})
    contact_create(tenant=tenant, values={"email": "grace@navy.example", "first_name": "Grace", "last_name": "Hopper"})

    first = alice.get(reverse("syncapp:contact-list"))
    assert first.context["page"].paginator.count == 31 and len(first.context["page"].object_list) == 25
    second = alice.get(reverse("syncapp:contact-list"), {"page": 2})
    assert len(second.context["page"].object_list) == 6

    by_name = alice.get(reverse("syncapp:contact-list"), {"q": "hopper"})
    assert [c.email for c in by_name.context["page"].object_list] == ["grace@navy.example"]
    by_email = alice.get(reverse("syncapp:contact-list"), {"q": "user07@"})
    assert [c.email for c in by_email.context["page"].object_list] == ["user07@example.com"]


def test_a_search_of_1500_words_is_cut_to_the_limits_and_says_so(tenant, alice):
    contact_create(tenant=tenant, values={"email": "grace@navy.example", "first_name": "Grace", "last_name": "Hopper"})
    query = " ".join(["grace", "hopper"] + [f"word{i}" for i in range(1500)])

    response = alice.get(reverse("syncapp:contact-list"), {"q": query})

    assert response.status_code == 200
    kept = response.context["query"].split()
    assert kept == ["grace", "hopper", *(f"word{i}" for i in range(8))]
    assert not response.context["page"].object_list  # every kept word must match, and word0 does not
    assert "Your search was shortened to 10 different words" in response.content.decode()


def test_a_long_search_word_is_cut_and_a_short_search_is_not(tenant, alice):
    contact_create(tenant=tenant, values={"email": "grace@navy.example", "first_name": "Grace"})

    long_word = alice.get(reverse("syncapp:contact-list"), {"q": "x" * 5000})
    assert long_word.status_code == 200 and len(long_word.context["query"]) == 200
    assert "Your search was shortened" in long_word.content.decode()

    repeated = alice.get(reverse("syncapp:contact-list"), {"q": " grace grace\tGRACE "})
    assert repeated.context["query"] == "grace GRACE"
    assert [c.email for c in repeated.context["page"].object_list] == ["grace@navy.example"]
    assert "shortened" not in repeated.content.decode()


def test_a_search_with_control_characters_is_not_a_500(tenant, alice):
    contact_create(tenant=tenant, values={"email": "grace@navy.example", "first_name": "Grace"})

    response = alice.get(reverse("syncapp:contact-list"), {"q": "gra\x00ce\x7f\x1b"})

    assert response.status_code == 200
    assert [c.email for c in response.context["page"].object_list] == ["grace@navy.example"]


def test_create_goes_through_the_service_and_queues_a_push(tenant, alice):
    connection, _ = make_connection(tenant)
    response = alice.post(reverse("syncapp:contact-new"), {"email": " New@Example.com ", "first_name": "New"})
    contact = Contact.objects.get(email="new@example.com")
    assert response.status_code == 302 and response["Location"] == reverse("syncapp:contact-detail", args=[contact.pk])
    assert contact.tenant == tenant and contact.field_modified_at
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).exists()


def test_edit_goes_through_the_service_and_queues_a_push(tenant, alice, contact):
    connection, _ = make_connection(tenant)
    assert not OutboxEntry.objects.filter(connection=connection).exists()
    response = alice.get(reverse("syncapp:contact-edit", args=[contact.pk]))
    assert response.context["form"].initial["first_name"] == "Ada"

    response = alice.post(
        reverse("syncapp:contact-edit", args=[contact.pk]), {"email": "ada@example.com", "job_title": "CTO"}
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.job_title == "CTO" and contact.first_name == ""
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).count() == 1


@pytest.mark.parametrize("url_name", ["syncapp:contact-new", "syncapp:contact-edit"])
def test_an_invalid_email_or_one_in_use_is_shown_on_the_form(tenant, alice, contact, url_name):
    other = contact_create(tenant=tenant, values={"email": "grace@example.com"})
    args = [other.pk] if url_name == "syncapp:contact-edit" else []
    url = reverse(url_name, args=args)

    response = alice.post(url, {"email": "not-an-email"})
    assert response.status_code == 200
    assert "is not a valid email address" in str(response.context["form"].errors["email"])
    assert b"is not a valid email address" in response.content

    response = alice.post(url, {"email": "ADA@example.com"})
    assert response.status_code == 200
    assert "already uses the email address" in str(response.context["form"].errors["email"])
    assert Contact.objects.filter(email__iexact="ada@example.com").count() == 1
    other.refresh_from_db()
    assert other.email == "grace@example.com"


def test_an_email_of_a_deleted_contact_may_be_reused(tenant, alice, contact):
    alice.post(reverse("syncapp:contact-delete", args=[contact.pk]))
    response = alice.post(reverse("syncapp:contact-new"), {"email": "ada@example.com"})
    assert response.status_code == 302
    assert Contact.objects.filter(email="ada@example.com", deleted_at__isnull=True).count() == 1


def test_delete_asks_first_then_soft_deletes_through_the_service(tenant, alice, contact):
    connection, _ = make_connection(tenant)
    url = reverse("syncapp:contact-delete", args=[contact.pk])
    confirm = alice.get(url)
    assert confirm.status_code == 200 and b'method="post"' in confirm.content
    contact.refresh_from_db()
    assert contact.deleted_at is None

    response = alice.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("syncapp:contact-list")
    contact.refresh_from_db()
    assert contact.deleted_at is not None
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).exists()
    assert alice.get(reverse("syncapp:contact-detail", args=[contact.pk])).status_code == 404
    assert not alice.get(reverse("syncapp:contact-list")).context["page"].object_list


def test_detail_shows_each_connections_link_and_the_pending_push(tenant, alice, contact):
    hub, _ = make_connection(tenant, "hub-1")
    pipe, _ = make_connection(tenant, "pipe-1")
    ContactLink.objects.create(
        connection=hub, contact=contact, remote_id="R-42", status=ContactLink.Status.ERROR, last_error="boom: 400"
    )
    OutboxEntry.objects.create(connection=pipe, contact=contact)

    response = alice.get(reverse("syncapp:contact-detail", args=[contact.pk]))
    body = response.content.decode()
    rows = {row["connection"].account_id: row for row in response.context["rows"]}
    assert rows["hub-1"]["link"].remote_id == "R-42" and rows["hub-1"]["pending"] == 0
    assert rows["pipe-1"]["link"] is None and rows["pipe-1"]["pending"] == 1
    for text in ("hub-1", "pipe-1", "R-42", "boom: 400", "Error", "(not linked)", "A push is pending"):
        assert text in body, text


def test_a_member_of_no_tenant_is_refused(db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user(username="loner", password="pw-loner-123")
    client = Client()
    client.login(username="loner", password="pw-loner-123")
    assert client.get(reverse("syncapp:contact-list")).status_code == 403
