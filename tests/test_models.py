"""Model-level guarantees: encryption at rest, live-email uniqueness, inbox dedupe, key rotation."""

import pytest
from django.db import IntegrityError, transaction

from syncapp import engine
from syncapp.exceptions import CredentialsDecryptionError
from syncapp.models import Contact, CrmConnection, ExcludedRecord, SyncConflict, WebhookEvent
from syncapp.services.contacts import contact_create, contact_delete

pytestmark = pytest.mark.django_db


def test_credentials_are_encrypted_at_rest_and_read_back(connection_and_crm):
    connection, _ = connection_and_crm
    stored = CrmConnection.objects.values_list("credentials_encrypted", flat=True).get(pk=connection.pk)
    assert "secret-token" not in stored
    assert CrmConnection.objects.get(pk=connection.pk).credentials == {"token": "secret-token"}


def test_rotating_the_key_keeps_old_credentials_readable(connection_and_crm, settings):
    connection, _ = connection_and_crm
    settings.SYNC_ENCRYPTION_KEY = "new-key,test-key"
    assert CrmConnection.objects.get(pk=connection.pk).credentials == {"token": "secret-token"}


def test_a_lost_key_is_a_clear_error(connection_and_crm, settings):
    connection, _ = connection_and_crm
    settings.SYNC_ENCRYPTION_KEY = "another-key"
    with pytest.raises(CredentialsDecryptionError, match="SYNC_ENCRYPTION_KEY"):
        CrmConnection.objects.get(pk=connection.pk).credentials  # noqa: B018


def test_the_database_rejects_two_live_contacts_with_one_email_in_any_case(tenant):
    Contact.objects.create(tenant=tenant, email="x@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Contact.objects.create(tenant=tenant, email="X@Example.com")


def test_the_database_rejects_two_webhook_events_with_one_dedupe_key():
    # DESIGN: the inbox is unique on its dedupe key. The store path looks duplicates up first, so only
    # this constraint keeps one row when two deliveries of the same event race past that lookup.
    WebhookEvent.objects.create(provider="hubspot", dedupe_key="hubspot:62515:1:101", body="[]")
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookEvent.objects.create(provider="hubspot", dedupe_key="hubspot:62515:1:101", body="[{}]")
    assert WebhookEvent.objects.count() == 1


def test_a_deleted_contact_frees_its_email_and_other_tenants_are_independent(tenant):
    from syncapp.services.tenants import tenant_create

    first = contact_create(tenant=tenant, values={"email": "x@example.com"})
    contact_delete(contact=first)
    contact_create(tenant=tenant, values={"email": "x@example.com"})
    contact_create(tenant=tenant_create(slug="other"), values={"email": "x@example.com"})
    assert Contact.objects.filter(email="x@example.com").count() == 3


def test_an_api_base_url_outside_the_allowed_hosts_is_refused(tenant, settings):
    from syncapp.exceptions import ValidationError
    from syncapp.services.connections import connection_create

    settings.CRM_API_ALLOWED_HOSTS = ["api.hubapi.com", ".pipedrive.com", "127.0.0.1"]
    for url in (
        "http://169.254.169.254/latest",
        "https://evil.example",
        "ftp://127.0.0.1",
        "https://pipedrive.com.evil.io",
    ):
        with pytest.raises(ValidationError):
            connection_create(tenant=tenant, provider="hubspot", account_id=url, credentials={}, api_base_url=url)
    ok = connection_create(
        tenant=tenant, provider="hubspot", account_id="1", credentials={}, api_base_url="https://acme.pipedrive.com/"
    )
    assert ok.api_base_url == "https://acme.pipedrive.com"


def test_the_models_choices_are_the_engines_names():
    assert tuple(CrmConnection.Strategy.values) == engine.STRATEGIES
    assert set(SyncConflict.Winner.values) == set(ExcludedRecord.Side.values) == {engine.APP, engine.CRM}
    codes = {value for name, value in vars(engine.Exclusion).items() if name.isupper()}
    assert codes == set(ExcludedRecord.Code.values) - {ExcludedRecord.Code.REFUSED}
