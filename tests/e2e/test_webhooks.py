"""Webhooks end to end: the sandbox delivers to the app's live server, the inbox stores, processing applies.

HubSpot signs deliveries with the app's secret (v3); Pipedrive sends the Basic credentials that
``connection_setup_webhooks`` registered. Deliveries that come twice, late or out of order converge.
"""

import json

import pytest

from syncapp.models import Contact, WebhookEvent, WebhookRejection
from syncapp.providers.base.webhooks import PASSWORD_KEY, USER_KEY
from syncapp.services.contacts import contact_create
from syncapp.services.webhook_setup import connection_setup_webhooks
from syncapp.services.webhooks import webhook_events_process

from .conftest import PROVIDERS, assert_agree, assert_succeeded, make_crm

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hubspot-app-secret-for-e2e"


@pytest.fixture
def hooked(request, tenant, crm_sandbox, live_server, settings):
    """Return a function that connects a sandbox account whose webhooks reach the live server."""

    def connect(provider: str, **webhook_options):
        if provider == "hubspot":
            settings.HUBSPOT_WEBHOOK_SECRET = SECRET
            options = {"url": live_server.url + "/webhooks/hubspot/", "secret": SECRET, **webhook_options}
            crm = make_crm(tenant, crm_sandbox, "hubspot", webhooks=options)
        else:
            crm = make_crm(tenant, crm_sandbox, "pipedrive", webhooks=webhook_options)
            hooks = connection_setup_webhooks(connection=crm.connection, base_url=live_server.url)
            crm.connection.refresh_from_db()
            credentials = crm.connection.credentials
            with crm.account.lock:
                registered = list(crm.account.hooks.values())
            assert sorted(hook["event_action"] for hook in registered) == ["change", "create", "delete"]
            assert [hook["id"] for hook in hooks] == [hook["id"] for hook in registered]
            for hook in registered:
                assert hook["subscription_url"] == f"{live_server.url}/webhooks/pipedrive/{crm.connection.webhook_key}/"
                assert (hook["http_auth_user"], hook["http_auth_password"]) == (
                    credentials[USER_KEY],
                    credentials[PASSWORD_KEY],
                )
        crm.setup_pronouns()
        return crm

    return connect


def deliveries_done(crm) -> dict:
    assert crm.sandbox.dispatcher.wait_idle(10), "the sandbox delivered its webhooks"
    return dict(crm.sandbox.dispatcher.stats)


def pending_events(crm) -> list[WebhookEvent]:
    return list(WebhookEvent.objects.filter(connection=crm.connection, status=WebhookEvent.Status.PENDING))


def settle(crm, tenant) -> None:
    """A first full sync, and the webhooks that echo its writes processed: both sides agree, nothing waits."""
    contact_create(tenant=tenant, values={"email": "ann@example.com", "first_name": "Ann"})
    crm.create(email="bob@example.com", first_name="Bob", notify=False)
    assert_succeeded(crm.sync(full=True))
    deliveries_done(crm)
    assert pending_events(crm), "the create the sync made in the CRM was notified back"
    webhook_events_process(connection=crm.connection)
    echo = crm.connection.runs.latest("pk")
    assert (echo.trigger, echo.updated, echo.created) == ("webhook", 0, 0)
    assert pending_events(crm) == []
    assert_agree(crm, tenant)


def process(crm) -> int:
    crm.connection.refresh_from_db()
    return webhook_events_process(connection=crm.connection)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_crm_changes_arrive_by_webhook_and_are_applied(hooked, tenant, provider):
    crm = hooked(provider)
    settle(crm, tenant)
    bob_id = crm.by_email("bob@example.com")["id"]

    # An edit in the CRM: delivered, verified, stored, then applied by processing.
    mark = crm.mark()
    crm.update(bob_id, phone="+1 555 0102", pronouns="he/him")
    deliveries_done(crm)
    stored = pending_events(crm)
    assert stored, "the delivery was stored in the inbox"
    assert process(crm) == len(stored)
    bob = Contact.objects.get(email="bob@example.com")
    assert (bob.phone, bob.pronouns) == ("+1 555 0102", "he/him")
    run = crm.connection.runs.latest("pk")
    assert (run.trigger, run.updated) == ("webhook", 1)
    assert crm.writes_since(mark) == [], "the pulled edit is not written back"
    assert not WebhookEvent.objects.exclude(status=WebhookEvent.Status.PROCESSED).filter(connection=crm.connection)
    assert_agree(crm, tenant)

    # A record created in the CRM arrives, and its deletion follows it.
    cara_id = crm.create(email="cara@example.com", first_name="Cara")
    deliveries_done(crm)
    assert process(crm) >= 1
    assert Contact.objects.get(email="cara@example.com").deleted_at is None
    assert_agree(crm, tenant)
    crm.delete(cara_id)
    deliveries_done(crm)
    assert process(crm) >= 1
    assert Contact.objects.get(email="cara@example.com").deleted_at is not None
    assert set(assert_agree(crm, tenant)) == {"ann@example.com", "bob@example.com"}

    stats = crm.sandbox.dispatcher.stats
    assert stats["failed"] == stats["retries"] == stats["undeliverable"] == 0
    assert not WebhookRejection.objects.exists(), "every delivery passed verification"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_duplicated_and_reordered_deliveries_converge(hooked, tenant, provider):
    crm = hooked(provider, duplicate_rate=1, reorder_ms=300)
    settle(crm, tenant)
    bob_id = crm.by_email("bob@example.com")["id"]
    before = deliveries_done(crm)
    stored_before = WebhookEvent.objects.filter(connection=crm.connection).count()

    for phone in ("+1 555 0001", "+1 555 0002", "+1 555 0003"):
        crm.update(bob_id, phone=phone)
    crm.update(bob_id, job_title="CFO")
    after = deliveries_done(crm)

    events = after["events"] - before["events"]
    delivered = after["delivered"] - before["delivered"]
    assert delivered >= 2 and delivered % 2 == 0, "every delivery was sent twice"
    stored = WebhookEvent.objects.filter(connection=crm.connection).count() - stored_before
    assert stored == events, "each event is stored once, however often it is delivered"
    assert process(crm) == events
    bob = Contact.objects.get(email="bob@example.com")
    assert (bob.phone, bob.job_title) == ("+1 555 0003", "CFO"), "the latest CRM state, whatever the order"
    assert_agree(crm, tenant)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_late_deliveries_after_a_poll_change_nothing(hooked, tenant, provider):
    crm = hooked(provider)
    settle(crm, tenant)
    bob_id = crm.by_email("bob@example.com")["id"]

    crm.account.webhooks.paused = True
    crm.update(bob_id, phone="+1 555 0001")
    crm.update(bob_id, phone="+1 555 0002", last_name="Brown")
    assert_succeeded(crm.sync())  # the safety-net poll gets there first
    assert Contact.objects.get(email="bob@example.com").phone == "+1 555 0002"
    crm.account.webhooks.paused = False
    deliveries_done(crm)

    mark = crm.mark()
    assert process(crm) >= 2
    run = crm.connection.runs.latest("pk")
    assert (run.trigger, run.updated, run.conflicts) == ("webhook", 0, 0)
    bob = Contact.objects.get(email="bob@example.com")
    assert (bob.phone, bob.last_name) == ("+1 555 0002", "Brown"), "the stale first edit did not come back"
    assert crm.writes_since(mark) == []
    assert_agree(crm, tenant)


def test_hubspot_merge_webhook_repoints_the_link(hooked, tenant):
    crm = hooked("hubspot")
    settle(crm, tenant)
    ann = Contact.objects.get(email="ann@example.com")
    old_id = crm.by_email("ann@example.com")["id"]
    survivor_id = crm.create(email="ann.adams@example.com", first_name="Ann", last_name="Adams", notify=False)
    with crm.account.lock:
        crm.account.control_merge(survivor_id, old_id)
    deliveries_done(crm)
    assert [json_type(event) for event in pending_events(crm)] == ["contact.merge"]

    assert process(crm) == 1
    ann.refresh_from_db()
    assert (ann.deleted_at, ann.email, ann.last_name) == (None, "ann.adams@example.com", "Adams")
    assert ann.links.get(connection=crm.connection).remote_id == survivor_id
    assert Contact.objects.filter(tenant=tenant).count() == 2
    assert_agree(crm, tenant)


def json_type(event: WebhookEvent) -> str:
    return json.loads(event.body)["subscriptionType"]
