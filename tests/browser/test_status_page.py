"""The status page in a real browser: Debian's headless Chromium driven by Playwright, against live_server."""

import pytest
from playwright.sync_api import expect

from syncapp.models import CrmConnection
from syncapp.services.sync import SYNC_TASK
from syncapp.services.tenants import tenant_create
from tests.browser.conftest import log_in, run_queued_tasks
from tests.helpers import sandbox_connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_page_pronouns_setup_sync_now_and_tenant_isolation(tenant, crm_sandbox, live_server, broker, browser):
    connection, account = sandbox_connection(tenant, crm_sandbox, "hubspot")
    page = log_in(browser, live_server, "alice", "pw-alice-123")

    card = page.locator(f"#connection-{connection.pk}")
    expect(card).to_be_visible()
    expect(card).to_contain_text(account.account_id)
    banner = card.locator("[data-pronouns-banner]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Pronouns are not set up")

    banner.get_by_role("button", name="Set up pronouns").click()
    expect(card.locator("[data-pronouns-banner]")).to_have_count(0)
    expect(page.locator(".messages")).to_contain_text("The next syncs include pronouns.")
    connection.refresh_from_db()
    assert connection.pronouns_state == CrmConnection.PronounsState.CONFIGURED

    card.get_by_role("button", name="Sync now").click()
    expect(page.locator(".messages")).to_contain_text("sync queued")
    last_run = card.locator("[data-last-run]")
    before = last_run.inner_text()
    # Mark this document: a reload would lose the mark, so the update below comes from the polling script.
    page.evaluate("window.__notReloaded = true")
    assert run_queued_tasks(broker) == [SYNC_TASK]
    expect(last_run).not_to_have_text(before)
    expect(last_run).to_contain_text("Manual run succeeded")
    assert page.evaluate("window.__notReloaded === true")

    tenant_create(slug="other", name="Other", username="bob", password="pw-bob-12345")
    other = log_in(browser, live_server, "bob", "pw-bob-12345")
    response = other.goto(f"{live_server.url}/connections/{connection.pk}/status.json")
    assert response.status == 404
    own = page.request.get(f"{live_server.url}/connections/{connection.pk}/status.json")
    assert own.status == 200


def test_a_person_in_two_tenants_switches_in_the_header(tenant, crm_sandbox, live_server, browser):
    zenith = tenant_create(slug="zenith", name="Zenith", username="alice", add_existing_user=True)
    acme_connection, _ = sandbox_connection(tenant, crm_sandbox, "hubspot")
    zenith_connection, _ = sandbox_connection(zenith, crm_sandbox, "pipedrive")
    page = log_in(browser, live_server, "alice", "pw-alice-123")
    switcher = page.locator("header form.tenant")
    expect(switcher.get_by_label("Tenant")).to_have_value(str(tenant.pk))
    expect(page.locator(f"#connection-{acme_connection.pk}")).to_be_visible()

    page.goto(live_server.url + "/contacts/")
    switcher.get_by_label("Tenant").select_option(label="Zenith")
    switcher.get_by_role("button", name="Switch").click()

    expect(page.locator(".messages")).to_contain_text("You are now working in Zenith.")
    assert page.url == live_server.url + "/contacts/"
    expect(switcher.get_by_label("Tenant")).to_have_value(str(zenith.pk))
    page.goto(live_server.url + "/")
    expect(page.locator(f"#connection-{zenith_connection.pk}")).to_be_visible()
    expect(page.locator(f"#connection-{acme_connection.pk}")).to_have_count(0)
