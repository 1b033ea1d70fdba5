"""Data migrations, run forward from the schema before them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE, AFTER = ("syncapp", "0002_suppression"), ("syncapp", "0003_contact_email_one_form")


@pytest.mark.django_db(transaction=True)
def test_stored_emails_take_the_one_form_unless_another_live_contact_holds_it():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    apps = executor.loader.project_state([BEFORE]).apps
    Tenant, Contact = apps.get_model("syncapp", "Tenant"), apps.get_model("syncapp", "Contact")
    acme, globex = Tenant.objects.create(slug="acme", name="Acme"), Tenant.objects.create(slug="globex", name="Globex")
    rows = {
        "unicode": Contact.objects.create(tenant=acme, email="ann@bücher.example"),
        "twin": Contact.objects.create(tenant=acme, email="bob@bücher.example"),
        "ascii": Contact.objects.create(tenant=acme, email="bob@xn--bcher-kva.example"),
        "deleted": Contact.objects.create(tenant=acme, email="bob@ｂüｃｈｅｒ.example", deleted_at=timezone.now()),
        "other tenant": Contact.objects.create(tenant=globex, email="bob@bücher.example"),
        "fullwidth": Contact.objects.create(tenant=globex, email="ｃｙ@example.com"),
    }

    executor = MigrationExecutor(connection)
    executor.migrate([AFTER])
    Contact = executor.loader.project_state([AFTER]).apps.get_model("syncapp", "Contact")
    emails = {name: Contact.objects.get(pk=row.pk).email for name, row in rows.items()}
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())  # leave the schema as it was

    assert emails == {
        "unicode": "ann@xn--bcher-kva.example",
        "twin": "bob@bücher.example",  # the live contact with the ASCII spelling keeps the address
        "ascii": "bob@xn--bcher-kva.example",
        "deleted": "bob@xn--bcher-kva.example",
        "other tenant": "bob@xn--bcher-kva.example",
        "fullwidth": "cy@example.com",
    }
