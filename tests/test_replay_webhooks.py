"""The replay_webhooks command: stored events of a status go back to pending, per connection if asked."""

import io

import pytest
from django.core.management import CommandError, call_command

from syncapp.models import WebhookEvent
from tests.helpers import make_connection

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_webhooks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored(connection, key, status, **fields):
    return WebhookEvent.objects.create(
        provider="memory", connection=connection, dedupe_key=key, body="{}", status=status, **fields
    )


@pytest.fixture
def events(tenant):
    first, _ = make_connection(tenant, "crm-1")
    second, _ = make_connection(tenant, "crm-2")
    return {
        "failed-1": stored(first, "f1", WebhookEvent.Status.FAILED, attempts=5, last_error="boom"),
        "failed-2": stored(second, "f2", WebhookEvent.Status.FAILED, attempts=5, last_error="boom"),
        "ignored-1": stored(first, "i1", WebhookEvent.Status.IGNORED),
        "processed-1": stored(first, "p1", WebhookEvent.Status.PROCESSED),
        "orphan": stored(None, "o1", WebhookEvent.Status.FAILED),
        "connections": (first, second),
    }


def status_of(event):
    event.refresh_from_db()
    return event.status


def test_replays_failed_events_by_default_with_a_fresh_budget(events):
    out, _ = run()
    assert out.strip() == "Replayed 2 failed webhook events."
    event = events["failed-1"]
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == (WebhookEvent.Status.PENDING, 0, "")
    assert status_of(events["failed-2"]) == WebhookEvent.Status.PENDING
    assert status_of(events["ignored-1"]) == WebhookEvent.Status.IGNORED
    assert status_of(events["orphan"]) == WebhookEvent.Status.FAILED  # no connection to apply it to


def test_connection_limits_the_replay(events):
    first, _ = events["connections"]
    out, _ = run("--connection", str(first.pk))
    assert out.strip() == f"Replayed 1 failed webhook event of connection {first.pk}."
    assert status_of(events["failed-1"]) == WebhookEvent.Status.PENDING
    assert status_of(events["failed-2"]) == WebhookEvent.Status.FAILED


def test_status_picks_another_status(events):
    out, _ = run("--status", "ignored")
    assert out.strip() == "Replayed 1 ignored webhook event."
    assert status_of(events["ignored-1"]) == WebhookEvent.Status.PENDING
    assert status_of(events["failed-1"]) == WebhookEvent.Status.FAILED


def test_nothing_to_replay_says_zero(tenant):
    out, _ = run()
    assert out.strip() == "Replayed 0 failed webhook events."


def test_unknown_connection_is_an_error(events):
    with pytest.raises(CommandError, match="No connection 999999"):
        run("--connection", "999999")
    assert status_of(events["failed-1"]) == WebhookEvent.Status.FAILED


def test_unknown_status_is_refused(events):
    with pytest.raises(CommandError, match="invalid choice"):
        run("--status", "bogus")
