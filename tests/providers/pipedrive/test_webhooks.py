"""Pipedrive webhooks: Basic credentials per connection, v2 parsing, hints, the endpoint, and setup."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from syncapp import tasks
from syncapp.exceptions import ValidationError, WebhookPayloadError, WebhookSignatureError
from syncapp.models import Contact, ContactLink, CrmConnection, WebhookEvent, WebhookRejection
from syncapp.providers import get_webhook_handler
from syncapp.providers.pipedrive.webhooks import PipedriveWebhookHandler
from syncapp.services.tenants import tenant_create
from syncapp.services.webhook_setup import connection_setup_webhooks
from tests.helpers import make_connection, queued_tasks
from tests.providers.pipedrive.webhook_adapter import (
    COMPANY_ID,
    SHARED_SECRET,
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    TestPipedriveAdapter,
    basic_auth,
    configure,
    load_event,
    pipedrive_connection,
)

PERSON_EVENTS = ["person.create", "person.change", "person.delete", "person.merge.delete", "person.merge.change"]


@pytest.fixture(autouse=True)
def pipedrive_webhooks(settings):
    configure(settings)


@pytest.fixture
def pipedrive(tenant):
    return pipedrive_connection(tenant)


def url(connection) -> str:
    return f"/webhooks/pipedrive/{connection.webhook_key}/"


def post(connection_or_path, payload, *, headers=None):
    path = connection_or_path if isinstance(connection_or_path, str) else url(connection_or_path)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Client().post(
        path, data=body, content_type="application/json", headers=basic_auth() if headers is None else headers
    )


def process_queued(broker) -> None:
    for task in queued_tasks(broker):
        tasks.webhook_events_process(*task["args"])


# The handler on its own ------------------------------------------------------------------------


def test_the_registry_finds_the_pipedrive_handler():
    assert isinstance(get_webhook_handler("pipedrive"), PipedriveWebhookHandler)


@pytest.mark.django_db
def test_verify_needs_the_connection(rf, pipedrive):
    request = rf.post("/webhooks/pipedrive/", data=b"{}", content_type="application/json", headers=basic_auth())
    with pytest.raises(WebhookSignatureError, match="connection's URL"):
        PipedriveWebhookHandler().verify(request)
    PipedriveWebhookHandler().verify(request, connection=pipedrive[0])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("", "missing"),
        ("Bearer abc", "not HTTP Basic"),
        ("Basic", "not HTTP Basic"),
        ("Basic !!!not-base64", "not valid base64"),
        ("Basic bm8tY29sb24=", "separator"),  # "no-colon"
    ],
)
def test_malformed_authorization_is_refused(rf, pipedrive, authorization, message):
    headers = {"Authorization": authorization} if authorization else {}
    request = rf.post("/x/", data=b"{}", content_type="application/json", headers=headers)
    with pytest.raises(WebhookSignatureError, match=message):
        PipedriveWebhookHandler().verify(request, connection=pipedrive[0])


@pytest.mark.django_db
def test_connection_without_stored_credentials_refuses_everything(rf, tenant):
    connection, _ = pipedrive_connection(tenant, webhook_credentials=False)
    request = rf.post("/x/", data=b"{}", content_type="application/json", headers=basic_auth())
    with pytest.raises(WebhookSignatureError, match="run setup_webhooks"):
        PipedriveWebhookHandler().verify(request, connection=connection)
    # An empty shared user/password never matches by accident.
    empty = rf.post("/x/", data=b"{}", content_type="application/json", headers=basic_auth("contactsync", ""))
    with pytest.raises(WebhookSignatureError):
        PipedriveWebhookHandler().verify(empty, connection=connection)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "meta object"),
        (b'{"meta": []}', "meta object"),
        (b'{"v": 1, "meta": {"v": 1, "action": "updated", "object": "person", "id": 8}}', "v1 payload"),
        (b'{"meta": {"action": "change", "entity": "person", "company_id": "1"}}', "lacks id"),
        (b'{"meta": {"id": {"x": 1}, "action": "change", "entity": "person", "company_id": "1"}}', "lacks id"),
        (b'{"meta": {"id": true, "action": "change", "entity": "person", "company_id": "1"}}', "lacks id"),
        (b"{" * 100_000 + b"}" * 100_000, "not valid JSON"),
    ],
)
def test_malformed_bodies_are_refused(body, message):
    with pytest.raises(WebhookPayloadError, match=message):
        PipedriveWebhookHandler().parse(body)


def test_parse_returns_one_notice_keyed_on_the_event_id():
    payload = load_event("person.change")
    (notice,) = PipedriveWebhookHandler().parse(json.dumps(payload).encode())
    assert notice.dedupe_key == "pipedrive:7c812ffd-8f50-45ea-a597-b8fcba2da9c0"
    assert (notice.account_id, notice.event_type, notice.payload) == (COMPANY_ID, "person.change", payload)


def test_retries_share_the_dedupe_key_and_other_events_do_not():
    handler = PipedriveWebhookHandler()

    def key(**meta):
        (notice,) = handler.parse(json.dumps(load_event("person.change", **meta)).encode())
        return notice.dedupe_key

    assert key(attempt=2) == key(attempt=4) == key()
    assert key(id="another-event") != key()
    assert len(key(id="x" * 1000)) <= 255


@pytest.mark.parametrize(
    ("meta", "data", "reason"),
    [
        ({"company_id": None}, None, "The meta object lacks company_id."),
        ({"company_id": "8087566\u0000"}, None, 'meta.company_id must be a positive integer, not "8087566\\u0000"'),
        ({"company_id": -1}, None, "meta.company_id must be a positive integer, not -1"),
        ({"entity": "per son"}, None, 'meta.entity must be a short dotted name, not "per son"'),
        ({"action": ["change"]}, None, "meta.action must be a short dotted name"),
        ({"entity_id": "1\u0000"}, None, 'meta.entity_id must be a positive integer, not "1\\u0000"'),
        ({"entity_id": "101 OR 1=1"}, None, "meta.entity_id must be a positive integer"),
        ({"entity_id": True}, None, "meta.entity_id must be a positive integer, not true"),
        ({"entity_id": None}, {"id": [101]}, "data.id must be a positive integer, not [101]"),
        ({"entity_id": None}, {"id": None}, "The person event names no person"),
        ({}, {"merged_from_id": "x"}, 'data.merged_from_id must be a positive integer, not "x"'),
        ({"merged_to_id": 0}, None, "meta.merged_to_id must be a positive integer, not 0"),
    ],
)
def test_a_malformed_event_is_a_rejected_notice(meta, data, reason):
    payload = load_event("person.change", data=data, **meta)
    payload["meta"] = {name: value for name, value in payload["meta"].items() if value is not None}
    payload["data"] = {name: value for name, value in payload["data"].items() if value is not None}
    payload["previous"] = None

    (notice,) = PipedriveWebhookHandler().parse(json.dumps(payload).encode())

    assert reason in notice.rejected
    assert notice.payload == json.loads(json.dumps(payload))
    assert notice.dedupe_key == "pipedrive:7c812ffd-8f50-45ea-a597-b8fcba2da9c0"


def test_a_rejected_event_keeps_its_valid_company_for_routing():
    (notice,) = PipedriveWebhookHandler().parse(json.dumps(load_event("person.change", entity_id="x")).encode())
    assert (notice.account_id, notice.rejected) == (COMPANY_ID, 'meta.entity_id must be a positive integer, not "x".')


def test_an_event_id_with_control_characters_is_hashed_into_the_key():
    (notice,) = PipedriveWebhookHandler().parse(json.dumps(load_event("person.change", id="collide\u0000")).encode())
    assert notice.dedupe_key.startswith("pipedrive:") and "\x00" not in notice.dedupe_key
    assert len(notice.dedupe_key) == len("pipedrive:") + 64


def test_an_event_id_with_a_lone_surrogate_is_hashed_into_the_key():
    body = json.dumps(load_event("person.change", id="\ud800")).encode()  # valid JSON, not encodable as UTF-8
    (notice,) = PipedriveWebhookHandler().parse(body)
    assert len(notice.dedupe_key) == len("pipedrive:") + 64


def test_numeric_company_id_is_routed_as_a_string():
    (notice,) = PipedriveWebhookHandler().parse(json.dumps(load_event("person.create", company_id=8087566)).encode())
    assert notice.account_id == COMPANY_ID


@pytest.mark.parametrize(
    ("name", "remote_ids", "handled"),
    [
        ("person.create", {"101"}, True),
        ("person.change", {"101"}, True),
        ("person.delete", {"101"}, True),
        ("person.merge.delete", {"101", "102"}, True),
        ("person.merge.change", {"101", "102"}, True),
        ("deal.change", set(), False),
    ],
)
def test_each_action_hints_its_persons(name, remote_ids, handled):
    handler = PipedriveWebhookHandler()
    payload = load_event(name)
    hints = handler.hints([payload])
    assert (hints.remote_ids, hints.purge_remote_ids) == (remote_ids, set())
    (notice,) = handler.parse(json.dumps(payload).encode())
    assert handler.handles(notice.event_type) is handled


def test_entity_id_falls_back_to_the_record_id():
    payload = load_event("person.delete")
    del payload["meta"]["entity_id"]
    assert PipedriveWebhookHandler().hints([payload]).remote_ids == {"101"}


# The endpoint ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_good_credentials_are_stored_answered_and_queued(pipedrive, broker, django_capture_on_commit_callbacks):
    connection, _ = pipedrive
    with django_capture_on_commit_callbacks(execute=True):
        response = post(connection, load_event("person.create"))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "duplicates": 0}
    event = WebhookEvent.objects.get()
    assert (event.provider, event.connection, event.status) == ("pipedrive", connection, WebhookEvent.Status.PENDING)
    assert event.dedupe_key == f"connection-{connection.pk}/pipedrive:0b6f7c39-2d0a-4a55-9a6e-0f3f5c1e4a11"
    (task,) = queued_tasks(broker)
    assert (task["func"], task["args"]) == ("syncapp.tasks.webhook_events_process", (connection.pk,))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        basic_auth(password="wrong-password"),
        basic_auth(user="someone-else"),
        basic_auth(user=WEBHOOK_USER, password=WEBHOOK_PASSWORD + "x"),
        {},
        {"Authorization": "Bearer " + WEBHOOK_PASSWORD},
    ],
    ids=["bad-password", "bad-user", "longer-password", "missing", "not-basic"],
)
def test_bad_or_missing_credentials_are_refused(pipedrive, headers, view_log):
    response = post(pipedrive[0], load_event("person.create"), headers=headers)
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()
    rejection = WebhookRejection.objects.get()
    assert (rejection.provider, rejection.status_code) == ("pipedrive", 401)
    for text in (response.content.decode(), rejection.last_reason, *view_log):
        assert WEBHOOK_PASSWORD not in text and WEBHOOK_USER not in text


@pytest.mark.django_db
def test_the_shared_secret_is_an_additional_credential(pipedrive, settings):
    connection, _ = pipedrive
    shared = basic_auth("contactsync", SHARED_SECRET)
    assert post(connection, load_event("person.create"), headers=shared).status_code == 401

    settings.PIPEDRIVE_WEBHOOK_SECRET = SHARED_SECRET
    assert post(connection, load_event("person.create"), headers=shared).status_code == 200
    assert post(connection, load_event("person.change")).status_code == 200
    assert (
        post(connection, load_event("person.delete"), headers=basic_auth(WEBHOOK_USER, SHARED_SECRET)).status_code
        == 401
    )
    assert WebhookEvent.objects.count() == 2


@pytest.mark.django_db
def test_the_shared_url_without_a_connection_key_is_refused(pipedrive, settings):
    settings.PIPEDRIVE_WEBHOOK_SECRET = SHARED_SECRET
    response = post(
        "/webhooks/pipedrive/", load_event("person.create"), headers=basic_auth("contactsync", SHARED_SECRET)
    )
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_unknown_connection_key_is_not_found(pipedrive):
    assert post("/webhooks/pipedrive/nope/", load_event("person.create")).status_code == 404
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["ab%00c", "%00", "a%20b", "a" * 65])
def test_a_connection_key_that_cannot_be_one_is_not_found(pipedrive, key):
    # A NUL reached the database before: PostgreSQL refuses it with a DataError (a 500).
    response = post(f"/webhooks/pipedrive/{key}/", load_event("person.create"))
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown connection key."}
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_another_connections_key_does_not_take_these_credentials(pipedrive, tenant):
    other, _ = pipedrive_connection(tenant_create(slug="globex", name="Globex"), "999", webhook_credentials=False)
    assert post(other, load_event("person.create", company_id="999")).status_code == 401


@pytest.mark.django_db
def test_oversized_body_is_refused(pipedrive, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    payload = load_event("person.create")
    assert len(json.dumps(payload)) > 100
    assert post(pipedrive[0], payload).status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"{", b"[]", b'{"meta": {}}', b"{}x"])
def test_malformed_delivery_is_refused(pipedrive, body):
    assert post(pipedrive[0], body).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_retry_with_the_same_event_id_is_stored_once(pipedrive, broker, django_capture_on_commit_callbacks):
    connection, _ = pipedrive
    assert post(connection, load_event("person.change")).json() == {"received": 1, "duplicates": 0}
    queued_tasks(broker)
    with django_capture_on_commit_callbacks(execute=True):
        retry = post(connection, load_event("person.change", attempt=2))
    assert retry.status_code == 200
    assert retry.json() == {"received": 1, "duplicates": 1}
    assert WebhookEvent.objects.count() == 1
    assert queued_tasks(broker) == []


@pytest.mark.django_db
def test_another_company_is_ignored_and_never_applied(tenant, pipedrive, broker, django_capture_on_commit_callbacks):
    connection, crm = pipedrive
    # The other company is connected too, to another tenant: its events must still not arrive via this URL.
    other, other_crm = pipedrive_connection(tenant_create(slug="globex", name="Globex"), "777")
    remote_id = other_crm.user_create(email="stranger@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        response = post(connection, load_event("person.create", company_id="777", entity_id=remote_id))

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.connection, event.status) == (None, WebhookEvent.Status.IGNORED)
    assert "777" in event.last_error
    assert queued_tasks(broker) == []
    assert not Contact.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", PERSON_EVENTS + ["deal.change"])
def test_each_action_is_accepted(pipedrive, name):
    assert post(pipedrive[0], load_event(name)).status_code == 200
    event = WebhookEvent.objects.get()
    expected = WebhookEvent.Status.IGNORED if name == "deal.change" else WebhookEvent.Status.PENDING
    assert event.status == expected


@pytest.mark.django_db
def test_only_post_is_allowed(pipedrive):
    assert Client().get(url(pipedrive[0])).status_code == 405


@pytest.mark.django_db
def test_a_malformed_event_is_stored_failed_with_its_reason_and_answered_200(
    pipedrive, broker, settings, django_capture_on_commit_callbacks
):
    # Refusing it would count towards Pipedrive's ban, during which good events are lost.
    connection, _ = pipedrive
    with django_capture_on_commit_callbacks(execute=True):
        response = post(connection, load_event("person.change", entity_id="1\u0000"))

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.connection, event.status, event.attempts) == (
        connection,
        WebhookEvent.Status.FAILED,
        settings.WEBHOOK_MAX_ATTEMPTS,
    )
    assert event.last_error == 'Rejected as malformed: meta.entity_id must be a positive integer, not "1\\u0000".'
    assert queued_tasks(broker) == []


@pytest.mark.django_db
def test_two_tenants_sending_the_same_event_id_are_both_stored_and_applied(
    tenant, pipedrive, broker, django_capture_on_commit_callbacks
):
    connection, crm = pipedrive
    other, other_crm = pipedrive_connection(tenant_create(slug="globex", name="Globex"), "777")
    mine = crm.user_create(email="ada@example.com")
    theirs = other_crm.user_create(email="grace@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        # Globex posts to its own URL first, with event ids it chose; the second claims Acme's company.
        assert post(other, load_event("person.change", id="collide-1", company_id="777", entity_id=theirs)).json() == {
            "received": 1,
            "duplicates": 0,
        }
        assert post(other, load_event("person.change", id="collide-2", entity_id=mine)).status_code == 200
        # Acme's genuine events with those ids.
        for event_id in ("collide-1", "collide-2"):
            answer = post(connection, load_event("person.change", id=event_id, entity_id=mine))
            assert answer.json() == {"received": 1, "duplicates": 0}
        # A redelivery to the same connection is still a duplicate.
        assert post(connection, load_event("person.change", id="collide-1", entity_id=mine, attempt=2)).json() == {
            "received": 1,
            "duplicates": 1,
        }
    process_queued(broker)

    assert WebhookEvent.objects.count() == 4
    assert set(Contact.objects.values_list("tenant__slug", "email")) == {
        ("acme", "ada@example.com"),
        ("globex", "grace@example.com"),
    }
    ignored = WebhookEvent.objects.get(status=WebhookEvent.Status.IGNORED)  # Acme's company on Globex's URL
    assert ignored.connection is None and ignored.dedupe_key.startswith(f"connection-{other.pk}/")
    assert WebhookEvent.objects.filter(connection=connection, status=WebhookEvent.Status.PROCESSED).count() == 2


# Processing --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_change_delete_converge_by_re_reading(pipedrive, broker, django_capture_on_commit_callbacks):
    connection, crm = pipedrive
    remote_id = crm.user_create(email="ada@example.com", first_name="Ada", last_name="Lovelace")

    # The payload says something else: processing trusts the re-read, not the payload.
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.create", entity_id=remote_id, data={"first_name": "Not Ada"}))
    process_queued(broker)
    contact = Contact.objects.get(tenant=connection.tenant)
    assert (contact.email, contact.first_name, contact.is_deleted) == ("ada@example.com", "Ada", False)
    assert ContactLink.objects.get(contact=contact).remote_id == remote_id

    crm.user_edit(remote_id, first_name="Augusta")
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.change", entity_id=remote_id))
    process_queued(broker)
    contact.refresh_from_db()
    assert contact.first_name == "Augusta"

    crm.user_delete(remote_id)
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.delete", entity_id=remote_id))
    process_queued(broker)
    contact.refresh_from_db()
    assert contact.is_deleted
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}


@pytest.mark.django_db
def test_a_merge_pair_leaves_one_live_contact(pipedrive, broker, django_capture_on_commit_callbacks):
    connection, crm = pipedrive
    survivor = crm.user_create(email="ada@example.com", first_name="Ada")
    merged = crm.user_create(email="ada.king@example.com", first_name="Ada")
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.create", entity_id=survivor))
        post(connection, load_event("person.create", entity_id=merged, id="create-merged"))
    process_queued(broker)
    assert Contact.objects.filter(deleted_at__isnull=True).count() == 2

    crm.user_merge(survivor, merged)
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.merge.delete", entity_id=merged))
        post(connection, load_event("person.merge.change", entity_id=survivor, data={"merged_from_id": int(merged)}))
    process_queued(broker)
    live = Contact.objects.filter(deleted_at__isnull=True)
    assert list(live.values_list("email", flat=True)) == ["ada@example.com"]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}


# Registering the webhooks --------------------------------------------------------------------------


@pytest.mark.django_db
def test_setup_webhooks_stores_encrypted_credentials_and_registers_the_url(pipedrive):
    connection, _ = pipedrive
    out = StringIO()
    call_command("setup_webhooks", connection=connection.pk, base_url="https://sync.example.com/", stdout=out)

    connection.refresh_from_db()
    credentials = connection.credentials
    user, password = credentials["webhook_user"], credentials["webhook_password"]
    assert credentials["api_token"] == "secret-token"  # the other credentials are kept
    assert (user, password) != (WEBHOOK_USER, WEBHOOK_PASSWORD) and len(password) >= 32
    for secret in (password, user, "secret-token"):
        assert secret not in connection.credentials_encrypted
    expected_url = f"https://sync.example.com/webhooks/pipedrive/{connection.webhook_key}/"
    assert TestPipedriveAdapter.registrations == [(connection.pk, expected_url, user, password)]
    output = out.getvalue()
    assert expected_url in output
    assert "4710827" in output or "Registered webhook" in output
    assert password not in output

    # The new credentials are the ones accepted now.
    assert post(connection, load_event("person.create"), headers=basic_auth(user, password)).status_code == 200
    assert post(connection, load_event("person.change")).status_code == 401


@pytest.mark.django_db
def test_setting_up_again_asks_the_adapter_to_replace_the_webhooks(pipedrive):
    connection, _ = pipedrive
    first = connection_setup_webhooks(connection=connection, base_url="https://sync.example.com")
    first_password = CrmConnection.objects.get(pk=connection.pk).credentials["webhook_password"]
    second = connection_setup_webhooks(connection=connection, base_url="https://sync.example.com")
    connection.refresh_from_db()

    (one, two) = TestPipedriveAdapter.registrations
    assert one[1] == two[1] == f"https://sync.example.com/webhooks/pipedrive/{connection.webhook_key}/"
    assert connection.credentials["webhook_password"] == two[3] != first_password
    assert [hook["event_action"] for hook in first] == [hook["event_action"] for hook in second]
    assert [hook["event_action"] for hook in second] == ["create", "change", "delete"]
    assert post(connection, load_event("person.create"), headers=basic_auth(two[2], two[3])).status_code == 200
    assert post(connection, load_event("person.change"), headers=basic_auth(one[2], one[3])).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "base_url", ["ftp://sync.example.com", "sync.example.com", "https://", "https://x.example/?a=1"]
)
def test_setup_webhooks_refuses_a_base_url_that_is_not_http(pipedrive, base_url):
    connection, _ = pipedrive
    with pytest.raises(ValidationError, match="base URL"):
        connection_setup_webhooks(connection=connection, base_url=base_url)
    assert TestPipedriveAdapter.registrations == []
    connection.refresh_from_db()
    assert connection.credentials["webhook_password"] == WEBHOOK_PASSWORD


@pytest.mark.django_db
def test_setup_webhooks_command_errors(tenant, pipedrive):
    with pytest.raises(CommandError, match="No connection 999"):
        call_command("setup_webhooks", connection=999, base_url="https://sync.example.com")
    with pytest.raises(CommandError, match="base URL"):
        call_command("setup_webhooks", connection=pipedrive[0].pk, base_url="nope")
    memory, _ = make_connection(tenant)
    with pytest.raises(CommandError, match="does not support registering webhooks"):
        call_command("setup_webhooks", connection=memory.pk, base_url="https://sync.example.com")
    memory.refresh_from_db()
    assert "webhook_password" not in memory.credentials


@pytest.mark.django_db
def test_a_poison_event_from_another_delivery_fails_alone(pipedrive, broker, django_capture_on_commit_callbacks):
    # The example: an event named entity_id "1\u0000" made three valid ones fail with the CRM's 400.
    connection, crm = pipedrive
    emails = ["ada@example.com", "grace@example.com", "alan@example.com"]
    remote_ids = [crm.user_create(email=email) for email in emails]
    with django_capture_on_commit_callbacks(execute=True):
        post(connection, load_event("person.change", id="poison", entity_id="1\u0000"))
        for remote_id in remote_ids:
            post(connection, load_event("person.change", id=f"good-{remote_id}", entity_id=remote_id))
    process_queued(broker)

    assert sorted(Contact.objects.values_list("email", flat=True)) == sorted(emails)
    statuses = dict(WebhookEvent.objects.values_list("dedupe_key", "status"))
    assert statuses.pop(f"connection-{connection.pk}/pipedrive:poison") == WebhookEvent.Status.FAILED
    assert set(statuses.values()) == {WebhookEvent.Status.PROCESSED}


@pytest.mark.django_db
def test_a_person_the_crm_refuses_to_read_fails_only_its_event(pipedrive, broker, django_capture_on_commit_callbacks):
    connection, crm = pipedrive
    remote_ids = [crm.user_create(email=f"person{n}@example.com") for n in range(3)]
    crm.unreadable_ids = {"999999"}
    with django_capture_on_commit_callbacks(execute=True):
        for remote_id in [*remote_ids, "999999"]:
            post(connection, load_event("person.change", id=f"event-{remote_id}", entity_id=remote_id))
    process_queued(broker)

    assert Contact.objects.count() == 3
    refused = WebhookEvent.objects.get(status=WebhookEvent.Status.FAILED)
    assert refused.dedupe_key.endswith("pipedrive:event-999999")
    assert refused.last_error == "The CRM refused to read record \"999999\": 400 Bad Request: invalid id '999999'"
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSED).count() == 3
