"""Store every contact's email in the one form normalize_email gives (IDNA domain, NFKC local part).

Emails were trimmed and lower-cased only, so ``bob@bücher.example`` and ``bob@xn--bcher-kva.example``
could be two contacts. A live contact whose new form another live contact of its tenant already
holds keeps its spelling: merging two people is a person's decision (the contacts page shows both).
"""

from django.db import migrations

from syncapp.engine import normalize_email


def emails_normalize(apps, schema_editor):
    Contact = apps.get_model("syncapp", "Contact")
    live_emails = set(
        Contact.objects.filter(deleted_at__isnull=True).exclude(email="").values_list("tenant_id", "email")
    )
    for contact in Contact.objects.exclude(email="").only("pk", "tenant_id", "email", "deleted_at").iterator():
        email = normalize_email(contact.email)
        if email == contact.email:
            continue
        if contact.deleted_at is None:
            if (contact.tenant_id, email) in live_emails:
                continue
            live_emails.add((contact.tenant_id, email))
        Contact.objects.filter(pk=contact.pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [("syncapp", "0002_suppression")]

    operations = [migrations.RunPython(emails_normalize, migrations.RunPython.noop)]
