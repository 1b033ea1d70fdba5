"""The webhook inbox: recording routes events by account, processing re-reads and converges."""

import json

import pytest
from django.db import IntegrityError
from django_q.models import Schedule

from syncapp.models import Contact, ContactLink, CrmConnection, ExcludedRecord, OutboxEntry, SyncConflict, WebhookEvent
from syncapp.providers.base.webhooks import WebhookNotice
from syncapp.providers.hubspot.webhooks import HubspotWebhookHandler
from syncapp.services import webhooks as webhooks_service
from syncapp.services.connections import connection_lock
from syncapp.services.contacts import contact_create, contact_update
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from syncapp.services.webhooks import (
    REDACTED_BODY,
    webhook_event_record,
    webhook_events_process,
    webhook_events_retry,
)
from tests.providers.hubspot.webhook_adapter import configure, hubspot_connection, load_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hubspot_webhooks(settings):
    configure(settings)


@pytest.fixture
def hubspot(tenant):
    return hubspot_connection(tenant)


def receive(*events: dict) -> list[WebhookEvent]:
    notices = HubspotWebhookHandler().parse(json.dumps(list(events)).encode())
    return webhook_event_record(provider="hubspot", notices=notices)


def event(name: str, **changes) -> dict:
    (payload,) = load_events(name, **changes)
    return payload


def linked_contact(tenant, connection, crm, email="ada@example.com") -> tuple[Contact, str]:
    """Return an app contact pushed to the CRM, and its CRM id."""
    contact = contact_create(tenant=tenant, values={"email": email})
    connection_sync(connection=connection, trigger="push")
    return contact, ContactLink.objects.get(contact=contact).remote_id


# Recording ------------------------------------------------------------------------------------


def test_events_are_routed_to_the_connection_of_their_portal(tenant, hubspot):
    connection, _ = hubspot
    other, _ = hubspot_connection(tenant_create(slug="globex"), "777")

    mine, theirs = receive(event("contact.creation"), event("contact.creation", portalId=777))

    assert (mine.connection, theirs.connection) == (connection, other)
    assert {mine.status, theirs.status} == {WebhookEvent.Status.PENDING}


def test_a_duplicate_is_a_no_op(hubspot):
    (first,) = receive(event("contact.propertyChange"))
    assert receive(event("contact.propertyChange", attemptNumber=2)) == []
    assert receive(event("contact.propertyChange"), event("contact.propertyChange")) == []
    assert list(WebhookEvent.objects.all()) == [first]


def test_a_new_event_twice_in_one_delivery_is_stored_and_returned_once(hubspot):
    (stored,) = receive(event("contact.creation"), event("contact.creation"))

    assert list(WebhookEvent.objects.all()) == [stored]
    assert stored.status == WebhookEvent.Status.PENDING


def test_an_event_the_insert_skipped_is_an_error_not_a_silent_loss(hubspot, monkeypatch):
    # SQLite's INSERT OR IGNORE skips a row failing NOT NULL or CHECK as silently as a duplicate.
    monkeypatch.setattr(WebhookEvent.objects, "bulk_create", lambda objs, **options: [])

    with pytest.raises(IntegrityError, match="1 hubspot webhook event"):
        receive(event("contact.creation"))

    assert not WebhookEvent.objects.exists()


def test_a_concurrent_delivery_storing_the_event_first_leaves_one_row(hubspot, monkeypatch):
    # Two deliveries of one event both miss it in the duplicate lookup; the other one inserts first.
    connection, _ = hubspot
    insert = WebhookEvent.objects.bulk_create

    def racing_insert(objs, **options):
        objs = list(objs)
        for obj in objs:
            WebhookEvent.objects.create(
                provider=obj.provider, connection=obj.connection, dedupe_key=obj.dedupe_key, body=obj.body
            )
        return insert(objs, **options)

    monkeypatch.setattr(WebhookEvent.objects, "bulk_create", racing_insert)

    (returned,) = receive(event("contact.creation"))

    stored = WebhookEvent.objects.get()
    assert returned == stored
    assert (stored.connection, stored.status) == (connection, WebhookEvent.Status.PENDING)


def test_unknown_account_is_ignored_and_never_reaches_another_tenant(tenant, hubspot):
    _, crm = hubspot
    remote_id = crm.user_create(email="stranger@example.com")

    (stored,) = receive(event("contact.creation", portalId=999, objectId=int(remote_id)))

    assert (stored.connection, stored.status) == (None, WebhookEvent.Status.IGNORED)
    assert stored.last_error == "No hubspot connection for account 999; not applied to any tenant."
    assert not Contact.objects.exists()


def test_unsupported_event_types_and_disconnected_connections_are_ignored(hubspot):
    connection, _ = hubspot
    (association,) = receive(event("contact.associationChange"))
    assert (association.connection, association.status) == (connection, WebhookEvent.Status.IGNORED)
    assert "contact.associationChange" in association.last_error

    connection.status = CrmConnection.Status.DISCONNECTED
    connection.save(update_fields=["status"])
    (late,) = receive(event("contact.creation"))
    assert late.status == WebhookEvent.Status.IGNORED


def test_dedupe_keys_are_scoped_to_the_connection_receiving_the_event(tenant, hubspot):
    connection, _ = hubspot
    other, _ = hubspot_connection(tenant_create(slug="globex"), "777")

    def record(key, account_id, *, url_of=None):
        notice = WebhookNotice(dedupe_key=key, account_id=account_id, event_type="contact.creation", payload={})
        return webhook_event_record(provider="hubspot", notices=[notice], connection=url_of)

    (mine,) = record("same-event", "62515")
    (theirs,) = record("same-event", "777")
    # Posted to Globex's URL claiming Acme's account first: stored and ignored in Globex's scope.
    (claimed,) = record("next-event", "62515", url_of=other)
    (genuine,) = record("next-event", "62515")

    assert (mine.connection, mine.dedupe_key) == (connection, f"connection-{connection.pk}/same-event")
    assert (theirs.connection, theirs.dedupe_key) == (other, f"connection-{other.pk}/same-event")
    assert (claimed.connection, claimed.status, claimed.dedupe_key) == (
        None,
        WebhookEvent.Status.IGNORED,
        f"connection-{other.pk}/next-event",
    )
    assert (genuine.connection, genuine.status) == (connection, WebhookEvent.Status.PENDING)
    assert record("same-event", "62515") == record("next-event", "62515") == []  # redeliveries


def test_an_event_of_an_unknown_account_is_scoped_to_that_account(hubspot):
    (unknown,) = receive(event("contact.creation", portalId=999))
    assert unknown.dedupe_key.startswith("account-999/hubspot:")


def test_a_key_too_long_for_the_column_is_hashed_within_its_scope(hubspot):
    connection, _ = hubspot
    notice = WebhookNotice(dedupe_key="x" * 300, account_id="62515", event_type="contact.creation", payload={})
    (stored,) = webhook_event_record(provider="hubspot", notices=[notice])
    assert stored.dedupe_key.startswith(f"connection-{connection.pk}/sha256-") and len(stored.dedupe_key) <= 255


# Processing -----------------------------------------------------------------------------------


def test_processing_reads_the_crm_and_converges_whatever_the_order(tenant, hubspot):
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com", first_name="Ada")
    crm.user_edit(remote_id, first_name="Augusta")
    object_id = int(remote_id)
    # The property change arrives before the creation, and the creation twice.
    receive(event("contact.propertyChange", objectId=object_id, propertyName="firstname", propertyValue="Augusta"))
    receive(event("contact.creation", objectId=object_id), event("contact.creation", objectId=object_id, eventId=9))

    assert webhook_events_process(connection=connection) == 3

    contact = Contact.objects.get(tenant=tenant)
    assert (contact.email, contact.first_name) == ("ada@example.com", "Augusta")
    assert crm.calls.count("read_many") == 1
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {(WebhookEvent.Status.PROCESSED, 1)}
    assert webhook_events_process(connection=connection) == 0


def test_deletion_and_restore_follow_the_crm_state(tenant, hubspot):
    connection, crm = hubspot
    contact, remote_id = linked_contact(tenant, connection, crm)

    crm.user_delete(remote_id)
    receive(event("contact.deletion", objectId=int(remote_id)))
    webhook_events_process(connection=connection)
    contact.refresh_from_db()
    assert contact.is_deleted

    crm.user_restore(remote_id)
    receive(event("contact.restore", objectId=int(remote_id)))
    webhook_events_process(connection=connection)
    contact.refresh_from_db()
    assert not contact.is_deleted


def test_merge_repoints_the_link_to_the_survivor(tenant, hubspot):
    connection, crm = hubspot
    contact, merged_id = linked_contact(tenant, connection, crm)
    survivor = crm.user_create(email="ada.lovelace@example.com", first_name="Ada")
    crm.user_merge(survivor, merged_id)

    winner = int(survivor)
    receive(
        event(
            "contact.merge",
            objectId=winner,
            primaryObjectId=winner,
            newObjectId=winner,
            mergedObjectIds=[int(merged_id)],
        )
    )
    webhook_events_process(connection=connection)

    assert ContactLink.objects.get(contact=contact).remote_id == survivor
    contact.refresh_from_db()
    assert (contact.email, contact.first_name, contact.is_deleted) == ("ada.lovelace@example.com", "Ada", False)


def test_privacy_deletion_purges_the_contact_and_redacts_stored_bodies(tenant, hubspot):
    connection, crm = hubspot
    contact, remote_id = linked_contact(tenant, connection, crm)
    kept, kept_id = linked_contact(tenant, connection, crm, email="grace@example.com")
    object_id = int(remote_id)
    crm.user_edit(remote_id, first_name="Ada")
    receive(event("contact.propertyChange", objectId=object_id, propertyName="firstname", propertyValue="Ada"))
    webhook_events_process(connection=connection)
    link = ContactLink.objects.get(contact=contact)
    SyncConflict.objects.create(link=link, field="phone", strategy="crm_wins", resolution="automatic")
    contact_update(contact=contact, values={"phone": "555"})  # leaves an outbox row
    ExcludedRecord.objects.create(connection=connection, side="crm", record_id=remote_id, code="no_email", reason="x")
    receive(event("contact.propertyChange", objectId=int(kept_id), propertyName="phone", propertyValue="1"))

    # HubSpot erases the record and sends both events, possibly in one batch.
    crm.records.pop(remote_id)
    receive(event("contact.deletion", objectId=object_id), event("contact.privacyDeletion", objectId=object_id))
    webhook_events_process(connection=connection)

    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert not ContactLink.objects.filter(pk=link.pk).exists()
    assert not SyncConflict.objects.exists()
    assert not OutboxEntry.objects.filter(contact_id=contact.pk).exists()
    assert not ExcludedRecord.objects.filter(record_id=remote_id).exists()
    bodies = [json.loads(body) for body in WebhookEvent.objects.values_list("body", flat=True)]
    assert bodies.count(json.loads(REDACTED_BODY)) == 3  # the first property change, the deletion and itself
    assert [body["objectId"] for body in bodies if "objectId" in body] == [int(kept_id)]
    assert Contact.objects.filter(pk=kept.pk).exists()
    assert crm.live_records() and all(record.id == kept_id for record in crm.live_records())
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}


def test_a_failed_sync_marks_the_events_failed_and_schedules_a_retry(tenant, hubspot, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com")
    receive(event("contact.creation", objectId=int(remote_id)))
    crm.failures = ["before"]

    assert webhook_events_process(connection=connection) == 0

    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts) == (WebhookEvent.Status.FAILED, 1)
    assert "503" in stored.last_error
    assert Schedule.objects.filter(name=f"contactsync-webhooks-retry-{connection.pk}").exists()

    crm.failures = ["before"]
    webhook_events_process(connection=connection)
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (WebhookEvent.Status.FAILED, 2)
    assert webhook_events_process(connection=connection) == 0  # out of attempts
    assert not Contact.objects.exists()

    assert webhook_events_retry() == 1
    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.last_error) == (WebhookEvent.Status.PENDING, 0, "")
    assert webhook_events_process(connection=connection) == 1
    assert Contact.objects.filter(email="ada@example.com").exists()


def test_events_whose_reads_were_applied_are_processed_while_the_outbox_finishes_their_writes(tenant, hubspot):
    # Issue 12 (review 2): a write the CRM refused for now failed the events, which were applied already.
    connection, crm = hubspot
    contact, remote_id = linked_contact(tenant, connection, crm)
    crm.busy_values = {"busy"}
    contact_update(contact=contact, values={"phone": "busy"})
    crm.user_edit(remote_id, first_name="Augusta")
    receive(event("contact.propertyChange", objectId=int(remote_id), propertyName="firstname"))

    assert webhook_events_process(connection=connection) == 1

    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.last_error) == (WebhookEvent.Status.PROCESSED, "")
    contact.refresh_from_db()
    assert contact.first_name == "Augusta"
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).exists()
    assert Schedule.objects.filter(name=f"contactsync-push-retry-{connection.pk}").exists()
    assert not Schedule.objects.filter(name=f"contactsync-webhooks-retry-{connection.pk}").exists()


def test_events_stay_pending_while_another_sync_runs(hubspot):
    connection, crm = hubspot
    receive(event("contact.creation", objectId=int(crm.user_create(email="ada@example.com"))))

    with connection_lock(connection):
        assert webhook_events_process(connection=connection) == 0

    stored = WebhookEvent.objects.get()
    assert (stored.status, stored.attempts) == (WebhookEvent.Status.PENDING, 0)
    assert Schedule.objects.filter(name=f"contactsync-webhooks-retry-{connection.pk}").exists()
    assert webhook_events_process(connection=connection) == 1


def test_processing_touches_only_its_own_connection(tenant, hubspot):
    connection, _ = hubspot
    other, other_crm = hubspot_connection(tenant_create(slug="globex"), "777")
    receive(event("contact.creation", portalId=777, objectId=int(other_crm.user_create(email="g@example.com"))))

    assert webhook_events_process(connection=connection) == 0
    assert webhook_events_process(connection=other) == 1
    assert list(Contact.objects.values_list("tenant__slug", flat=True)) == ["globex"]


def stored_event(connection, key: str, payload: dict) -> WebhookEvent:
    """Store an event as an older release did, without today's checks on its payload."""
    return WebhookEvent.objects.create(
        provider="hubspot", connection=connection, dedupe_key=key, body=json.dumps(payload)
    )


def test_a_malformed_stored_event_fails_alone_and_the_others_are_applied(tenant, hubspot, settings):
    # The example: a merge naming mergedObjectIds 5, processed with a valid event from another delivery.
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com")
    poison = stored_event(connection, "old-1", event("contact.merge", mergedObjectIds=5))
    broken = stored_event(connection, "old-2", {"subscriptionType": "contact.creation", "objectId": {"id": 1}})
    receive(event("contact.creation", objectId=int(remote_id)))

    assert webhook_events_process(connection=connection) == 1

    assert Contact.objects.get(tenant=tenant).email == "ada@example.com"
    reasons = {}
    for bad, reason in ((poison, "mergedObjectIds must be a list of ids, not 5."), (broken, "objectId must be")):
        bad.refresh_from_db()
        reasons[bad.pk] = bad.last_error
        assert (bad.status, bad.attempts) == (WebhookEvent.Status.FAILED, settings.WEBHOOK_MAX_ATTEMPTS)
        assert bad.last_error.startswith("Rejected as malformed: ") and reason in bad.last_error
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED).count() == 1
    assert webhook_events_process(connection=connection) == 0  # the rejected ones are not retried on their own

    # An operator's replay tries them once more; they fail again, alone, with the same reason.
    assert webhook_events_retry() == 2
    assert webhook_events_process(connection=connection) == 0
    poison.refresh_from_db()
    assert (poison.status, poison.last_error) == (WebhookEvent.Status.FAILED, reasons[poison.pk])


def test_a_record_the_crm_refuses_to_read_fails_only_the_events_naming_it(tenant, hubspot, settings):
    connection, crm = hubspot
    good = [crm.user_create(email=f"person{n}@example.com") for n in range(4)]
    crm.unreadable_ids = {"99999"}
    receive(*(event("contact.creation", objectId=int(remote_id)) for remote_id in good))
    receive(event("contact.propertyChange", objectId=99999), event("contact.deletion", objectId=99999))

    assert webhook_events_process(connection=connection) == 4

    assert Contact.objects.filter(tenant=tenant).count() == 4
    refused = WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED)
    assert refused.count() == 2
    for stored in refused:
        assert stored.attempts == settings.WEBHOOK_MAX_ATTEMPTS
        assert stored.last_error == "The CRM refused to read record \"99999\": 400 Bad Request: invalid id '99999'"
    # The refused batch is split until the bad id stands alone: a few reads, not one per record.
    assert crm.calls.count("read_many") <= 8
    run = connection.runs.get()
    assert (run.status, run.errors) == ("succeeded", 1)


def test_a_transient_error_while_splitting_fails_the_whole_batch_for_a_retry(tenant, hubspot):
    connection, crm = hubspot
    good = crm.user_create(email="ada@example.com")
    crm.unreadable_ids = {"99999"}
    receive(event("contact.creation", objectId=int(good)), event("contact.creation", objectId=99999, eventId=2))
    crm.failures = [None, "before"]  # the batch is refused, then a half meets an outage

    assert webhook_events_process(connection=connection) == 0

    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {(WebhookEvent.Status.FAILED, 1)}
    assert "503" in WebhookEvent.objects.first().last_error


def test_recording_queues_processing_once_committed_for_each_connection_with_pending_events(
    hubspot, django_capture_on_commit_callbacks, monkeypatch
):
    connection, _ = hubspot
    queued = []
    monkeypatch.setattr(
        webhooks_service, "webhook_process_schedule", lambda *, connection_id: queued.append(connection_id)
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        receive(event("contact.creation"), event("contact.creation", portalId=999))  # one known, one unknown account
        assert queued == []  # nothing before the commit

    assert (len(callbacks), queued) == (1, [connection.pk])
