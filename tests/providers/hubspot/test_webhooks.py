"""HubSpot webhooks: signatures with HubSpot's own test vectors, parsing, hints, and the endpoint."""

import json

import pytest
from django.test import Client

from syncapp import tasks
from syncapp.exceptions import WebhookPayloadError, WebhookSignatureError
from syncapp.models import Contact, ContactLink, WebhookEvent, WebhookRejection
from syncapp.providers import get_webhook_handler
from syncapp.providers.hubspot import webhooks
from syncapp.providers.hubspot.webhooks import HubspotWebhookHandler, signature_uri, signature_v2, signature_v3
from syncapp.services.tenants import tenant_create
from tests.helpers import queued_tasks
from tests.providers.hubspot.webhook_adapter import (
    PORTAL_ID,
    SECRET,
    WEBHOOK_URI,
    configure,
    hubspot_connection,
    load_events,
    sign_v3,
)

# HubSpot's documented examples (developers.hubspot.com, "Validating requests", and the Python SDK's tests).
DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_URI = "https://www.example.com/webhook_uri"
DOC_V3_BODY = b"{'example_field':'example_value'}"
DOC_V3_TIMESTAMP = 1693657560000
DOC_V3_SIGNATURE = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
DOC_V2_BODY = b'{"example_field":"example_value"}'
DOC_V2_GET_SIGNATURE = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
DOC_V2_POST_SIGNATURE = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"

EVENT_TYPES = [
    "contact.creation",
    "contact.propertyChange",
    "contact.deletion",
    "contact.restore",
    "contact.merge",
    "contact.privacyDeletion",
    "contact.associationChange",
]


@pytest.fixture(autouse=True)
def hubspot_webhooks(settings):
    configure(settings)


def post(client, events, *, path="/webhooks/hubspot/", headers=None, **sign_kwargs):
    body = events if isinstance(events, bytes) else json.dumps(events).encode()
    if headers is None:
        headers = sign_v3(body, **{"uri": f"http://testserver{path}", **sign_kwargs})
    return client.post(path, data=body, content_type="application/json", headers=headers)


def doc_request(rf, *, method="POST", body=DOC_V3_BODY, headers=None):
    return rf.generic(
        method,
        "/webhook_uri",
        data=body,
        content_type="application/json",
        secure=True,
        headers={"Host": "www.example.com", **(headers or {})},
    )


@pytest.fixture
def doc_setup(settings, monkeypatch):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "www.example.com"]
    settings.HUBSPOT_WEBHOOK_SECRET = DOC_SECRET

    def at(now_ms):
        monkeypatch.setattr(webhooks, "_now_ms", lambda: now_ms)

    return at


# Signatures -----------------------------------------------------------------------------------


def test_v3_signature_matches_hubspots_documented_example():
    signature = signature_v3(
        secret=DOC_SECRET, method="POST", uri=DOC_URI, body=DOC_V3_BODY, timestamp=str(DOC_V3_TIMESTAMP)
    )
    assert signature == DOC_V3_SIGNATURE


def test_v3_documented_request_verifies_within_the_window_only(rf, doc_setup):
    headers = {"X-HubSpot-Signature-v3": DOC_V3_SIGNATURE, "X-HubSpot-Request-Timestamp": str(DOC_V3_TIMESTAMP)}
    request = doc_request(rf, headers=headers)
    assert request.build_absolute_uri() == DOC_URI
    handler = HubspotWebhookHandler()

    doc_setup(DOC_V3_TIMESTAMP + 299_000)
    handler.verify(request)

    doc_setup(DOC_V3_TIMESTAMP + 301_000)
    with pytest.raises(WebhookSignatureError, match="old"):
        handler.verify(request)

    doc_setup(DOC_V3_TIMESTAMP - 301_000)
    with pytest.raises(WebhookSignatureError, match="future"):
        handler.verify(request)


def test_v3_signature_over_another_body_is_refused(rf, doc_setup):
    doc_setup(DOC_V3_TIMESTAMP)
    headers = {"X-HubSpot-Signature-v3": DOC_V3_SIGNATURE, "X-HubSpot-Request-Timestamp": str(DOC_V3_TIMESTAMP)}
    with pytest.raises(WebhookSignatureError, match="does not match"):
        HubspotWebhookHandler().verify(doc_request(rf, body=DOC_V2_BODY, headers=headers))


def test_v2_signatures_match_hubspots_documented_examples():
    assert signature_v2(secret=DOC_SECRET, method="GET", uri=DOC_URI, body=b"") == DOC_V2_GET_SIGNATURE
    assert signature_v2(secret=DOC_SECRET, method="POST", uri=DOC_URI, body=DOC_V2_BODY) == DOC_V2_POST_SIGNATURE


@pytest.mark.parametrize(
    ("method", "body", "signature"),
    [("GET", b"", DOC_V2_GET_SIGNATURE), ("POST", DOC_V2_BODY, DOC_V2_POST_SIGNATURE)],
)
def test_v2_documented_request_verifies_only_when_enabled(rf, settings, doc_setup, method, body, signature):
    headers = {"X-HubSpot-Signature-Version": "v2", "X-HubSpot-Signature": signature}
    request = doc_request(rf, method=method, body=body, headers=headers)
    handler = HubspotWebhookHandler()

    with pytest.raises(WebhookSignatureError, match="HUBSPOT_ACCEPT_V2_SIGNATURE"):
        handler.verify(request)

    settings.HUBSPOT_ACCEPT_V2_SIGNATURE = True
    handler.verify(request)
    tampered = doc_request(rf, method=method, body=body + b" ", headers=headers)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        handler.verify(tampered)


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ],
)
def test_uri_decodes_each_documented_escape(encoded, decoded):
    assert signature_uri(f"https://h.example/p?q=a{encoded}b") == f"https://h.example/p?q=a{decoded}b"


@pytest.mark.parametrize("escape", ["%20", "%26", "%3D", "%23", "%25", "%3a"])
def test_uri_keeps_every_other_escape(escape):
    assert signature_uri(f"https://h.example/p?q={escape}") == f"https://h.example/p?q={escape}"


def test_no_configured_secret_refuses_every_request(rf, settings, doc_setup):
    doc_setup(DOC_V3_TIMESTAMP)
    settings.HUBSPOT_WEBHOOK_SECRET = settings.HUBSPOT_CLIENT_SECRET = ""
    headers = {"X-HubSpot-Signature-v3": DOC_V3_SIGNATURE, "X-HubSpot-Request-Timestamp": str(DOC_V3_TIMESTAMP)}
    with pytest.raises(WebhookSignatureError, match="No HubSpot webhook secret"):
        HubspotWebhookHandler().verify(doc_request(rf, headers=headers))


def test_client_secret_signs_when_no_webhook_secret_is_set(rf, settings, doc_setup):
    doc_setup(DOC_V3_TIMESTAMP)
    settings.HUBSPOT_WEBHOOK_SECRET, settings.HUBSPOT_CLIENT_SECRET = "", DOC_SECRET
    headers = {"X-HubSpot-Signature-v3": DOC_V3_SIGNATURE, "X-HubSpot-Request-Timestamp": str(DOC_V3_TIMESTAMP)}
    HubspotWebhookHandler().verify(doc_request(rf, headers=headers))


def test_missing_signature_or_timestamp_is_refused(rf, doc_setup):
    doc_setup(DOC_V3_TIMESTAMP)
    handler = HubspotWebhookHandler()
    with pytest.raises(WebhookSignatureError, match="missing"):
        handler.verify(doc_request(rf))
    with pytest.raises(WebhookSignatureError, match="Timestamp"):
        handler.verify(doc_request(rf, headers={"X-HubSpot-Signature-v3": DOC_V3_SIGNATURE}))


# Parsing and hints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'{"portalId": 1}', "JSON array"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_refused(body, message):
    with pytest.raises(WebhookPayloadError, match=message):
        HubspotWebhookHandler().parse(body)


def test_parse_returns_one_notice_per_event_routed_by_portal():
    events = load_events("contact.propertyChange") + load_events("contact.creation")
    notices = HubspotWebhookHandler().parse(json.dumps(events).encode())
    assert [(n.account_id, n.event_type) for n in notices] == [
        (PORTAL_ID, "contact.propertyChange"),
        (PORTAL_ID, "contact.creation"),
    ]
    assert notices[0].payload == events[0]


def test_event_type_is_read_from_either_field():
    (event,) = load_events("contact.creation")
    event["eventType"] = event.pop("subscriptionType")
    (notice,) = HubspotWebhookHandler().parse(json.dumps([event]).encode())
    assert notice.event_type == "contact.creation"


def test_batches_of_any_size_are_accepted():
    events = [load_events("contact.creation", eventId=n)[0] for n in range(150)]
    assert len(HubspotWebhookHandler().parse(json.dumps(events).encode())) == 150


def test_dedupe_key_ignores_the_attempt_number_but_not_the_event_identity():
    handler = HubspotWebhookHandler()

    def key(**changes):
        (notice,) = handler.parse(json.dumps(load_events("contact.propertyChange", **changes)).encode())
        return notice.dedupe_key

    original = key()
    assert len(original) <= 255
    assert key(attemptNumber=3, propertyValue="later") == original
    for changes in (
        {"portalId": 1},
        {"subscriptionId": 1},
        {"eventId": 1},
        {"objectId": 1},
        {"occurredAt": 1},
        {"propertyName": "phone"},
    ):
        assert key(**changes) != original, changes


@pytest.mark.parametrize(
    ("name", "remote_ids", "purge"),
    [
        ("contact.creation", {"101"}, set()),
        ("contact.propertyChange", {"101"}, set()),
        ("contact.deletion", {"101"}, set()),
        ("contact.restore", {"101"}, set()),
        ("contact.merge", {"101", "102"}, set()),
        ("contact.privacyDeletion", set(), {"101"}),
        ("contact.associationChange", set(), set()),
    ],
)
def test_each_event_type_hints_its_records(name, remote_ids, purge):
    handler = HubspotWebhookHandler()
    hints = handler.hints(load_events(name))
    assert (hints.remote_ids, hints.purge_remote_ids) == (remote_ids, purge)
    assert handler.handles(name) == (name != "contact.associationChange")


def test_merge_hints_every_merged_away_record():
    hints = HubspotWebhookHandler().hints(load_events("contact.merge", mergedObjectIds=[101, 103, 104]))
    assert hints.remote_ids == {"101", "102", "103", "104"}


# What HubSpot documents is a positive integer id; anything else rejects its event, and only it.
MALFORMED_EVENTS = [
    pytest.param(5, "Event 0: it is not a JSON object.", id="not-an-object"),
    pytest.param({"portalId": None}, "portalId must be a positive integer, not null", id="no-portal"),
    pytest.param(
        {"portalId": "62515\u0000"}, 'portalId must be a positive integer, not "62515\\u0000"', id="nul-portal"
    ),
    pytest.param({"portalId": True}, "portalId must be a positive integer, not true", id="bool-portal"),
    pytest.param({"portalId": 0}, "portalId must be a positive integer, not 0", id="zero-portal"),
    pytest.param({"subscriptionType": None}, "subscriptionType must be a short dotted name, not null", id="no-type"),
    pytest.param({"subscriptionType": ["contact.creation"]}, "subscriptionType must be", id="list-type"),
    pytest.param({"subscriptionType": "contact.creation\u0000"}, "subscriptionType must be", id="nul-type"),
    pytest.param({"objectId": None}, "objectId must be a positive integer, not null", id="no-object"),
    pytest.param({"objectId": "1\u0000"}, 'objectId must be a positive integer, not "1\\u0000"', id="nul-object"),
    pytest.param({"objectId": -101}, "objectId must be a positive integer, not -101", id="negative-object"),
    pytest.param({"objectId": 1.5}, "objectId must be a positive integer, not 1.5", id="float-object"),
    pytest.param({"objectId": "0101"}, "objectId must be a positive integer", id="leading-zero"),
    pytest.param({"objectId": 2**63}, "objectId must be a positive integer", id="beyond-int64"),
    pytest.param({"objectId": "\u0661"}, "objectId must be a positive integer", id="arabic-digit"),
    pytest.param(
        {"subscriptionType": "contact.merge", "mergedObjectIds": 5},
        "mergedObjectIds must be a list of ids, not 5",
        id="merged-int",
    ),
    pytest.param(
        {"subscriptionType": "contact.merge", "mergedObjectIds": [101, "x"]},
        'mergedObjectIds[] must be a positive integer, not "x"',
        id="merged-text",
    ),
    pytest.param(
        {"subscriptionType": "contact.merge", "primaryObjectId": {"id": 1}},
        "primaryObjectId must be a positive integer",
        id="primary-object",
    ),
    pytest.param(
        {"subscriptionType": "contact.privacyDeletion", "objectId": "all"},
        'objectId must be a positive integer, not "all"',
        id="privacy-text",
    ),
]


def malformed(changes) -> dict | int:
    """Return a creation event with ``changes``, None removing a field; a value that is no object stands alone."""
    if not isinstance(changes, dict):
        return changes
    (event,) = load_events("contact.creation", eventId=666)
    event.update(changes)
    return {name: value for name, value in event.items() if value is not None}


@pytest.mark.parametrize(("changes", "reason"), MALFORMED_EVENTS)
def test_a_malformed_event_is_rejected_and_its_neighbours_are_kept(changes, reason):
    good = load_events("contact.creation")[0]
    bad = json.loads(json.dumps(malformed(changes)))
    rejected, kept = HubspotWebhookHandler().parse(json.dumps([bad, good]).encode())

    assert reason in rejected.rejected
    assert rejected.payload == bad
    assert (kept.rejected, kept.account_id, kept.event_type, kept.payload) == ("", PORTAL_ID, "contact.creation", good)


def test_ids_of_events_that_are_not_processed_are_not_checked():
    (association,) = load_events("contact.associationChange", objectId="n/a")
    (notice,) = HubspotWebhookHandler().parse(json.dumps([association]).encode())
    assert notice.rejected == ""


@pytest.mark.parametrize("object_id", [101, "101"])
def test_ids_as_numbers_or_text_name_the_same_record(object_id):
    hints = HubspotWebhookHandler().hints(load_events("contact.creation", objectId=object_id))
    assert hints.remote_ids == {"101"}


def test_hints_refuse_a_payload_stored_before_the_checks():
    with pytest.raises(WebhookPayloadError, match="mergedObjectIds"):
        HubspotWebhookHandler().hints(load_events("contact.merge", mergedObjectIds=5))


def test_the_registry_finds_the_hubspot_handler():
    assert isinstance(get_webhook_handler("hubspot"), HubspotWebhookHandler)


# The endpoint ---------------------------------------------------------------------------------


@pytest.fixture
def hubspot(tenant):
    return hubspot_connection(tenant)


@pytest.mark.django_db
def test_valid_delivery_is_stored_answered_and_queued(hubspot, broker, django_capture_on_commit_callbacks):
    connection, _ = hubspot
    client = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, load_events("contact.creation"))

    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0}
    event = WebhookEvent.objects.get()
    assert (event.provider, event.connection, event.status) == ("hubspot", connection, WebhookEvent.Status.PENDING)
    assert json.loads(event.body) == load_events("contact.creation")[0]
    (task,) = queued_tasks(broker)
    assert (task["func"], task["args"]) == ("syncapp.tasks.webhook_events_process", (connection.pk,))


@pytest.mark.django_db
def test_webhook_round_trip_creates_then_updates_the_app_contact(hubspot, broker, django_capture_on_commit_callbacks):
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com", first_name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        post(Client(), load_events("contact.creation", objectId=int(remote_id)))
    for task in queued_tasks(broker):
        assert tasks.webhook_events_process(*task["args"]) == 1

    contact = Contact.objects.get(tenant=connection.tenant)
    assert (contact.email, contact.first_name) == ("ada@example.com", "Ada")
    assert ContactLink.objects.get(contact=contact).remote_id == remote_id

    crm.user_edit(remote_id, first_name="Augusta")
    with django_capture_on_commit_callbacks(execute=True):
        post(Client(), load_events("contact.propertyChange", objectId=int(remote_id), propertyName="firstname"))
    for task in queued_tasks(broker):
        tasks.webhook_events_process(*task["args"])
    contact.refresh_from_db()
    assert contact.first_name == "Augusta"
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}


@pytest.mark.django_db
def test_an_event_whose_task_was_lost_is_processed_by_the_next_poll(
    hubspot, broker, django_capture_on_commit_callbacks
):
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com", first_name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        post(Client(), load_events("contact.creation", objectId=int(remote_id)))
    for task in queued_tasks(broker):
        tasks.webhook_events_process(*task["args"])
    crm.user_edit(remote_id, first_name="Augusta")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), load_events("contact.propertyChange", objectId=int(remote_id)))
    assert response.status_code == 200
    broker.purge_queue()  # the worker died: the processing task is gone, the stored event is not

    tasks.connection_poll(connection.pk)

    # The poll's own listing would pull the edit too; the event's status is what shows it was retried.
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count() == 0
    event = WebhookEvent.objects.order_by("pk").last()
    assert (event.status, event.attempts) == (WebhookEvent.Status.PROCESSED, 1)
    contact = Contact.objects.get(tenant=connection.tenant)
    assert (contact.email, contact.first_name) == ("ada@example.com", "Augusta")


# transaction=True: the view's on_commit callbacks run when its transaction commits, inside the request.
@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_still_answers_200_with_the_event_stored_pending(hubspot, monkeypatch):
    connection, _ = hubspot
    calls = []

    def broker_down(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("django_q.tasks.async_task", broker_down)

    response = post(Client(raise_request_exception=False), load_events("contact.creation"))

    assert calls == [("syncapp.tasks.webhook_events_process", connection.pk)]
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.connection, event.status) == (connection, WebhookEvent.Status.PENDING)


@pytest.mark.django_db
@pytest.mark.parametrize("name", EVENT_TYPES)
def test_each_event_type_is_accepted(hubspot, name):
    response = post(Client(), load_events(name))
    assert response.status_code == 200
    expected = WebhookEvent.Status.IGNORED if name == "contact.associationChange" else WebhookEvent.Status.PENDING
    assert WebhookEvent.objects.get().status == expected


@pytest.mark.django_db
def test_tampered_body_is_refused(hubspot):
    body = json.dumps(load_events("contact.creation")).encode()
    headers = sign_v3(body)
    response = post(Client(), body.replace(b"101", b"102"), headers=headers)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()
    rejection = WebhookRejection.objects.get()
    assert (rejection.provider, rejection.status_code, rejection.count) == ("hubspot", 401, 1)
    post(Client(), body.replace(b"101", b"103"), headers=headers)
    assert WebhookRejection.objects.get().count == 2


@pytest.mark.django_db
def test_signature_for_another_uri_is_refused(hubspot):
    response = post(Client(), load_events("contact.creation"), uri="https://evil.example/webhooks/hubspot/")
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_uri_is_signed_with_the_documented_escapes_decoded(hubspot):
    body = json.dumps(load_events("contact.creation")).encode()
    path = "/webhooks/hubspot/?tag=a%3Ab%2Cc&x=%20"
    headers = sign_v3(body, uri="http://testserver/webhooks/hubspot/?tag=a:b,c&x=%20")
    assert post(Client(), body, path=path, headers=headers).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("offset_ms", [-301_000, 301_000])
def test_timestamps_outside_the_window_are_refused(hubspot, offset_ms):
    import time

    response = post(Client(), load_events("contact.creation"), timestamp=int(time.time() * 1000) + offset_ms)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_rotated_secrets_are_both_accepted(hubspot, settings):
    settings.HUBSPOT_WEBHOOK_SECRET = f"new-secret, {SECRET}"
    assert post(Client(), load_events("contact.creation"), secret="new-secret").status_code == 200
    assert post(Client(), load_events("contact.restore"), secret=SECRET).status_code == 200
    assert post(Client(), load_events("contact.deletion"), secret="retired").status_code == 401
    assert WebhookEvent.objects.count() == 2


@pytest.mark.django_db
def test_v2_signature_is_refused_unless_enabled(hubspot, settings):
    body = json.dumps(load_events("contact.creation")).encode()
    headers = {
        "X-HubSpot-Signature-Version": "v2",
        "X-HubSpot-Signature": signature_v2(secret=SECRET, method="POST", uri=WEBHOOK_URI, body=body),
    }
    assert post(Client(), body, headers=headers).status_code == 401

    settings.HUBSPOT_ACCEPT_V2_SIGNATURE = True
    assert post(Client(), body, headers=headers).status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_oversized_body_is_refused_before_it_is_verified(hubspot, settings, view_log):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    events = load_events("contact.creation")
    assert len(json.dumps(events)) > 100
    response = post(Client(), events, headers={})
    assert response.status_code == 413
    assert view_log == ["WARNING hubspot webhook refused with 413 from 127.0.0.1: The body is larger than 100 bytes."]
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"[{", b'{"portalId": 62515}', b"[]x"])
def test_malformed_delivery_is_refused(hubspot, body):
    assert post(Client(), body).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_delivery_with_one_malformed_event_applies_the_other(
    hubspot, broker, settings, django_capture_on_commit_callbacks
):
    connection, crm = hubspot
    remote_id = crm.user_create(email="ada@example.com", first_name="Ada")
    bad = load_events("contact.merge", mergedObjectIds=5)[0]
    good = load_events("contact.creation", objectId=int(remote_id))[0]

    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), [bad, good])
    assert response.status_code == 200
    assert response.json() == {"received": 2, "duplicates": 0}
    for task in queued_tasks(broker):
        assert tasks.webhook_events_process(*task["args"]) == 1

    rejected, applied = WebhookEvent.objects.order_by("pk")
    assert (rejected.connection, rejected.status) == (connection, WebhookEvent.Status.FAILED)
    assert rejected.last_error == "Rejected as malformed: Event 0: mergedObjectIds must be a list of ids, not 5."
    assert rejected.attempts == settings.WEBHOOK_MAX_ATTEMPTS  # never retried on its own
    assert json.loads(rejected.body) == bad  # kept for the operator
    assert applied.status == WebhookEvent.Status.PROCESSED
    assert Contact.objects.get(tenant=connection.tenant).email == "ada@example.com"
    assert crm.calls.count("read_many") == 1


@pytest.mark.django_db
def test_rejections_are_logged_without_the_signature_or_secret(hubspot, view_log):
    body = json.dumps(load_events("contact.creation")).encode()
    headers = sign_v3(body, secret="wrong-secret")
    assert post(Client(), body, headers=headers).status_code == 401
    assert post(Client(), b"[{", headers=sign_v3(b"[{")).status_code == 400
    (signature, payload) = view_log
    assert signature.startswith("WARNING hubspot webhook refused with 401") and "does not match" in signature
    assert payload.startswith("WARNING hubspot webhook refused with 400") and "not valid JSON" in payload
    for line in view_log:
        assert headers["X-HubSpot-Signature-v3"] not in line
        assert "wrong-secret" not in line and SECRET not in line


@pytest.mark.django_db
def test_duplicated_delivery_is_stored_once(hubspot, broker, django_capture_on_commit_callbacks):
    events = load_events("contact.propertyChange")
    assert post(Client(), events).json() == {"received": 1, "duplicates": 0}
    with django_capture_on_commit_callbacks(execute=True):
        retry = post(Client(), [{**events[0], "attemptNumber": 1}] + events)
    assert retry.json() == {"received": 2, "duplicates": 2}
    assert WebhookEvent.objects.count() == 1
    assert queued_tasks(broker) == []


@pytest.mark.django_db
def test_an_event_the_inbox_did_not_store_answers_500_so_hubspot_retries(hubspot, broker, monkeypatch):
    monkeypatch.setattr(WebhookEvent.objects, "bulk_create", lambda objs, **options: [])  # a row skipped silently

    response = post(Client(raise_request_exception=False), load_events("contact.creation"))

    assert response.status_code == 500
    assert not WebhookEvent.objects.exists()
    assert queued_tasks(broker) == []


@pytest.mark.django_db
def test_a_delivery_racing_another_of_the_same_event_answers_200_and_stores_one_row(hubspot, monkeypatch):
    # Both deliveries miss the event in the duplicate lookup; the other one inserts it first.
    insert = WebhookEvent.objects.bulk_create

    def racing_insert(objs, **options):
        objs = list(objs)
        for obj in objs:
            WebhookEvent.objects.create(provider=obj.provider, connection=obj.connection, dedupe_key=obj.dedupe_key)
        return insert(objs, **options)

    monkeypatch.setattr(WebhookEvent.objects, "bulk_create", racing_insert)

    response = post(Client(raise_request_exception=False), load_events("contact.creation"))

    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_unknown_portal_is_recorded_as_ignored_and_reaches_no_tenant(
    tenant, broker, django_capture_on_commit_callbacks
):
    other = tenant_create(slug="globex", name="Globex")
    _, crm = hubspot_connection(tenant, PORTAL_ID)
    hubspot_connection(other, "777")
    crm.user_create(email="stranger@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = post(Client(), load_events("contact.creation", portalId=999))

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.connection, event.status) == (None, WebhookEvent.Status.IGNORED)
    assert "999" in event.last_error
    assert queued_tasks(broker) == []
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_connection_url_only_accepts_its_own_portal(tenant):
    connection, _ = hubspot_connection(tenant)
    path = f"/webhooks/hubspot/{connection.webhook_key}/"
    assert post(Client(), load_events("contact.creation"), path=path).status_code == 200
    assert post(Client(), load_events("contact.restore", portalId=777), path=path).status_code == 200
    statuses = dict(WebhookEvent.objects.values_list("connection_id", "status"))
    assert statuses == {connection.pk: WebhookEvent.Status.PENDING, None: WebhookEvent.Status.IGNORED}
    assert post(Client(), load_events("contact.creation"), path="/webhooks/hubspot/nope/").status_code == 404


@pytest.mark.django_db
def test_only_post_is_allowed(hubspot):
    assert Client().get("/webhooks/hubspot/").status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("provider_id", ["nope", "memory"])
def test_providers_without_webhooks_are_not_found(provider_id):
    assert post(Client(), load_events("contact.creation"), path=f"/webhooks/{provider_id}/").status_code == 404
