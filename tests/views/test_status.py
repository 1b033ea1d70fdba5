"""The status page: badges, cards scoped to the tenant, Sync now, pronouns setup and retries."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from syncapp.models import (
    Contact,
    ContactLink,
    CrmConnection,
    ExcludedRecord,
    OutboxEntry,
    SyncConflict,
    SyncRun,
    WebhookEvent,
)
from syncapp.selectors.status import (
    DEGRADED,
    DISCONNECTED,
    ERROR,
    HEALTHY,
    NEEDS_SETUP,
    PAUSED,
    RATE_LIMITED,
    RETRYING,
    SYNCING,
    connection_badge,
    run_chart,
)
from syncapp.services.contacts import contact_create, contact_update
from syncapp.services.sync import connection_sync
from syncapp.services.tenants import tenant_create
from tests.helpers import make_connection, queued_tasks, sandbox_connection

pytestmark = pytest.mark.django_db

ACTIVE, CONFIGURED = CrmConnection.Status.ACTIVE, True


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({}, HEALTHY),
        ({"running": True, "status": CrmConnection.Status.ERROR, "pronouns_configured": False}, SYNCING),
        ({"status": CrmConnection.Status.RATE_LIMITED, "last_run_status": "failed"}, RATE_LIMITED),
        ({"status": CrmConnection.Status.ERROR}, ERROR),
        ({"last_run_status": SyncRun.Status.FAILED, "pronouns_configured": False}, ERROR),
        ({"last_run_status": SyncRun.Status.FAILED, "last_run_pending": 4, "problem_records": 1}, RETRYING),
        ({"status": CrmConnection.Status.ERROR, "last_run_status": "failed", "last_run_pending": 4}, ERROR),
        ({"pronouns_configured": False, "last_run_errors": 3}, NEEDS_SETUP),
        ({"last_run_errors": 1}, DEGRADED),
        ({"problem_records": 2}, DEGRADED),
        ({"status": CrmConnection.Status.PAUSED, "last_run_errors": 1}, PAUSED),
        ({"status": CrmConnection.Status.PAUSED, "running": True}, SYNCING),  # a sync started before the pause
        ({"status": CrmConnection.Status.DISCONNECTED, "running": True, "pronouns_configured": False}, DISCONNECTED),
        ({"last_run_status": None}, HEALTHY),
    ],
)
def test_the_badge_is_a_pure_function_of_the_connection_state(state, expected):
    arguments = {
        "status": ACTIVE,
        "pronouns_configured": True,
        "running": False,
        "last_run_status": SyncRun.Status.SUCCEEDED,
        **state,
    }
    assert connection_badge(**arguments) == expected


def test_the_run_chart_scales_bars_to_the_busiest_count_and_keeps_small_ones_visible():
    runs = [
        SyncRun(trigger="manual", created=100, updated=0, conflicts=1, errors=50),
        SyncRun(trigger="push", created=0, updated=10, conflicts=0, errors=0),
    ]
    chart = run_chart(runs, height=80, bar_width=4, gap=6)
    heights = {(bar.x, bar.series): bar.height for bar in chart.bars}
    assert chart.peak == 100 and chart.runs == 2 and len(chart.bars) == 8
    assert heights[(0, "created")] == 80 and heights[(12, "errors")] == 40
    assert heights[(8, "conflicts")] == 2  # 1 of 100 would be under a pixel
    assert heights[(4, "updated")] == 0
    assert run_chart([]).bars == []


def _configure_pronouns(connection):
    connection.pronouns_state, connection.pronouns_field_key = CrmConnection.PronounsState.CONFIGURED, "pronouns"
    connection.save()


def _post_urls(connection, link=None):
    urls = [
        reverse("syncapp:connection-sync", args=[connection.pk]),
        reverse("syncapp:connection-pronouns", args=[connection.pk]),
    ]
    if link is not None:
        urls.append(reverse("syncapp:failing-retry", args=[connection.pk, link.pk]))
    return urls


def _failing_link(connection, email="bad@example.com"):
    contact = Contact.objects.create(tenant=connection.tenant, email=email)
    return ContactLink.objects.create(
        connection=connection,
        contact=contact,
        status=ContactLink.Status.ERROR,
        last_error="Property values were not valid: Email address bad@example is invalid",
    )


def test_the_pages_require_a_login(connection):
    client = Client()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/"
    json_url = reverse("syncapp:connection-status", args=[connection.pk])
    assert client.get(json_url).status_code == 302
    for url in _post_urls(connection, _failing_link(connection)):
        response = client.post(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_card_shows_the_connection_state(alice, connection):
    _configure_pronouns(connection)
    SyncRun.objects.create(
        connection=connection, trigger="manual", status="succeeded", created=3, updated=2, deleted=1, conflicts=4
    )
    WebhookEvent.objects.create(provider="memory", connection=connection, dedupe_key="e1", body="{}")
    WebhookEvent.objects.create(provider="memory", connection=connection, dedupe_key="e2", body="{}")
    link = _failing_link(connection)
    SyncConflict.objects.create(link=link, field="phone", strategy="manual_review", resolution="open")
    ExcludedRecord.objects.create(
        connection=connection, side="crm", record_id="r-9", code="no_email", reason="The CRM record has no email."
    )

    page = alice.get("/").content.decode()

    assert f'id="connection-{connection.pk}"' in page
    assert '<span class="badge degraded">Degraded</span>' in page
    assert "(3 created, 2 updated, 1 deleted, 4 conflicts, 0 errors)</dd>" in page
    assert "2 in the last 24 h" in page
    assert "1 awaiting review" in page
    assert "Email address bad@example is invalid" in page
    assert reverse("syncapp:failing-retry", args=[connection.pk, link.pk]) in page
    assert "The CRM record has no email." in page
    assert "Next scheduled poll</dt>\n    <dd>not scheduled" not in page  # connection_create scheduled a poll
    assert '<rect class="created"' in page and "created</span>" in page


def test_a_clean_sync_shows_healthy_and_its_counts(alice, tenant, connection):
    _configure_pronouns(connection)
    contact_create(tenant=tenant, values={"email": "ann@example.com"})
    connection_sync(connection=connection, trigger=SyncRun.Trigger.MANUAL)

    page = alice.get("/").content.decode()

    assert '<span class="badge healthy">Healthy</span>' in page
    assert "Manual run succeeded at" in page and "1 created" in page


def test_another_tenants_connections_are_invisible_and_404(connection):
    tenant_create(slug="globex", name="Globex", username="bob", password="pw-bob-12345")
    bob = Client()
    assert bob.login(username="bob", password="pw-bob-12345")
    link = _failing_link(connection)

    page = bob.get("/").content.decode()
    assert f"connection-{connection.pk}" not in page and "No CRM is connected to Globex yet." in page
    assert bob.get(reverse("syncapp:connection-status", args=[connection.pk])).status_code == 404
    for url in _post_urls(connection, link):
        assert bob.post(url).status_code == 404
    assert not OutboxEntry.objects.exists()


def test_every_post_without_a_csrf_token_is_refused(tenant, connection):
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password="pw-alice-123")
    for url in _post_urls(connection, _failing_link(connection)):
        assert client.post(url).status_code == 403
    assert not OutboxEntry.objects.exists()
    page = client.get("/").content.decode()
    assert page.count("csrfmiddlewaretoken") == 4  # Log out, Sync now, Set up pronouns, Retry
    token = client.cookies["csrftoken"].value
    assert client.post(_post_urls(connection)[0], {"csrfmiddlewaretoken": token}).status_code == 302


def test_sync_now_queues_exactly_one_manual_sync(alice, connection, broker):
    response = alice.post(reverse("syncapp:connection-sync", args=[connection.pk]), follow=True)

    (task,) = queued_tasks(broker)
    assert task["func"] == "syncapp.tasks.connection_sync"
    assert task["args"] == (connection.pk,) and task["kwargs"] == {"trigger": "manual"}
    assert response.redirect_chain == [("/", 302)]
    assert "sync queued" in response.content.decode()


def test_sync_now_on_a_paused_connection_says_so_and_queues_nothing(alice, connection, broker):
    connection.status = CrmConnection.Status.PAUSED
    connection.save()
    response = alice.post(reverse("syncapp:connection-sync", args=[connection.pk]), follow=True)
    assert "The connection is paused; resume it first." in response.content.decode()
    assert queued_tasks(broker) == []


def test_status_json_follows_a_running_then_failed_run(alice, connection):
    _configure_pronouns(connection)
    url = reverse("syncapp:connection-status", args=[connection.pk])
    assert alice.get(url).json()["last_run"] is None

    run = SyncRun.objects.create(connection=connection, trigger="manual")
    data = alice.get(url).json()
    assert (data["badge"], data["badge_label"], data["running"]) == ("syncing", "Syncing", True)
    SyncRun.objects.filter(pk=run.pk).update(created=3, updated=2, unchanged=5)  # as a run saves after a batch
    summary = alice.get(url).json()["running_summary"]
    assert summary.startswith("A manual sync is running (started ")
    assert summary.endswith("10 records reconciled so far, 3 created, 2 updated, 0 deleted, 0 conflicts, 0 errors.")
    run.refresh_from_db()

    run.status, run.errors, run.error = SyncRun.Status.FAILED, 2, "The CRM answered 500."
    run.save()
    data = alice.get(url).json()
    assert (data["badge"], data["running"]) == ("error", False)
    assert data["last_run"]["status"] == "failed" and data["last_run"]["errors"] == 2
    assert data["last_run_summary"].startswith("Manual run failed at")
    assert data["last_run_summary"].endswith("2 errors. The CRM answered 500.")
    assert data["last_success_summary"] == "never"

    # Issue 12: writes a transient error left undone are shown, with the CRM's reason.
    run.errors, run.pending, run.error = 0, 3, "3 records not written to the CRM yet; ... Pipedrive answered 503."
    run.save()
    data = alice.get(url).json()
    assert data["last_run"]["status"] == "failed" and data["last_run"]["pending"] == 3
    assert data["last_run_summary"].endswith("0 errors, 3 not written yet. " + run.error)

    good = SyncRun.objects.create(connection=connection, trigger="manual", status="succeeded", created=4)
    data = alice.get(url).json()
    assert data["last_success_summary"].endswith("(4 created, 0 updated, 0 deleted, 0 conflicts, 0 errors)")
    assert data["last_success_summary"].startswith(f"{timezone.localtime(good.started_at):%Y-%m-%d %H:%M}")


def test_the_pronouns_banner_stays_until_setup_succeeds(alice, connection):
    url = reverse("syncapp:connection-pronouns", args=[connection.pk])
    page = alice.get("/").content.decode()
    assert "data-pronouns-banner" in page and "syncs leave pronouns out" in page
    assert '<span class="badge needs-setup">Needs setup</span>' in page
    assert url in page

    page = alice.post(url, follow=True).content.decode()

    assert "Created the pronouns field pronouns. The next syncs include pronouns." in page
    assert "data-pronouns-banner" not in page
    connection.refresh_from_db()
    assert connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED


def test_a_refused_pronouns_setup_shows_the_crms_message(alice, tenant, sandbox_as_crm):
    connection, _ = sandbox_connection(tenant, sandbox_as_crm, "hubspot", missing_scopes=["crm.schemas.contacts.write"])
    url = reverse("syncapp:connection-pronouns", args=[connection.pk])

    page = alice.post(url, follow=True).content.decode()

    connection.refresh_from_db()
    assert connection.pronouns_state == CrmConnection.PronounsState.FAILED
    assert "the CRM refused to set up the pronouns field" in page
    assert "crm.schemas.contacts.write" in connection.pronouns_message
    assert connection.pronouns_message in page.replace("&#x27;", "'")
    assert "data-pronouns-banner" in page and "The last attempt was refused by the CRM" in page


def test_retry_queues_the_contact_again_and_a_push(alice, connection, broker, django_capture_on_commit_callbacks):
    link = _failing_link(connection)
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post(reverse("syncapp:failing-retry", args=[connection.pk, link.pk]), follow=True)

    assert OutboxEntry.objects.filter(connection=connection, contact=link.contact).count() == 1
    (task,) = queued_tasks(broker)
    assert (task["func"], task["args"]) == ("syncapp.tasks.connection_push", (connection.pk,))
    page = response.content.decode()
    assert "bad@example.com: queued for In-memory CRM crm-1 again." in page and "retry queued" in page


def test_only_a_failing_record_can_be_retried(alice, connection):
    link = _failing_link(connection)
    link.status = ContactLink.Status.OK
    link.save()
    assert alice.post(reverse("syncapp:failing-retry", args=[connection.pk, link.pk])).status_code == 404


def test_a_record_the_crm_refused_is_listed_and_a_retry_pushes_it_again(alice, tenant):
    connection, crm = make_connection(tenant)
    _configure_pronouns(connection)
    contact = contact_create(tenant=tenant, values={"email": "pat@example.com"})
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    crm.invalid_values = {"call me"}
    contact_update(contact=contact, values={"phone": "call me"})
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    link = ContactLink.objects.get(connection=connection, contact=contact)
    assert link.status == ContactLink.Status.ERROR

    page = alice.get("/").content.decode()
    assert "Failing records (1)" in page and "Property values were not valid: [&#x27;call me&#x27;]" in page
    assert '<span class="badge degraded">Degraded</span>' in page

    crm.invalid_values = set()  # the CRM's admin allowed the value
    alice.post(reverse("syncapp:failing-retry", args=[connection.pk, link.pk]))
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    link.refresh_from_db()
    assert link.status == ContactLink.Status.OK
    assert crm.live()[link.remote_id]["phone"] == "call me"
    page = alice.get("/").content.decode()
    assert "Failing records (0)" in page and '<span class="badge healthy">Healthy</span>' in page


def test_writes_the_crm_refused_for_now_read_as_retrying_with_the_count_and_reason_not_as_error(alice, tenant):
    # Issue 12 (review 2): a run that only left writes pending showed Error, like expired credentials.
    connection, crm = make_connection(tenant)
    _configure_pronouns(connection)
    contact = contact_create(tenant=tenant, values={"email": "pat@example.com"})
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)
    crm.busy_values = {"busy"}
    contact_update(contact=contact, values={"phone": "busy"})
    connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    page = alice.get("/").content.decode()
    assert '<span class="badge retrying">Retrying</span>' in page
    assert "1 not written yet" in page and "Record is locked, try again later" in page
    status = alice.get(reverse("syncapp:connection-status", args=[connection.pk])).json()
    assert (status["badge"], status["last_run"]["pending"]) == (RETRYING, 1)


def test_a_field_already_labelled_pronouns_is_offered_and_can_be_mapped(alice, tenant):
    connection, crm = make_connection(tenant)
    crm.custom_fields["pref_pronouns"] = "Pronouns"
    url = reverse("syncapp:connection-pronouns", args=[connection.pk])

    page = alice.post(url, follow=True).content.decode()
    assert (
        "(key pref_pronouns)" in page
        and "data-pronouns-map" in page
        and crm.custom_fields == {"pref_pronouns": "Pronouns"}
    )
    page = alice.post(url, {"map_existing": "nope"}, follow=True).content.decode()
    assert "The CRM has no contact field with the key" in page and "nope" in page

    page = alice.post(url, {"map_existing": "pref_pronouns"}, follow=True).content.decode()
    connection.refresh_from_db()
    assert (connection.pronouns_state, connection.pronouns_field_key) == ("configured", "pref_pronouns")
    assert "Using the pronouns field pref_pronouns." in page and "data-pronouns-banner" not in page


def test_a_new_pronouns_field_can_be_created_next_to_a_labelled_one(alice, tenant):
    connection, crm = make_connection(tenant)
    crm.custom_fields["pref_pronouns"] = "Pronouns"
    url = reverse("syncapp:connection-pronouns", args=[connection.pk])
    alice.post(url)

    page = alice.post(url, {"create": "1"}, follow=True).content.decode()

    assert "Created the pronouns field pronouns." in page
    assert crm.custom_fields == {"pref_pronouns": "Pronouns", "pronouns": "Pronouns"}
