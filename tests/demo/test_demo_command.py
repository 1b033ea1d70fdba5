"""The demo command end to end: sandbox, web app, webhooks, polls and syncs, then every side agrees."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError

from syncapp.models import Contact, CrmConnection, SyncConflict, Tenant, WebhookEvent
from syncapp.sandbox.demo import TENANT, Demo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_settings(settings):
    # The demo changes these for its run; through the fixture they are restored afterwards.
    settings.HUBSPOT_WEBHOOK_SECRET = ""
    settings.DEFAULT_SYNC_INTERVAL = settings.DEFAULT_SYNC_INTERVAL
    settings.HUBSPOT_POLL_INTERVAL = settings.HUBSPOT_POLL_INTERVAL
    return settings


def test_demo_once_syncs_every_side_to_agreement(demo_settings, capsys):
    call_command("demo", "--no-serve", "--contacts", "12")
    summary = json.loads(capsys.readouterr().out)

    assert summary["agree"] is True, summary["disagreements"]
    # 12 per side over three overlapping ranges: 18 distinct people, two deleted by the demo's edits.
    assert summary["contacts"] == {"app": 16, "hubspot": 16, "pipedrive": 16}
    assert Contact.objects.filter(deleted_at__isnull=True).count() == 16
    assert summary["conflicts"] == SyncConflict.objects.count() > 0
    assert set(summary["runs"]) == {"succeeded"}
    # Both CRMs' changes arrived as verified webhooks, and every stored event was processed.
    assert {"hubspot processed", "pipedrive processed"} <= set(summary["webhook_events"])
    assert not WebhookEvent.objects.exclude(status=WebhookEvent.Status.PROCESSED).exists()
    assert summary["webhook_deliveries"]["pending"] == 0
    assert {c.pronouns_state for c in CrmConnection.objects.all()} == {CrmConnection.PronounsState.CONFIGURED}


def test_demo_refuses_too_few_contacts(demo_settings):
    with pytest.raises(Exception, match="at least 8"):
        call_command("demo", "--no-serve", "--contacts", "3")


def test_demo_refuses_to_run_in_production(demo_settings):
    demo_settings.IS_PRODUCTION = True

    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        call_command("demo", "--no-serve", "--contacts", "12")

    assert not Tenant.objects.exists()


def test_a_second_demo_run_takes_over_its_own_user_with_a_new_password(demo_settings):
    first, second = Demo(sandbox=None, app_url=""), Demo(sandbox=None, app_url="")
    first.reset_tenant()

    second.reset_tenant()

    assert authenticate(username=TENANT, password=first.password) is None
    user = authenticate(username=TENANT, password=second.password)
    assert user is not None and list(Tenant.objects.filter(membership__user=user)) == [second.tenant]


def _descendants(pid: int) -> set[int]:
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children.union(*(_descendants(child) for child in children if Path(f"/proc/{child}").exists()))


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.django_db(transaction=False)
def test_sigterm_stops_the_serving_demo_and_its_django_q2_cluster(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")} | {
        "DATABASE_URL": f"sqlite:///{tmp_path}/demo.sqlite3",
        "SYNC_ENCRYPTION_KEY": "demo-test",
    }
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--contacts", "8", "--port", "0", "--sandbox-port", "0"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    children: set[int] = set()
    try:
        for line in demo.stdout:
            if "demo is running" in line:
                break
        children = _descendants(demo.pid)
        assert children, "the demo started no django-q2 cluster"

        demo.send_signal(signal.SIGTERM)

        assert demo.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)]
    finally:
        demo.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
