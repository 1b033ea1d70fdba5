"""The demo command end to end: sandbox, web app, webhooks, polls and syncs, then every side agrees."""

import json

import pytest
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
