"""What a tenant's people do on the pages, in a real browser, against live_server and the CRM sandbox.

Connect a sandbox CRM and watch Sync now change the badge; edit a contact and find the edit in the
sandbox; settle a conflict and find the kept value in both places. django-q2's tasks run in the test
(``run_queued_tasks``), as a worker would run them.

The status page's screenshot goes to a temporary directory, or to ``STATUS_PAGE_SCREENSHOT`` when set
(``STATUS_PAGE_SCREENSHOT=docs/status-page.png`` refreshes the README's picture).
"""

import os

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from syncapp.models import Contact, CrmConnection, SyncConflict
from syncapp.services.contacts import contact_update
from syncapp.services.outbox import PUSH_TASK
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import SYNC_TASK, connection_sync
from syncapp.services.tenants import tenant_create
from tests.browser.conftest import log_in, run_queued_tasks
from tests.helpers import sandbox_connection

pytestmark = pytest.mark.django_db(transaction=True)


def sandbox_record(account, record_id: str) -> dict:
    with account.lock:
        (record,) = [r for r in account.control_list() if r["id"] == record_id]
    return record


def synced_sandbox_contact(tenant, crm_sandbox, **values):
    """A HubSpot sandbox connection with pronouns set up, holding one record synced to the app."""
    connection, account = sandbox_connection(tenant, crm_sandbox, "hubspot")
    connection_setup_pronouns(connection=connection)
    with account.lock:
        record_id = account.control_create(values, notify=False)["id"]
    connection.refresh_from_db()
    connection_sync(connection=connection, full=True)
    return connection, account, record_id, Contact.objects.get(tenant=tenant, email=values["email"])


def test_connect_a_sandbox_crm_set_up_pronouns_and_watch_sync_now_change_the_badge(
    tenant, crm_sandbox, live_server, broker, browser, tmp_path, settings
):
    # The API base URL override (to reach the sandbox) is offered to staff where CRM_API_BASE_OVERRIDE is on.
    settings.CRM_API_BASE_OVERRIDE = True
    get_user_model().objects.filter(username="alice").update(is_staff=True)
    account = crm_sandbox.sandbox.account_create("hubspot")
    with account.lock:
        grace = account.control_create({"email": "grace@example.com", "first_name": "Grace"}, notify=False)["id"]
        account.control_create({"first_name": "Nameless"}, notify=False)
    page = log_in(browser, live_server, "alice", "pw-alice-123")

    page.get_by_role("link", name="Connect a CRM").click()
    form = page.locator("#provider-hubspot [data-token-form]")
    # The account id stays empty: contactsync asks the CRM which account the token opens.
    form.locator("input[name=token]").fill(account.token)
    form.locator("input[name=api_base]").fill(account.base_url)
    form.get_by_role("button", name="Connect with this token").click()

    expect(page.locator(".messages")).to_contain_text("connected")
    connection = CrmConnection.objects.get(tenant=tenant, provider="hubspot")
    assert (connection.account_id, connection.api_base_url) == (account.account_id, account.base_url)
    card = page.locator(f"#connection-{connection.pk}")
    expect(card.locator(".badge")).to_have_text("Needs setup")

    card.get_by_role("button", name="Set up pronouns").click()
    expect(card.locator(".badge")).to_have_text("Healthy")
    expect(card.locator("[data-last-success]")).to_have_text("never")

    card.get_by_role("button", name="Sync now").click()
    page.evaluate("window.__notReloaded = true")
    assert SYNC_TASK in run_queued_tasks(broker)
    # The record without an email is left out, so the first sync leaves the connection degraded.
    expect(card.locator(".badge")).to_have_text("Degraded")
    expect(card.locator("[data-last-success]")).to_contain_text("(1 created,")
    assert page.evaluate("window.__notReloaded === true")  # the polling script changed it, not a reload
    assert Contact.objects.filter(tenant=tenant, email="grace@example.com", first_name="Grace").exists()
    page.reload()
    expect(card).to_contain_text("no email")

    # A few more runs with CRM-side work, so the screenshot's chart has something to show.
    for n in range(3):
        with account.lock:
            for m in range(n + 2):
                account.control_create({"email": f"crm-{n}-{m}@example.com", "first_name": "Lin"}, notify=False)
            account.control_update(grace, {"job_title": f"Engineer {n}"})
        connection.refresh_from_db()
        connection_sync(connection=connection)
    page.reload()
    expect(card.locator(".chart svg rect")).to_have_count(7)  # four runs' creates, three updates
    page.screenshot(path=os.environ.get("STATUS_PAGE_SCREENSHOT") or str(tmp_path / "status-page.png"), full_page=True)


def test_edit_a_contact_and_see_the_edit_arrive_in_the_sandbox(tenant, crm_sandbox, live_server, broker, browser):
    connection, account, record_id, ada = synced_sandbox_contact(
        tenant, crm_sandbox, email="ada@example.com", first_name="Ada"
    )
    page = log_in(browser, live_server, "alice", "pw-alice-123")

    page.get_by_role("link", name="Contacts").click()
    page.fill("#q", "ada@")
    page.press("#q", "Enter")
    page.get_by_role("link", name="ada@example.com").first.click()
    page.get_by_role("link", name="Edit").click()
    page.fill("input[name=first_name]", "Augusta")
    page.fill("input[name=pronouns]", "she/her")
    page.get_by_role("button", name="Save").click()

    expect(page.locator(".messages")).to_contain_text("saved")
    expect(page.get_by_text("A push is pending")).to_be_visible()
    assert PUSH_TASK in run_queued_tasks(broker)
    record = sandbox_record(account, record_id)
    assert (record["first_name"], record["pronouns"]) == ("Augusta", "she/her")
    page.reload()
    expect(page.get_by_text("A push is pending")).to_have_count(0)
    expect(page.locator("table").nth(1)).to_contain_text("In sync")

    tenant_create(slug="other", name="Other", username="bob", password="pw-bob-12345")
    other = log_in(browser, live_server, "bob", "pw-bob-12345")
    assert other.goto(f"{live_server.url}/contacts/{ada.pk}/").status == 404
    assert other.goto(f"{live_server.url}/contacts/{ada.pk}/edit/").status == 404


def test_review_a_conflict_keep_the_apps_value_and_see_it_reach_the_sandbox(
    tenant, crm_sandbox, live_server, broker, browser
):
    connection, account, record_id, ada = synced_sandbox_contact(
        tenant, crm_sandbox, email="ada@example.com", first_name="Ada"
    )
    page = log_in(browser, live_server, "alice", "pw-alice-123")

    page.get_by_role("link", name="Conflicts").click()
    expect(page.get_by_text("No conflict is waiting for review.")).to_be_visible()
    policy = page.locator("form", has=page.locator(f"select[name='policy-{connection.pk}-conflict_strategy']"))
    policy.get_by_label("Strategy").select_option("manual_review")
    policy.get_by_role("button", name="Save strategy").click()
    expect(page.locator(".messages")).to_contain_text("saved")
    connection.refresh_from_db()
    assert connection.conflict_strategy == "manual_review"

    # Both sides change the first name before the next sync.
    contact_update(contact=ada, values={"first_name": "Ada in the app"})
    with account.lock:
        account.control_update(record_id, {"first_name": "Ada in HubSpot"})
    connection_sync(connection=connection)
    run_queued_tasks(broker)
    conflict = SyncConflict.objects.get(link__contact=ada, field="first_name", resolution="open")

    page.reload()
    row = page.locator("tr", has_text="Ada in HubSpot")
    expect(row).to_contain_text("Ada in the app")
    row.get_by_role("link").first.click()
    expect(page).to_have_url(f"{live_server.url}/conflicts/{conflict.pk}/")
    page.get_by_role("button", name="Keep the app's value").click()

    expect(page.locator(".messages")).to_contain_text("Kept the")
    expect(page.locator("body")).to_contain_text("App value picked by alice")
    conflict.refresh_from_db()
    ada.refresh_from_db()
    assert (conflict.resolution, conflict.winner, ada.first_name) == ("picked_app", "app", "Ada in the app")
    assert PUSH_TASK in run_queued_tasks(broker)
    assert sandbox_record(account, record_id)["first_name"] == "Ada in the app"
