"""The operator's tools for the suppression list: `manage.py suppression` and the admin."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from syncapp.models import Contact, Suppression
from syncapp.services.contacts import contact_create
from syncapp.services.suppressions import person_forget
from syncapp.services.tenants import tenant_create

pytestmark = pytest.mark.django_db

EMAIL = "ada@example.com"


def run(*args) -> str:
    out = StringIO()
    call_command("suppression", *args, stdout=out)
    return out.getvalue()


def test_add_list_and_lift_by_email(tenant):
    contact_create(tenant=tenant, values={"email": EMAIL})
    other = tenant_create(slug="globex")

    assert "1 app contact(s) erased" in run(
        "add", "--tenant", "acme", "--email", " Ada@Example.com", "--reason", "T-42"
    )
    assert not Contact.objects.exists()
    listing = run("list", "--tenant", "acme")
    assert "Operator" in listing and "T-42" in listing and EMAIL not in listing
    assert run("list", "--tenant", "globex") == "No suppressions.\n"
    with pytest.raises(CommandError, match="No active suppression"):
        run("lift", "--tenant", other.slug, "--email", EMAIL)

    assert "Lifted" in run("lift", "--tenant", "acme", "--email", "ADA@example.com")
    assert run("list", "--tenant", "acme") == "No suppressions.\n"
    assert "lifted" in run("list", "--tenant", "acme", "--all")
    contact_create(tenant=tenant, values={"email": EMAIL})


def test_unknown_tenant_and_empty_email_are_command_errors(tenant):
    with pytest.raises(CommandError, match="No tenant"):
        run("list", "--tenant", "nope")
    with pytest.raises(CommandError, match="empty"):
        run("add", "--tenant", "acme", "--email", "  ")


def test_the_admin_lists_suppressions_without_emails_and_lifts_them(client, tenant):
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR, reason="T-42", by="ops")
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1234")
    client.force_login(root)
    suppression = Suppression.objects.get()

    listing = client.get("/admin/syncapp/suppression/")
    assert listing.status_code == 200 and EMAIL not in listing.content.decode()
    assert client.get(f"/admin/syncapp/suppression/{suppression.pk}/change/").status_code == 200
    assert client.get("/admin/syncapp/suppression/add/").status_code == 403
    answer = client.post(
        "/admin/syncapp/suppression/", {"action": "lift", "_selected_action": [suppression.pk]}, follow=True
    )

    assert "Lifted 1 suppression." in answer.content.decode()
    suppression.refresh_from_db()
    assert (suppression.lifted_by, suppression.lifted_at is not None) == ("root", True)
    contact_create(tenant=tenant, values={"email": EMAIL})
