"""Poll schedules follow connections: created with them, paused with them, removed with them."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from syncapp.models import CrmConnection
from syncapp.services.schedules import connection_schedule_update, schedules_sync
from tests.conftest import make_connection

pytestmark = pytest.mark.django_db


def test_a_new_connection_is_polled_every_default_sync_interval(tenant, settings):
    settings.DEFAULT_SYNC_INTERVAL = 600_000
    connection, _ = make_connection(tenant)
    schedule = Schedule.objects.get(name=f"contactsync-poll-{connection.pk}")
    assert (schedule.func, schedule.args, schedule.schedule_type, schedule.minutes) == (
        "syncapp.tasks.connection_poll", f"({connection.pk},)", Schedule.MINUTES, 10,
    )  # fmt: skip


def test_hubspot_connections_poll_on_their_own_safety_net_interval(tenant, settings):
    from syncapp.services.connections import connection_create

    settings.HUBSPOT_POLL_INTERVAL = 3_600_000
    connection = connection_create(tenant=tenant, provider="hubspot", account_id="1", credentials={"access_token": "t"})
    assert Schedule.objects.get(name=f"contactsync-poll-{connection.pk}").minutes == 60


def test_pausing_removes_the_schedule_and_resuming_brings_it_back_once(tenant):
    connection, _ = make_connection(tenant)
    connection.status = CrmConnection.Status.PAUSED
    connection_schedule_update(connection=connection)
    assert not Schedule.objects.filter(name__startswith="contactsync-poll-").exists()
    connection.status = CrmConnection.Status.ACTIVE
    connection_schedule_update(connection=connection)
    connection_schedule_update(connection=connection)
    assert Schedule.objects.filter(name=f"contactsync-poll-{connection.pk}").count() == 1


def test_schedule_syncs_command_is_idempotent_and_drops_orphans(tenant):
    connection, _ = make_connection(tenant)
    Schedule.objects.create(name="contactsync-poll-999999", func="syncapp.tasks.connection_sync", args="(999999,)")
    assert schedules_sync() == (1, 1)
    call_command("schedule_syncs")
    assert list(Schedule.objects.values_list("name", flat=True)) == [f"contactsync-poll-{connection.pk}"]


def test_a_poll_lists_everything_once_the_full_sync_interval_has_passed(tenant, settings):
    from datetime import timedelta

    from django.utils import timezone

    from syncapp.tasks import connection_poll

    settings.FULL_SYNC_INTERVAL = 3_600_000
    connection, crm = make_connection(tenant)

    def listing_after(poll):
        crm.calls.clear()
        poll()
        return "list_all" if "list_all" in crm.calls else "list_changed"

    assert listing_after(lambda: connection_poll(connection.pk)) == "list_all"  # never listed yet
    assert listing_after(lambda: connection_poll(connection.pk)) == "list_changed"
    CrmConnection.objects.filter(pk=connection.pk).update(last_full_sync_at=timezone.now() - timedelta(hours=2))
    assert listing_after(lambda: connection_poll(connection.pk)) == "list_all"
