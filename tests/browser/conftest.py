"""Shared pieces of the browser tests: Debian's headless Chromium, signing in, and a worker's tasks.

The tests need Chromium at /usr/bin/chromium and never download a browser; `scripts/test.sh` installs
Debian's package when it is missing.
"""

import re
import threading

import pytest
from django.db.backends.signals import connection_created
from django.utils.module_loading import import_string
from playwright.sync_api import expect, sync_playwright

from tests.helpers import queued_tasks

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000  # the status page polls status.json every 2 s


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an asyncio loop in this thread; the ORM calls the test makes between
    # browser steps are ordinary synchronous ones, so Django's async-safety check is lifted for it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Under Playwright, the test's own queries get connections that Django's teardown does not see
    # (its connection handler keeps them per context), and an open one keeps PostgreSQL from dropping
    # the test database. So the connections this thread opens are closed here.
    opened = []

    def remember(sender, connection, **kwargs):
        if threading.current_thread() is threading.main_thread():
            opened.append(connection)

    connection_created.connect(remember)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        connection_created.disconnect(remember)
        for connection in opened:
            connection.close()


def log_in(browser, live_server, username, password):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(live_server.url + "/")
    return page


def run_queued_tasks(broker) -> list[str]:
    """Run the tasks the pages queued (syncs, pushes), as a django-q2 worker would, in this thread."""
    ran = []
    for task in queued_tasks(broker):
        import_string(task["func"])(*task["args"], **task["kwargs"])
        ran.append(task["func"])
    return ran
