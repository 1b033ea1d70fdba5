"""The suppression list: a privacy deletion keeps the person out of the tenant's app, from every CRM."""

import hashlib
import io
import json

import pytest
from django.db import connection as db_connection
from django.test import Client, TestCase

from syncapp import tasks
from syncapp.exceptions import ValidationError
from syncapp.models import Contact, ContactLink, ExcludedRecord, Suppression
from syncapp.services.contacts import contact_create, contact_update
from syncapp.services.contacts_csv import contacts_import_csv
from syncapp.services.suppressions import (
    SUPPRESSED_MESSAGE,
    email_hash,
    person_forget,
    suppression_lift,
)
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from syncapp.services.webhooks import webhook_events_process
from tests.helpers import make_connection, queued_tasks
from tests.providers.hubspot.webhook_adapter import configure, hubspot_connection, load_events, sign_v3

pytestmark = pytest.mark.django_db

EMAIL = "ada@example.com"


@pytest.fixture(autouse=True)
def hubspot_webhooks(settings):
    configure(settings)


@pytest.fixture
def hubspot(tenant):
    return hubspot_connection(tenant)


@pytest.fixture
def pipedrive(tenant):
    """A second CRM of the same tenant (duplicates allowed, like Pipedrive)."""
    return make_connection(tenant, "pd-1", unique_emails=False)


def post_signed(*events: dict):
    body = json.dumps(list(events)).encode()
    return Client().post("/webhooks/hubspot/", body, content_type="application/json", headers=sign_v3(body))


def privacy_delete(hubspot_pair, remote_id: str, broker) -> None:
    """HubSpot erases the record and notifies it, signed; the inbox processes it and its queued archives run."""
    connection, crm = hubspot_pair
    crm.records.pop(remote_id)
    (payload,) = load_events("contact.privacyDeletion", objectId=int(remote_id))
    assert post_signed(payload).status_code == 200
    queued_tasks(broker)  # the processing task the view queued: run here instead
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert webhook_events_process(connection=connection) == 1
    for task in queued_tasks(broker):
        assert task["func"] == "syncapp.tasks.crm_records_archive"
        tasks.crm_records_archive(*task["args"])


@pytest.fixture
def synced(tenant, hubspot, pipedrive):
    """Ada in the app, linked to a HubSpot and a Pipedrive record; returns their ids."""
    hubspot_id = hubspot[1].user_create(email=EMAIL, first_name="Ada")
    pipedrive_id = pipedrive[1].user_create(email=EMAIL.upper(), first_name="Ada")
    connection_sync(connection=hubspot[0], full=True)
    connection_sync(connection=pipedrive[0], full=True)
    contact = Contact.objects.get(tenant=tenant, email=EMAIL)
    assert ContactLink.objects.filter(contact=contact).count() == 2
    return hubspot_id, pipedrive_id


def excluded_as_suppressed(connection) -> list[ExcludedRecord]:
    return list(ExcludedRecord.objects.filter(connection=connection, code=ExcludedRecord.Code.SUPPRESSED))


def test_a_signed_privacy_deletion_erases_the_person_and_suppresses_a_keyed_hash_of_the_email(
    tenant, hubspot, pipedrive, synced, broker
):
    hubspot_id, pipedrive_id = synced

    privacy_delete(hubspot, hubspot_id, broker)

    assert not Contact.objects.filter(tenant=tenant).exists()
    (suppression,) = Suppression.objects.all()
    assert (suppression.tenant, suppression.source, suppression.provider, suppression.remote_id) == (
        tenant,
        Suppression.Source.PRIVACY_DELETION,
        "hubspot",
        hubspot_id,
    )
    assert suppression.email_hash == email_hash(tenant_id=tenant.pk, email=EMAIL)
    assert suppression.email_hash != hashlib.sha256(EMAIL.encode()).hexdigest()
    # The email is nowhere in the suppression table.
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Suppression._meta.db_table}")  # noqa: S608
        assert EMAIL not in repr(cursor.fetchall()).lower()
    # Like any app delete, the person's record in the tenant's other CRM is archived.
    assert pipedrive_id not in pipedrive[1].live()


def test_the_person_comes_back_from_no_crm_by_listing_webhook_or_poll(tenant, hubspot, pipedrive, synced, broker):
    hubspot_id, _ = synced
    privacy_delete(hubspot, hubspot_id, broker)

    # Someone adds the person again in each CRM.
    again_pd = pipedrive[1].user_create(email=" Ada@Example.com ", first_name="Ada")
    again_hs = hubspot[1].user_create(email=EMAIL, first_name="Ada")
    connection_sync(connection=pipedrive[0])  # poll
    connection_sync(connection=pipedrive[0], full=True)  # listing
    (creation,) = load_events("contact.creation", objectId=int(again_hs))
    assert post_signed(creation).status_code == 200
    webhook_events_process(connection=hubspot[0])  # webhook
    connection_sync(connection=hubspot[0], full=True)  # listing

    assert not Contact.objects.filter(tenant=tenant).exists()
    for connection, record_id in ((pipedrive[0], again_pd), (hubspot[0], again_hs)):
        (excluded,) = excluded_as_suppressed(connection)
        assert (excluded.side, excluded.record_id, excluded.email) == ("crm", record_id, "")
        assert excluded.reason.startswith("Suppressed by a privacy request (CRM privacy deletion of hubspot record")
    # Nothing was pushed into either CRM for the suppressed person.
    assert sorted(hubspot[1].live()) == [again_hs] and sorted(pipedrive[1].live()) == [again_pd]


def test_another_tenant_with_the_same_email_is_unaffected(tenant, hubspot, synced, broker):
    hubspot_id, _ = synced
    other = tenant_create(slug="globex")
    other_connection, other_crm = make_connection(other, "globex-crm")
    other_crm.user_create(email=EMAIL, first_name="Ada")

    privacy_delete(hubspot, hubspot_id, broker)
    connection_sync(connection=other_connection, full=True)

    assert Contact.objects.filter(tenant=other, email=EMAIL).exists()
    assert not excluded_as_suppressed(other_connection)
    assert email_hash(tenant_id=other.pk, email=EMAIL) != email_hash(tenant_id=tenant.pk, email=EMAIL)
    contact_create(tenant=other, values={"email": "grace@example.com"})


def test_lifting_a_suppression_brings_the_person_back_on_the_next_sync(tenant, hubspot, pipedrive, synced, broker):
    hubspot_id, _ = synced
    privacy_delete(hubspot, hubspot_id, broker)
    pipedrive[1].user_create(email=EMAIL, first_name="Ada")
    connection_sync(connection=pipedrive[0])
    assert excluded_as_suppressed(pipedrive[0])

    assert suppression_lift(tenant=tenant, email=" ADA@example.com", by="ops") == 1
    assert suppression_lift(tenant=tenant, email=EMAIL, by="ops") == 0
    # An incremental sync: the record did not change since, yet it is read again and created.
    run = connection_sync(connection=pipedrive[0])

    assert run.created == 1
    assert Contact.objects.get(tenant=tenant, email=EMAIL).first_name == "Ada"
    assert not excluded_as_suppressed(pipedrive[0])
    (lifted,) = Suppression.objects.all()
    assert lifted.lifted_by == "ops" and lifted.lifted_at is not None
    contact_update(contact=Contact.objects.get(email=EMAIL), values={"first_name": "Augusta"})


def test_an_app_create_or_readdress_with_a_suppressed_email_is_refused(tenant):
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR, by="ops")
    grace = contact_create(tenant=tenant, values={"email": "grace@example.com"})

    with pytest.raises(ValidationError, match="privacy deletion"):
        contact_create(tenant=tenant, values={"email": " Ada@Example.COM"})
    with pytest.raises(ValidationError) as refused:
        contact_update(contact=grace, values={"email": EMAIL})
    assert str(refused.value) == SUPPRESSED_MESSAGE
    assert list(Contact.objects.values_list("email", flat=True)) == ["grace@example.com"]


def test_the_web_form_shows_the_refusal(tenant, client):
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR, by="ops")
    client.login(username="alice", password="pw-alice-123")

    answer = client.post("/contacts/new/", {"email": EMAIL, "first_name": "Ada"})

    assert answer.status_code == 200
    assert "privacy deletion" in answer.content.decode()
    assert not Contact.objects.exists()


def test_operator_forget_erases_the_contact_and_its_exclusions(tenant, pipedrive, django_capture_on_commit_callbacks):
    connection, crm = pipedrive
    crm.user_create(email=EMAIL, first_name="Ada")
    duplicate = crm.user_create(email=EMAIL, first_name="Ada again")
    connection_sync(connection=connection, full=True)
    assert ExcludedRecord.objects.filter(email=EMAIL).exists()  # the duplicate, listed with its email

    with django_capture_on_commit_callbacks() as callbacks:
        erased = person_forget(tenant=tenant, emails=[EMAIL.upper()], source=Suppression.Source.OPERATOR, by="ops")

    assert erased == 1
    assert not Contact.objects.exists()
    assert not ExcludedRecord.objects.filter(email=EMAIL).exists()
    assert len(callbacks) == 1  # the archive of the linked record in that CRM
    connection_sync(connection=connection, full=True)
    assert {record.record_id for record in excluded_as_suppressed(connection)} >= {duplicate}


def test_hashes_are_keyed_and_survive_a_key_rotation(tenant, settings):
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR)
    stored = Suppression.objects.get().email_hash
    assert stored == email_hash(tenant_id=tenant.pk, email=" ADA@example.com ")
    assert stored != hashlib.sha256(EMAIL.encode()).hexdigest()
    assert stored != email_hash(tenant_id=tenant.pk, email=EMAIL, secret="another-key")

    settings.SYNC_ENCRYPTION_KEY = "new-key,test-key"  # rotated the documented way: the old key kept
    with pytest.raises(ValidationError):
        contact_create(tenant=tenant, values={"email": EMAIL})
    settings.SYNC_ENCRYPTION_KEY = "new-key"  # the old key dropped: its suppressions no longer match
    contact_create(tenant=tenant, values={"email": EMAIL})


def test_a_csv_import_rejects_the_suppressed_row_and_keeps_the_others(tenant):
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR, by="ops")
    csv_text = "email,first_name,last_name,phone,job_title,pronouns\nada@example.com,Ada,,,,\ngrace@example.com,,,,,\n"

    report = contacts_import_csv(tenant=tenant, stream=io.BytesIO(csv_text.encode()))

    assert report.created == 1
    assert report.errors == [(2, SUPPRESSED_MESSAGE)]
    assert list(Contact.objects.values_list("email", flat=True)) == ["grace@example.com"]


def test_the_status_page_lists_a_suppressed_record_with_its_reason_and_no_email(tenant, pipedrive, client):
    connection, crm = pipedrive
    person_forget(tenant=tenant, emails=[EMAIL], source=Suppression.Source.OPERATOR, by="ops")
    record_id = crm.user_create(email=EMAIL, first_name="Ada")
    connection_sync(connection=connection, full=True)
    client.login(username="alice", password="pw-alice-123")

    page = client.get("/").content.decode()

    assert "Suppressed by a privacy request (Operator" in page
    assert f"<td>{record_id}</td>" in page
    assert EMAIL not in page
