"""What people type: control characters and invisible characters are refused with a clear error,
look-alike emails are one address, and a bad CSV row loses none of the good ones."""

import io

import pytest
from django.contrib.auth import get_user_model

from syncapp.exceptions import ValidationError
from syncapp.forms import ContactForm
from syncapp.models import Contact
from syncapp.services.contacts import contact_clean, contact_create, contact_update
from syncapp.services.contacts_csv import contacts_import_csv

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"first_name": "Bad\x00Name"}, "first_name contains the unprintable character U+0000; remove it."),
        ({"job_title": "CTO\x1b[31m"}, "job_title contains the unprintable character U+001B; remove it."),
        ({"phone": "+1 555\x7f"}, "phone contains the unprintable character U+007F; remove it."),
        ({"last_name": "Lo\ud800ve"}, "last_name contains the unprintable character U+D800; remove it."),
        ({"email": "bob\u200b@example.com"}, "email contains the invisible character U+200B; type the address again."),
        ({"email": "\ufeffbob@example.com"}, "email contains the invisible character U+FEFF; type the address again."),
        ({"email": "bob@exa\u202emple.com"}, "email contains the invisible character U+202E; type the address again."),
    ],
)
def test_control_and_invisible_characters_are_refused_with_what_to_fix(values, message):
    with pytest.raises(ValidationError) as refused:
        contact_clean(values)
    assert str(refused.value) == message


def test_line_breaks_and_tabs_in_a_single_line_field_become_one_space():
    assert contact_clean({"job_title": " Head\tof\r\nSales\n", "first_name": "Ann\u2028Lee"}) == {
        "job_title": "Head of Sales",
        "first_name": "Ann Lee",
    }


@pytest.mark.parametrize(
    "spelling",
    ["bob@bücher.example", "BOB@BÜCHER.EXAMPLE", "bob@xn--bcher-kva.example", "ｂｏｂ@ｂüｃｈｅｒ.example"],
)
def test_look_alike_spellings_of_an_email_are_one_address(tenant, spelling):
    contact = contact_create(tenant=tenant, values={"email": "Bob@Bücher.example"})
    assert contact.email == "bob@xn--bcher-kva.example"

    with pytest.raises(ValidationError, match="Another contact already uses the email address"):
        contact_create(tenant=tenant, values={"email": spelling})
    assert contact_update(contact=contact, values={"email": spelling}).email == "bob@xn--bcher-kva.example"


def test_the_contact_form_shows_each_refusal_next_to_its_field(tenant):
    form = ContactForm(
        {"email": "bob\u200b@example.com", "first_name": "A\x01B", "last_name": "", "phone": "", "job_title": "",
         "pronouns": ""},
        tenant_id=tenant.pk,
    )  # fmt: skip
    assert not form.is_valid()
    assert form.errors["email"] == ["email contains the invisible character U+200B; type the address again."]
    assert form.errors["first_name"] == ["first_name contains the unprintable character U+0001; remove it."]


def test_the_admin_refuses_a_control_character(client, tenant):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1234"))
    response = client.post(
        "/admin/syncapp/contact/add/",
        {"tenant": tenant.pk, "email": "ann@example.com", "first_name": "Ann", "last_name": "", "phone": "",
         "job_title": "CTO\x07", "pronouns": ""},
    )  # fmt: skip
    assert response.status_code == 200
    assert "job_title contains the unprintable character U+0007" in response.content.decode()
    assert not Contact.objects.exists()


def test_a_csv_row_with_a_nul_is_reported_and_the_rows_after_it_are_imported(tenant):
    stream = io.BytesIO(
        "email,first_name,last_name,phone,job_title,pronouns\n"
        "ann@example.com,Ann,,,,\n"
        "bad@example.com,Bad\x00Name,,,,\n"
        "zed\u200b@example.com,Zed,,,,\n"
        "cy@example.com,Cy,,,,\n".encode()
    )

    report = contacts_import_csv(tenant=tenant, stream=stream)

    assert report.errors == [
        (3, "first_name contains the unprintable character U+0000; remove it."),
        (4, "email contains the invisible character U+200B; type the address again."),
    ]
    assert sorted(Contact.objects.values_list("email", flat=True)) == ["ann@example.com", "cy@example.com"]
