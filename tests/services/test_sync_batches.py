"""A batch is loaded, planned and written with a constant number of queries, and one refused pair spares the rest."""

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from syncapp.models import Contact, ContactLink, ExcludedRecord, OutboxEntry, SyncRun
from syncapp.services.contacts import contact_create
from syncapp.services.sync import ConnectionSync, connection_sync
from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection
from tests.services.test_sync_cost import half_overlapping

pytestmark = pytest.mark.django_db


def sync(connection, **kwargs):
    run = connection_sync(connection=connection, **kwargs)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return run


def first_sync_queries(settings, size: int) -> int:
    """A first full sync of ``size`` records and ``size`` contacts, half shared, in one batch per pass."""
    settings.SYNC_BATCH_SIZE = size
    tenant = tenant_create(slug=f"first-{size}")
    connection, crm = make_connection(tenant, f"crm-{size}")
    make_connection(tenant, f"other-{size}")  # pulled contacts fan out to it
    half_overlapping(tenant, crm, records=size, contacts=size, page_size=size)
    with CaptureQueriesContext(db) as queries:
        run = sync(connection, full=True)
    assert run.created == size // 2 + size // 2  # the CRM-only records and the app-only contacts
    assert ContactLink.objects.filter(connection=connection, remote_id__isnull=False).count() == size + size // 2
    assert OutboxEntry.objects.filter(connection__account_id=f"other-{size}").count() == 2 * size
    return len(queries)


def test_a_full_sync_makes_as_many_queries_for_a_batch_of_40_as_for_a_batch_of_8(settings):
    assert first_sync_queries(settings, 40) == first_sync_queries(settings, 8)


def webhook_queries(count: int) -> int:
    """A webhook run that pulls an edit of each of ``count`` linked records, with a conflict on each."""
    tenant = tenant_create(slug=f"hook-{count}")
    connection, crm = make_connection(tenant, f"crm-{count}")
    make_connection(tenant, f"other-{count}")
    contacts = [contact_create(tenant=tenant, values={"email": f"c{n}@example.com"}) for n in range(count)]
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    ids = list(ContactLink.objects.filter(connection=connection).values_list("remote_id", flat=True))
    for remote_id, contact in zip(ids, contacts, strict=True):
        crm.user_edit(remote_id, first_name="Crm", phone="+1 555")
        # The app changed the phone too (no push queued): a conflict the CRM wins.
        Contact.objects.filter(pk=contact.pk).update(phone="+1 999")
    with CaptureQueriesContext(db) as queries:
        run = sync(connection, remote_ids=ids)
    assert run.updated == count
    assert Contact.objects.filter(tenant=tenant, first_name="Crm", phone="+1 555").count() == count
    assert run.conflicts == count
    return len(queries)


def test_a_webhook_run_makes_as_many_queries_for_30_records_as_for_3():
    assert webhook_queries(30) == webhook_queries(3)


def test_a_pair_the_database_refuses_leaves_the_rest_of_its_batch_written(tenant, monkeypatch):
    connection, crm = make_connection(tenant)
    crm.page_size = 10
    for n in range(5):
        crm.user_create(email=f"r{n}@example.com", first_name=f"Crm{n}")
    contact_create(tenant=tenant, values={"email": "app@example.com"})
    write_remote = ConnectionSync._write_remote

    def person_takes_an_email_meanwhile(self, pairs):
        # While the CRM is written, a person adds a contact with the email of a record being pulled:
        # the batch's insert breaks the unique constraint, so only that record's pair is refused.
        if not Contact.objects.filter(email="r2@example.com").exists():
            Contact.objects.create(tenant=tenant, email="r2@example.com", first_name="Person")
        return write_remote(self, pairs)

    monkeypatch.setattr(ConnectionSync, "_write_remote", person_takes_an_email_meanwhile)
    run = connection_sync(connection=connection, full=True)

    assert (run.created, run.errors, run.excluded) == (5, 1, 1)  # 4 records pulled, 1 contact pushed
    pulled = Contact.objects.filter(tenant=tenant, first_name__startswith="Crm")
    assert sorted(pulled.values_list("email", flat=True)) == [f"r{n}@example.com" for n in (0, 1, 3, 4)]
    assert Contact.objects.get(email="r2@example.com").first_name == "Person"
    refused = ExcludedRecord.objects.get(connection=connection)
    assert refused.code == ExcludedRecord.Code.REFUSED
    assert refused.reason == "Another contact already uses the email address r2@example.com."
    assert "app@example.com" in {record["email"] for record in crm.live().values()}
    assert ContactLink.objects.filter(connection=connection, remote_id__isnull=False).count() == 5
