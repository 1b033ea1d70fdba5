"""Sync runs against the in-memory CRM: the design's rules end to end through the database."""

import pytest

from syncapp.exceptions import SyncAlreadyRunningError
from syncapp.models import Contact, ContactLink, ExcludedRecord, OutboxEntry, SyncConflict, SyncRun
from syncapp.services.connections import connection_lock
from syncapp.services.contacts import contact_create, contact_delete, contact_restore, contact_update
from syncapp.services.sync import connection_sync
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


def sync(connection, **kwargs):
    run = connection_sync(connection=connection, **kwargs)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return run


def test_first_full_sync_links_by_email_and_creates_what_is_missing_on_each_side(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact_create(tenant=tenant, values={"email": "Ada@Example.com", "first_name": "Ada"})
    contact_create(tenant=tenant, values={"email": "app-only@example.com"})
    shared = crm.user_create(email="ada@example.com", last_name="Lovelace")
    crm.user_create(email="crm-only@example.com", first_name="Cy")

    run = sync(connection, full=True)

    ada = Contact.objects.get(email="ada@example.com")
    assert (ada.first_name, ada.last_name) == ("Ada", "Lovelace")
    assert crm.live()[shared]["first_name"] == "Ada"
    assert Contact.objects.filter(tenant=tenant, email="crm-only@example.com", first_name="Cy").exists()
    assert sorted(r["email"] for r in crm.live().values()) == [
        "ada@example.com",
        "app-only@example.com",
        "crm-only@example.com",
    ]
    assert ContactLink.objects.filter(connection=connection).count() == 3
    assert (run.created, run.updated) == (2, 1)
    assert run.api_calls == len(crm.calls)


def test_app_edit_reaches_the_crm_through_the_outbox_and_its_echo_changes_nothing(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "a@example.com"})
    assert OutboxEntry.objects.filter(connection=connection, contact=contact).count() == 1
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert not OutboxEntry.objects.exists()

    contact_update(contact=contact, values={"job_title": "CTO"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    assert crm.live()[remote_id]["job_title"] == "CTO"

    writes_before = len(crm.api_writes)
    echo = sync(connection)  # the poll sees our own write
    assert (echo.updated, echo.conflicts) == (0, 0)
    assert len(crm.api_writes) == writes_before


def test_value_pulled_from_a_crm_is_not_pushed_back_but_fans_out_to_the_other_crm(tenant):
    hub, hub_crm = make_connection(tenant, "hub")
    pipe, pipe_crm = make_connection(tenant, "pipe", unique_emails=False)
    hub_crm.user_create(email="b@example.com", phone="111")
    sync(hub, full=True)
    assert not OutboxEntry.objects.filter(connection=hub).exists()
    assert OutboxEntry.objects.filter(connection=pipe).count() == 1

    sync(pipe, trigger=SyncRun.Trigger.PUSH)
    assert [r["phone"] for r in pipe_crm.live().values()] == ["111"]
    assert not any(name in {"update_many", "create_many"} for name in hub_crm.calls)


def test_true_conflict_is_logged_and_the_crm_wins_and_the_loser_can_be_restored(tenant, connection_and_crm):
    from syncapp.services.conflicts import conflict_restore

    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "c@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    contact_update(contact=contact, values={"phone": "app"})
    crm.user_edit(remote_id, phone="crm")

    run = sync(connection)

    contact.refresh_from_db()
    assert contact.phone == "crm" and crm.live()[remote_id]["phone"] == "crm"
    conflict = SyncConflict.objects.get()
    assert (conflict.field, conflict.local_value, conflict.remote_value, conflict.winner) == (
        "phone",
        "app",
        "crm",
        "crm",
    )
    assert conflict.local_modified_at and conflict.remote_modified_at
    assert run.conflicts == 1

    conflict_restore(conflict=conflict, user=None)
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    contact.refresh_from_db()
    assert contact.phone == "app" and crm.live()[remote_id]["phone"] == "app"
    conflict.refresh_from_db()
    assert conflict.resolution == SyncConflict.Resolution.RESTORED


def test_manual_review_waits_for_a_person_and_logs_the_conflict_once(tenant):
    from syncapp.services.conflicts import conflict_pick

    connection, crm = make_connection(tenant, conflict_strategy="manual_review")
    contact = contact_create(tenant=tenant, values={"email": "m@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    contact_update(contact=contact, values={"phone": "app"})
    crm.user_edit(remote_id, phone="crm")

    sync(connection)
    sync(connection, full=True)

    contact.refresh_from_db()
    assert contact.phone == "app" and crm.live()[remote_id]["phone"] == "crm"
    conflict = SyncConflict.objects.get()
    assert conflict.resolution == SyncConflict.Resolution.OPEN and conflict.winner == ""

    conflict_pick(conflict=conflict, winner="app", user=None)
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert crm.live()[remote_id]["phone"] == "app"
    assert SyncConflict.objects.get().resolution == SyncConflict.Resolution.PICKED_APP


@pytest.mark.parametrize("winner", ["app", "crm"])
def test_manual_review_marks_the_link_awaiting_review_until_a_person_picks(tenant, winner):
    from syncapp.services.conflicts import conflict_pick

    connection, crm = make_connection(tenant, conflict_strategy="manual_review")
    contact = contact_create(tenant=tenant, values={"email": "m@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    link = ContactLink.objects.get(connection=connection, remote_id=remote_id)
    assert link.status == ContactLink.Status.OK
    contact_update(contact=contact, values={"phone": "app"})
    crm.user_edit(remote_id, phone="crm")

    # The open conflict is the pair's only news: nothing is written, but the link awaits review.
    sync(connection)
    link.refresh_from_db()
    assert (link.status, link.last_error) == (ContactLink.Status.CONFLICT, "")
    synced_at = link.last_synced_at
    # Seen again, it stays awaiting review, and the link is not saved again.
    sync(connection)
    sync(connection, full=True)
    link.refresh_from_db()
    assert (link.status, link.last_synced_at) == (ContactLink.Status.CONFLICT, synced_at)

    conflict_pick(conflict=SyncConflict.objects.get(), winner=winner, user=None)
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    link.refresh_from_db()
    assert link.status == ContactLink.Status.OK
    contact.refresh_from_db()
    assert contact.phone == crm.live()[remote_id]["phone"] == winner
    assert link.base["phone"] == winner


def test_deletes_and_restores_travel_both_ways(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "d@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()

    contact_delete(contact=contact)
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert crm.live() == {}

    contact_restore(contact=contact, values={"first_name": "Back"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert crm.live()[remote_id]["first_name"] == "Back"

    crm.user_delete(remote_id)
    sync(connection)
    contact.refresh_from_db()
    assert contact.is_deleted

    crm.user_restore(remote_id)
    sync(connection)
    contact.refresh_from_db()
    assert not contact.is_deleted


def test_crm_merge_repoints_the_link_to_the_survivor(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    a = contact_create(tenant=tenant, values={"email": "a@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (old_id,) = crm.live()
    survivor = crm.user_create(email="a2@example.com", first_name="Merged")
    crm.user_merge(survivor, old_id)

    sync(connection, remote_ids=[old_id, survivor])

    link = ContactLink.objects.get(contact=a)
    assert link.remote_id == survivor
    a.refresh_from_db()
    assert (a.email, a.first_name, a.is_deleted) == ("a2@example.com", "Merged", False)


@pytest.mark.parametrize(
    "failures",
    [["before"], [None, "before"], [None, None, "before"]],
    ids=["first-page", "second-page", "last-page"],
)
def test_full_listing_that_fails_midway_infers_no_deletions(tenant, connection_and_crm, failures):
    """DESIGN: a full listing may infer deletions only after it completed successfully."""
    connection, crm = connection_and_crm
    for n in range(7):  # three pages of three: 3, 3, 1
        contact_create(tenant=tenant, values={"email": f"p{n}@example.com"})
    sync(connection, full=True)
    assert ContactLink.objects.filter(connection=connection, remote_id__isnull=False).count() == 7
    crm.calls.clear()
    crm.failures = list(failures)  # the listing stops at this page; the records after it were never seen

    run = connection_sync(connection=connection, full=True)

    assert run.status == SyncRun.Status.FAILED and "503" in run.error
    assert crm.calls.count("list_all") == len(failures)
    assert "read_many" not in crm.calls  # no deletion check ran on the partial listing
    assert not any(name in {"archive_many", "create_many", "update_many"} for name in crm.calls)
    assert Contact.objects.filter(deleted_at__isnull=True).count() == 7
    assert len(crm.live()) == 7
    assert not ContactLink.objects.filter(connection=connection, base_deleted=True).exists()


def test_push_whose_reply_was_lost_is_retried_without_creating_a_duplicate(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact_create(tenant=tenant, values={"email": "lost@example.com"})
    crm.failures = [None, "after"]  # find_by_emails answers, create_many's reply is lost
    failed = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    assert failed.status == SyncRun.Status.FAILED
    assert OutboxEntry.objects.get().attempts == 1

    sync(connection, trigger=SyncRun.Trigger.PUSH)
    assert len(crm.live()) == 1
    assert ContactLink.objects.get().remote_id == next(iter(crm.live()))


def test_duplicate_email_on_create_links_to_the_existing_crm_record(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "dup@example.com", "first_name": "App"})
    # Created in the CRM between our lookup and our create: the create answers 409.
    adapter_find = type(crm).call

    def call(self, name, effect):
        result = adapter_find(self, name, effect)
        if name == "find_by_emails":
            self.user_create(email="dup@example.com", last_name="Crm")
        return result

    type(crm).call = call
    try:
        sync(connection, trigger=SyncRun.Trigger.PUSH)
    finally:
        type(crm).call = adapter_find
    link = ContactLink.objects.get(contact=contact)
    assert link.status == ContactLink.Status.PENDING and "already exists" in link.last_error

    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (record,) = crm.live().values()
    assert (record["first_name"], record["last_name"]) == ("App", "Crm")


def test_records_without_email_are_listed_as_excluded(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    crm.user_create(first_name="Nameless")
    run = sync(connection, full=True)
    assert run.excluded == 1
    assert ExcludedRecord.objects.get(connection=connection).reason == "no email address"
    assert not Contact.objects.exists()


def test_permanent_crm_error_is_recorded_on_the_link_and_retried_after_the_next_edit(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "e@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    crm.invalid_values = {"not-a-phone"}
    contact_update(contact=contact, values={"phone": "not-a-phone", "first_name": "Zed"})

    run = sync(connection, trigger=SyncRun.Trigger.PUSH)

    link = ContactLink.objects.get(contact=contact)
    assert (run.errors, run.updated, run.pending) == (1, 0, 0), "a refused write is an error, not an update"
    assert link.status == ContactLink.Status.ERROR and "not-a-phone" in link.last_error
    assert crm.live()[remote_id]["first_name"] == ""
    assert not OutboxEntry.objects.exists()  # a 400 is not retried blindly

    crm.invalid_values = set()
    contact_update(contact=contact, values={"phone": "+1 555"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    link.refresh_from_db()
    assert link.status == ContactLink.Status.OK
    assert crm.live()[remote_id]["first_name"] == "Zed"


def test_incremental_sync_saves_its_cursor_after_every_page_and_resumes(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    for n in range(7):  # three pages of three
        crm.user_create(email=f"i{n}@example.com")
    crm.failures = [None, None, "before"]  # list_changed ok, then the third call fails mid-listing

    failed = connection_sync(connection=connection)

    assert failed.status == SyncRun.Status.FAILED
    connection.refresh_from_db()
    assert connection.sync_cursor  # progress kept: the first two pages, i0-i2 and i2-i4 (from i2's time)
    assert Contact.objects.count() == 5
    resumed = sync(connection)
    assert Contact.objects.count() == 7
    assert (resumed.created, resumed.unchanged) == (2, 0)  # nothing read twice


def test_one_sync_per_connection_at_a_time(tenant, connection_and_crm):
    connection, _ = connection_and_crm
    with connection_lock(connection), pytest.raises(SyncAlreadyRunningError):
        connection_sync(connection=connection)
    assert not SyncRun.objects.exists()
    sync(connection)


def test_a_lock_left_by_a_killed_worker_expires_and_its_run_is_marked_failed(tenant, connection_and_crm, settings):
    connection, _ = connection_and_crm
    settings.SYNC_LOCK_TTL = -1  # every lease is already expired
    connection_lock(connection).__enter__()  # never released, like a worker killed mid-run
    killed = SyncRun.objects.create(connection=connection, trigger=SyncRun.Trigger.SCHEDULED)

    sync(connection)

    killed.refresh_from_db()
    assert killed.status == SyncRun.Status.FAILED and "stopped before it finished" in killed.error


def test_dry_run_plans_without_writing(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    contact_create(tenant=tenant, values={"email": "dry@example.com"})
    crm.user_create(email="other@example.com")

    run = sync(connection, full=True, dry_run=True)

    assert {(p.local_op, p.remote_op) for p in run.plan} == {("", "create"), ("create", "")}
    assert len(crm.live()) == 1 and Contact.objects.count() == 1
    assert OutboxEntry.objects.count() == 1


def test_crm_delete_can_restore_the_crm_record_instead_of_deleting_the_contact(tenant):
    connection, crm = make_connection(tenant, on_crm_delete="restore_record")
    contact = contact_create(tenant=tenant, values={"email": "keep@example.com", "first_name": "Kept"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    crm.user_delete(remote_id)

    sync(connection)

    contact.refresh_from_db()
    assert not contact.is_deleted
    assert crm.live()[remote_id]["first_name"] == "Kept"


def test_latest_wins_uses_the_crm_time_of_a_value_pulled_from_another_crm(tenant):
    """A value fanned out from CRM A keeps A's edit time, not the time the sync wrote it into the app."""
    a, crm_a = make_connection(tenant, "a", conflict_strategy="latest_wins")
    b, crm_b = make_connection(tenant, "b", conflict_strategy="latest_wins")
    contact_create(tenant=tenant, values={"email": "t@example.com"})
    for connection in (a, b):
        sync(connection, trigger=SyncRun.Trigger.PUSH)
    (id_a,), (id_b,) = crm_a.live(), crm_b.live()
    crm_a.user_edit(id_a, phone="from-a")  # earlier edit
    crm_b.user_edit(id_b, phone="from-b")  # later edit

    sync(a)  # pulls from-a into the app now, after B's edit happened
    sync(b)

    conflict = SyncConflict.objects.get(link__connection=b)
    assert (conflict.local_value, conflict.remote_value, conflict.winner) == ("from-a", "from-b", "crm")
    assert conflict.local_modified_at == crm_a.records[id_a].modified_at
    sync(a, trigger=SyncRun.Trigger.PUSH)
    assert crm_a.live()[id_a]["phone"] == crm_b.live()[id_b]["phone"] == "from-b"


def test_a_record_that_gains_an_email_is_no_longer_listed_as_excluded(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    remote_id = crm.user_create(first_name="Nameless")
    sync(connection, full=True)
    assert ExcludedRecord.objects.filter(connection=connection, record_id=remote_id).exists()

    crm.user_edit(remote_id, email="found@example.com")
    sync(connection)

    assert not ExcludedRecord.objects.filter(connection=connection).exists()
    assert Contact.objects.filter(email="found@example.com").exists()


def test_tenants_never_see_each_others_contacts(tenant):
    from syncapp.services.tenants import tenant_create

    other = tenant_create(slug="other")
    mine, my_crm = make_connection(tenant, "mine")
    theirs, their_crm = make_connection(other, "theirs")
    contact_create(tenant=other, values={"email": "shared@example.com", "first_name": "Theirs"})
    my_crm.user_create(email="shared@example.com", first_name="Mine")

    sync(mine, full=True)
    sync(theirs, full=True)

    assert Contact.objects.get(tenant=tenant).first_name == "Mine"
    assert Contact.objects.get(tenant=other).first_name == "Theirs"
    assert [r["first_name"] for r in their_crm.live().values()] == ["Theirs"]
    assert [r["first_name"] for r in my_crm.live().values()] == ["Mine"]
    assert not OutboxEntry.objects.filter(connection=theirs).exists()


def test_a_crm_record_the_app_refuses_stays_listed_with_the_reason(tenant, connection_and_crm):
    connection, crm = connection_and_crm
    remote_id = crm.user_create(email="not-an-email")

    run = sync(connection, full=True)

    excluded = ExcludedRecord.objects.get(connection=connection, record_id=remote_id)
    assert "not a valid email address" in excluded.reason
    assert run.errors == 1 and not Contact.objects.exists()


def test_equal_values_on_both_sides_write_nothing_and_become_the_base(tenant, connection_and_crm):
    """DESIGN: L == R, nothing to write; base := L."""
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"email": "same@example.com", "phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)
    (remote_id,) = crm.live()
    link = ContactLink.objects.get(connection=connection, contact=contact)
    assert link.base["phone"] == "0"
    # The same change made on both sides.
    contact_update(contact=contact, values={"phone": "x"})
    crm.user_edit(remote_id, phone="x")
    crm.calls.clear()
    writes_before = len(crm.api_writes)

    run = sync(connection)

    assert not any(name in {"update_many", "create_many", "archive_many", "restore"} for name in crm.calls)
    assert len(crm.api_writes) == writes_before
    assert not SyncConflict.objects.exists() and run.conflicts == 0
    contact.refresh_from_db()
    link.refresh_from_db()
    assert contact.phone == crm.live()[remote_id]["phone"] == "x"
    assert link.base["phone"] == "x"

    # With the base at "x", changing the app back to "0" is an app-only change: it is pushed.
    # (Had the base stayed "0", the app would look unchanged and the CRM's "x" would be pulled.)
    contact_update(contact=contact, values={"phone": "0"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)

    contact.refresh_from_db()
    assert contact.phone == crm.live()[remote_id]["phone"] == "0"
    assert not SyncConflict.objects.exists()


def test_app_contact_without_email_is_listed_as_excluded_until_it_gains_one(tenant, connection_and_crm):
    """DESIGN: a record without an email is excluded and listed as excluded (the app side)."""
    connection, crm = connection_and_crm
    contact = contact_create(tenant=tenant, values={"first_name": "Nameless"})
    excluded = ExcludedRecord.objects.filter(
        connection=connection,
        side=ExcludedRecord.Side.APP,
        code=ExcludedRecord.Code.NO_EMAIL,
        record_id=str(contact.pk),
    )

    push = sync(connection, trigger=SyncRun.Trigger.PUSH)  # the outbox row of its creation
    assert push.excluded == 1 and excluded.count() == 1
    full = sync(connection, full=True)  # a full sync lists the unmatched contacts again
    assert full.excluded == 1 and excluded.count() == 1
    assert crm.live() == {}
    assert "create_many" not in crm.calls
    assert not ContactLink.objects.filter(connection=connection, remote_id__isnull=False).exists()

    contact_update(contact=contact, values={"email": "found@example.com"})
    sync(connection, trigger=SyncRun.Trigger.PUSH)

    assert not excluded.exists()
    (record,) = crm.live().values()
    assert (record["email"], record["first_name"]) == ("found@example.com", "Nameless")
    assert ContactLink.objects.get(connection=connection, contact=contact).remote_id == next(iter(crm.live()))


def test_new_connections_take_the_configured_conflict_strategy_and_crm_wins_by_default(tenant, settings):
    """DESIGN: crm_wins is the default, set by CONFLICT_RESOLUTION_STRATEGY."""
    # As configured in contactsync/settings.py (the environment sets nothing here).
    assert settings.CONFLICT_RESOLUTION_STRATEGY == "crm_wins"
    default, _ = make_connection(tenant, "default")
    default.refresh_from_db()
    assert default.conflict_strategy == "crm_wins"

    settings.CONFLICT_RESOLUTION_STRATEGY = "latest_wins"
    configured, _ = make_connection(tenant, "configured")
    configured.refresh_from_db()
    assert configured.conflict_strategy == "latest_wins"
    # A strategy given explicitly still wins over the setting.
    explicit, _ = make_connection(tenant, "explicit", conflict_strategy="manual_review")
    assert explicit.conflict_strategy == "manual_review"
