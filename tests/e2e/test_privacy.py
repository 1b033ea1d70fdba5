"""A HubSpot privacy deletion end to end: the real connectors against the sandbox, the signed webhook
through the view. The person leaves the app and the tenant's Pipedrive, stays out, and comes back
once an operator lifts the suppression."""

import json

import pytest
from django.test import Client, TestCase

from syncapp import tasks
from syncapp.models import Contact, ExcludedRecord, Suppression
from syncapp.services.contacts import contact_create
from syncapp.services.suppressions import suppression_lift
from syncapp.services.webhooks import webhook_events_process
from tests.helpers import queued_tasks
from tests.providers.hubspot.webhook_adapter import load_events, sign_v3

from .conftest import assert_agree, assert_succeeded, make_crm

pytestmark = pytest.mark.django_db

SECRET = "hubspot-app-secret-for-e2e"
EMAIL = "ada@example.com"


def test_a_privacy_deletion_keeps_the_person_out_until_lifted(tenant, crm_sandbox, settings, broker):
    settings.HUBSPOT_WEBHOOK_SECRET = SECRET
    hubspot = make_crm(tenant, crm_sandbox, "hubspot")
    pipedrive = make_crm(tenant, crm_sandbox, "pipedrive")
    contact_create(tenant=tenant, values={"email": EMAIL, "first_name": "Ada"})
    contact_create(tenant=tenant, values={"email": "grace@example.com", "first_name": "Grace"})
    for crm in (hubspot, pipedrive):
        assert_succeeded(crm.sync(full=True))
    ada_id = hubspot.by_email(EMAIL)["id"]

    # HubSpot erases Ada and sends a signed contact.privacyDeletion.
    hubspot.delete(ada_id)
    (event,) = load_events("contact.privacyDeletion", objectId=int(ada_id), portalId=int(hubspot.account.account_id))
    body = json.dumps([event]).encode()
    headers = sign_v3(body, secret=SECRET)
    assert (
        Client().post("/webhooks/hubspot/", body, content_type="application/json", headers=headers).status_code == 200
    )
    queued_tasks(broker)  # the processing task: run here
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert webhook_events_process(connection=hubspot.connection) == 1
    (archive,) = queued_tasks(broker)
    assert tasks.crm_records_archive(*archive["args"]) == 1

    assert list(Contact.objects.values_list("email", flat=True)) == ["grace@example.com"]
    assert Suppression.objects.filter(tenant=tenant, lifted_at__isnull=True).count() == 1
    assert set(assert_agree(pipedrive, tenant)) == {"grace@example.com"}, "archived in Pipedrive too"

    # Someone adds Ada again in Pipedrive: neither a listing nor a poll brings her into the app or HubSpot.
    again = pipedrive.create(email=EMAIL, first_name="Ada")
    assert_succeeded(pipedrive.sync(full=True))
    assert_succeeded(pipedrive.sync())
    assert_succeeded(hubspot.sync(full=True))
    (excluded,) = ExcludedRecord.objects.filter(connection=pipedrive.connection)
    assert (excluded.record_id, excluded.code, excluded.email) == (again, ExcludedRecord.Code.SUPPRESSED, "")
    assert set(assert_agree(hubspot, tenant)) == {"grace@example.com"}

    # The operator lifts it: the next sync brings Ada back, and she reaches HubSpot again.
    assert suppression_lift(tenant=tenant, email=EMAIL, by="ops") == 1
    assert_succeeded(pipedrive.sync())
    assert_succeeded(hubspot.sync(trigger="push"))
    assert set(assert_agree(pipedrive, tenant)) == {EMAIL, "grace@example.com"}
    assert set(assert_agree(hubspot, tenant)) == {EMAIL, "grace@example.com"}
    assert not ExcludedRecord.objects.exists()
