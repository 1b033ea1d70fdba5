"""The Pipedrive adapter against mocked HTTP: API v2 persons, v1 person fields, Pipedrive's limits."""

import json
from pathlib import Path

import pytest
import responses
from responses import matchers

from syncapp.engine import ContactRecord
from syncapp.exceptions import QuotaExhaustedError, RateLimitedError, TransientProviderError
from syncapp.models import Contact, CrmConnection, SyncRun
from syncapp.providers import get_adapter
from syncapp.providers.pipedrive import mapping
from syncapp.services.connections import connection_create
from syncapp.services.contacts import contact_create, contact_delete, contact_update
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync

pytestmark = pytest.mark.django_db

API = "https://api.pipedrive.com"
PERSONS = f"{API}/api/v2/persons"
FIELDS = f"{API}/v1/personFields"
PRONOUNS_KEY = "dcf558aac1ae4e8c4f849ba5e668430d8df9be12"
FIXTURES = Path(__file__).parent / "fixtures" / "api"


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def person(pid, email, updated="2026-11-25T10:00:00Z", **fields):
    return {
        "id": pid, "name": fields.pop("name", email), "first_name": fields.pop("first_name", None),
        "last_name": fields.pop("last_name", None), "update_time": updated, "add_time": "2026-01-01T00:00:00Z",
        "emails": [{"value": email, "primary": True, "label": "work"}], "phones": [], "is_deleted": False,
        "custom_fields": {}, **fields,
    }  # fmt: skip


def page(*people, cursor=None):
    return {"success": True, "data": list(people), "additional_data": {"next_cursor": cursor}}


@pytest.fixture
def connection(tenant):
    connection = connection_create(
        tenant=tenant, provider="pipedrive", account_id="8087566", credentials={"access_token": "pd-api-token"}
    )
    connection.pronouns_state, connection.pronouns_field_key = "configured", PRONOUNS_KEY
    connection.save()
    return connection


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(FIELDS, json=fixture("person_fields"))
        yield mock


def calls(mocked, method, url_part):
    return [c for c in mocked.calls if c.request.method == method and url_part in c.request.url]


def test_full_listing_follows_next_cursor_and_maps_primary_entries_and_custom_fields(connection, mocked):
    mocked.get(PERSONS, json=fixture("persons_page1"), match=[matchers.query_param_matcher({"limit": "500"})])
    mocked.get(
        PERSONS,
        json=fixture("persons_page2"),
        match=[matchers.query_param_matcher({"limit": "500", "cursor": "eyJpZCI6MTF9"})],
    )

    records = [r for page_ in get_adapter(connection).list_all() for r in page_.records]

    assert [r.remote_id for r in records] == ["11", "12"]
    assert records[0].record == ContactRecord(
        email="ada@example.com", first_name="Ada", last_name="Lovelace", phone="+44 20 7946 0000",
        job_title="Analyst", pronouns="she/her",
    )  # fmt: skip
    assert records[1].record.pronouns == "" and records[1].record.job_title == ""
    assert mocked.calls[0].request.headers["x-api-token"] == "pd-api-token"


def test_a_listings_cursor_is_when_it_began_by_pipedrives_clock_else_ours_less_the_overlap(connection, mocked):
    from datetime import UTC, datetime, timedelta

    first = page(person(12, "b@example.com", "2026-11-25T09:00:00Z"), cursor="c2")
    mocked.get(PERSONS, json=first, headers={"Date": "Wed, 25 Nov 2026 10:00:00 GMT"})
    # Edited while the listing ran, after the first page: later than the start, earlier than this page.
    later = page(person(40, "d@example.com", "2026-11-25T10:30:00Z"))
    mocked.get(PERSONS, json=later, match=[matchers.query_param_matcher({"cursor": "c2"}, strict_match=False)])

    cursors = [page_.cursor for page_ in get_adapter(connection).list_all()]

    assert cursors == ["2026-11-25T10:00:00+00:00"] * 2  # not the latest update_time listed

    mocked.replace(responses.GET, PERSONS, json=page(person(12, "b@example.com", "2026-11-25T09:00:00Z")))
    before = datetime.now(UTC)
    (page_,) = list(get_adapter(connection).list_all())
    started = datetime.fromisoformat(page_.cursor)
    assert before - timedelta(seconds=61) <= started <= datetime.now(UTC) - timedelta(seconds=59)


def test_polling_asks_for_updated_since_with_overlap_sorted_by_update_time(connection, mocked):
    mocked.get(PERSONS, json=page(person(11, "a@example.com", "2026-11-25T10:00:05Z")))

    (page_,) = list(get_adapter(connection).list_changed(cursor="2026-11-25T10:00:00+00:00"))

    query = calls(mocked, "GET", "/api/v2/persons")[0].request.params
    assert query == {
        "limit": "500",
        "updated_since": "2026-11-25T09:59:00Z",
        "sort_by": "update_time",
        "sort_direction": "asc",
    }
    assert page_.cursor == "2026-11-25T10:00:05+00:00"


def test_each_poll_page_is_a_new_query_from_the_last_update_time_and_one_second_pages_follow_the_cursor(
    connection, mocked
):
    # Pipedrive does not say what its cursor holds; if it were an offset, the sync's writes between
    # pages (each moves a person to the end) would make it skip persons. So each page starts from the
    # last update_time read, and only a page all in that one second follows next_cursor.
    mocked.get(PERSONS, json=page(person(1, "a@x.com", "2026-11-25T10:00:05Z"), cursor="c1"))
    mocked.get(PERSONS, json=page(person(1, "a@x.com", "2026-11-25T10:00:05Z"), cursor="c2"))
    mocked.get(PERSONS, json=page(person(2, "b@x.com", "2026-11-25T10:00:05Z"), cursor="c3"))
    mocked.get(PERSONS, json=page(person(3, "c@x.com", "2026-11-25T10:00:09Z")))

    pages = list(get_adapter(connection).list_changed(cursor="2026-11-25T10:00:00+00:00"))

    queries = [
        (c.request.params["updated_since"], c.request.params.get("cursor"))
        for c in calls(mocked, "GET", "/api/v2/persons")
    ]
    assert queries == [
        ("2026-11-25T09:59:00Z", None),
        ("2026-11-25T10:00:05Z", None),
        ("2026-11-25T10:00:05Z", "c2"),
        ("2026-11-25T10:00:05Z", "c3"),
    ]
    assert [[r.remote_id for r in p.records] for p in pages] == [["1"], [], ["2"], ["3"]]  # person 1 once


def test_writes_send_name_and_keep_the_emails_and_phones_they_do_not_own(connection, mocked):
    ada = fixture("persons_page1")["data"][0]
    mocked.get(PERSONS, json=page(ada))
    mocked.patch(f"{PERSONS}/11", json={"success": True, "data": {**ada, "update_time": "2026-11-26T00:00:00Z"}})
    adapter = get_adapter(connection)
    adapter.read_many(["11"])

    (result,) = adapter.update_many([("11", {"email": "ada@new.example", "first_name": "Augusta", "pronouns": ""})])

    assert result.ok
    body = json.loads(calls(mocked, "PATCH", "/persons/11")[0].request.body)
    assert body["name"] == "Augusta Lovelace"
    assert body["emails"] == [
        {"value": "ada@new.example", "primary": True, "label": "work"},
        {"value": "ada.home@example.com", "primary": False, "label": "home"},
    ]
    assert body["custom_fields"] == {PRONOUNS_KEY: None}
    assert "phones" not in body


def test_a_429_waits_the_reset_header_and_a_403_page_counts_as_rate_limiting(connection, mocked, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    mocked.get(
        PERSONS, status=429, json={"success": False, "error": "Too many requests"}, headers={"x-ratelimit-reset": "2"}
    )
    mocked.get(PERSONS, status=403, body=(FIXTURES / "error_edge_403.html").read_text(), content_type="text/html")
    mocked.get(PERSONS, json=page(person(1, "a@example.com")))

    with pytest.raises(RateLimitedError, match="403 page") as raised:
        get_adapter(connection).read_many(["1"])

    assert waits == [2] and raised.value.retry_after == 60  # the edge block ends the run, to back off for longer


def test_5xx_then_success(connection, mocked):
    mocked.get(PERSONS, status=502, body="bad gateway")
    mocked.get(PERSONS, json=page(person(1, "a@example.com")))
    assert [r.remote_id for r in get_adapter(connection).read_many(["1"])] == ["1"]


def test_a_spent_daily_budget_stops_the_connection_until_the_reset(connection, mocked):
    mocked.get(PERSONS, json=page(person(1, "a@example.com")), headers={"x-daily-ratelimit-token-remaining": "0"})
    adapter = get_adapter(connection)
    adapter.read_many(["1"])
    with pytest.raises(QuotaExhaustedError, match="budget"):
        adapter.read_many(["1"])
    assert len(calls(mocked, "GET", "/api/v2/persons")) == 1

    mocked.get(PERSONS, status=429, json={"success": False, "error": "Daily token limit reached"})
    run = connection_sync(connection=connection)
    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED and connection.status == CrmConnection.Status.RATE_LIMITED


def test_pronouns_field_is_found_by_name_or_created_and_its_key_stored(tenant, mocked):
    connection = connection_create(
        tenant=tenant, provider="pipedrive", account_id="1", credentials={"access_token": "t"}
    )
    assert connection_setup_pronouns(connection=connection).key == PRONOUNS_KEY
    assert not calls(mocked, "POST", "/v1/personFields")

    mocked.replace(responses.GET, FIELDS, json={"success": True, "data": [{"id": 1, "key": "name", "name": "Name"}]})
    created_key = "f" * 40
    mocked.post(FIELDS, json={"success": True, "data": {"id": 41, "key": created_key, "name": "Pronouns"}})
    setup = connection_setup_pronouns(connection=connection)
    assert (setup.state, setup.key) == ("configured", created_key)
    assert json.loads(calls(mocked, "POST", "/v1/personFields")[0].request.body) == {
        "name": "Pronouns",
        "field_type": "varchar",
    }


def test_job_title_is_skipped_and_reported_where_the_account_lacks_it(connection, mocked):
    mocked.replace(responses.GET, FIELDS, json={"success": True, "data": [{"id": 1, "key": "name", "name": "Name"}]})
    assert get_adapter(connection).unsupported_fields() == frozenset({"job_title"})


def test_end_to_end_first_sync_poll_resume_push_and_delete(connection, mocked, tenant):
    # The app holds ada (also in Pipedrive, twice: the oldest record wins) and a contact of its own.
    contact_create(tenant=tenant, values={"email": "ada@example.com", "phone": "1"})
    contact_create(tenant=tenant, values={"email": "app@example.com"})
    ada, ada_dup = person(11, "ada@example.com", first_name="Ada"), person(30, "ada@example.com")
    mocked.get(
        PERSONS,
        json=page(ada_dup, ada),
        match=[matchers.query_param_matcher({"limit": "500"})],
        headers={"Date": "Wed, 25 Nov 2026 11:00:00 GMT"},
    )
    # After the listing, one read of what changed since it began, instead of a search per new email.
    catch_up = mocked.get(
        PERSONS,
        json=page(),
        match=[matchers.query_param_matcher({"updated_since": "2026-11-25T10:59:00Z"}, strict_match=False)],
    )
    mocked.post(PERSONS, json={"success": True, "data": person(40, "app@example.com")})
    mocked.patch(f"{PERSONS}/11", json={"success": True, "data": {**ada, "phones": [{"value": "1", "primary": True}]}})

    first = connection_sync(connection=connection, full=True)

    assert (first.status, first.created, first.updated, first.excluded) == ("succeeded", 1, 1, 1)
    assert catch_up.call_count == 1 and not calls(mocked, "GET", "/persons/search")
    assert first.api_calls == 5  # person fields, the listing, the catch-up read, one update, one create
    mocked.remove(catch_up)
    assert Contact.objects.get(email="ada@example.com").first_name == "Ada"
    assert (
        json.loads(calls(mocked, "POST", "/api/v2/persons")[0].request.body)["emails"][0]["value"] == "app@example.com"
    )

    # A poll fails after its first page; the next one resumes from the saved checkpoint.
    ada_promoted = person(11, "ada@example.com", "2026-11-26T08:00:00Z", first_name="Ada", job_title="CEO")
    mocked.get(
        PERSONS,
        json=page(ada_promoted, cursor="c2"),
        match=[matchers.query_param_matcher({"limit": "500"}, strict_match=False)],
    )
    mocked.get(
        PERSONS, status=500, body="boom", match=[matchers.query_param_matcher({"cursor": "c2"}, strict_match=False)]
    )
    failed = connection_sync(connection=connection)
    connection.refresh_from_db()
    assert failed.status == "failed" and connection.sync_cursor.startswith("2026-11-26T08:00:00")
    assert Contact.objects.get(email="ada@example.com").job_title == "CEO"

    # An app edit is pushed, and an app delete deletes the person.
    app = Contact.objects.get(email="app@example.com")
    contact_update(contact=app, values={"job_title": "CTO"})
    contact_delete(contact=Contact.objects.get(email="ada@example.com"))
    mocked.get(
        PERSONS,
        json=page(person(40, "app@example.com"), ada),
        match=[matchers.query_param_matcher({"ids": "11,40"}, strict_match=False)],
    )
    mocked.patch(f"{PERSONS}/40", json={"success": True, "data": person(40, "app@example.com", job_title="CTO")})
    mocked.delete(f"{PERSONS}/11", json={"success": True, "data": {"id": 11}})
    # Ada's duplicate (30) was left out while ada was synced; with ada gone it is a person of its own.
    mocked.get(PERSONS, json=page(ada_dup), match=[matchers.query_param_matcher({"ids": "30"}, strict_match=False)])

    push = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert (push.status, push.updated, push.deleted) == ("succeeded", 1, 1)
    assert json.loads(calls(mocked, "PATCH", "/persons/40")[-1].request.body) == {"job_title": "CTO"}
    assert calls(mocked, "DELETE", "/persons/11")
    assert Contact.objects.get(email="ada@example.com", deleted_at__isnull=True).links.get().remote_id == "30"


def test_webhook_registration_replaces_earlier_hooks_for_the_url(connection, mocked):
    url = f"https://sync.example.com/webhooks/pipedrive/{connection.webhook_key}/"
    mocked.get(
        f"{API}/v1/webhooks",
        json={
            "success": True,
            "data": [{"id": 7, "subscription_url": url}, {"id": 8, "subscription_url": "https://other"}],
        },
    )
    mocked.delete(f"{API}/v1/webhooks/7", json={"success": True})
    mocked.post(f"{API}/v1/webhooks", json={"success": True, "data": {"id": 9}})

    hooks = get_adapter(connection).register_webhooks(subscription_url=url, user="u", password="p")

    assert len(hooks) == 3 and len(calls(mocked, "DELETE", "/v1/webhooks/")) == 1
    bodies = [json.loads(c.request.body) for c in calls(mocked, "POST", "/v1/webhooks")]
    assert [b["event_action"] for b in bodies] == ["create", "change", "delete"]
    assert bodies[0] == {
        "subscription_url": url, "event_action": "create", "event_object": "person",
        "name": f"contactsync {connection.pk} create", "http_auth_user": "u", "http_auth_password": "p",
        "version": "2.0",
    }  # fmt: skip


def test_first_contact_searches_each_email_and_reads_the_matches_by_id(connection, mocked):
    mocked.get(
        f"{PERSONS}/search",
        json={
            "success": True,
            "data": {"items": [{"result_score": 1, "item": {"id": 30}}, {"result_score": 1, "item": {"id": 11}}]},
        },
    )
    mocked.get(PERSONS, json=page(person(11, "a@example.com"), person(30, "a@example.com")))

    found = get_adapter(connection).find_by_emails(["a@example.com"])

    assert [r.remote_id for r in found] == ["11", "30"]
    search = calls(mocked, "GET", "/persons/search")[0].request.params
    assert search == {"term": "a@example.com", "fields": "email", "exact_match": "true", "limit": "500"}
    assert calls(mocked, "GET", "/api/v2/persons?")[0].request.params["ids"] == "11,30"


def test_an_idna_email_is_also_searched_with_its_domain_in_unicode(connection, mocked):
    # Pipedrive matches the email as its user typed it: the IDNA form alone misses "bücher".
    mocked.get(f"{PERSONS}/search", json={"success": True, "data": {"items": []}})

    assert get_adapter(connection).find_by_emails(["bob@xn--bcher-kva.example"]) == []

    terms = [call.request.params["term"] for call in calls(mocked, "GET", "/persons/search")]
    assert terms == ["bob@xn--bcher-kva.example", "bob@bücher.example"]


def test_oauth_connections_send_a_bearer_token(tenant, mocked):
    import time

    oauth = connection_create(
        tenant=tenant, provider="pipedrive", account_id="2", api_base_url="https://acme.pipedrive.com",
        credentials={"access_token": "bearer-token", "refresh_token": "r", "expires_at": time.time() + 3600},
    )  # fmt: skip
    mocked.get("https://acme.pipedrive.com/api/v2/persons", json=page())
    get_adapter(oauth).read_many(["1"])
    request = calls(mocked, "GET", "acme.pipedrive.com")[0].request
    assert request.headers["Authorization"] == "Bearer bearer-token" and "x-api-token" not in request.headers


def test_a_create_is_never_resent_blindly_and_earlier_creates_keep_their_links(connection, mocked, tenant):
    from syncapp.models import ContactLink, OutboxEntry

    contact_create(tenant=tenant, values={"email": "one@example.com"})
    contact_create(tenant=tenant, values={"email": "two@example.com"})
    mocked.get(f"{PERSONS}/search", json={"success": True, "data": {"items": []}})
    mocked.post(PERSONS, json={"success": True, "data": person(50, "one@example.com")})
    mocked.post(PERSONS, status=503, body="unavailable")

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    # Issue 12: not a success, and no failure of the record (it was marked "Not written yet", an error).
    assert (run.status, run.created, run.pending, run.errors) == (SyncRun.Status.FAILED, 1, 1, 0)
    assert "503" in run.error
    assert len(calls(mocked, "POST", "/api/v2/persons")) == 2  # the failed create was not resent
    assert ContactLink.objects.get(contact__email="one@example.com").remote_id == "50"
    assert not ContactLink.objects.filter(contact__email="two@example.com").exists()
    # Both rows stay (the written contact's is only read again); two's is looked up by email next time.
    entries = OutboxEntry.objects.filter(connection=connection)
    assert sorted(entry.contact.email for entry in entries) == ["one@example.com", "two@example.com"]
    assert {entry.record_failures for entry in entries} == {0}


def test_a_budget_spent_after_some_writes_says_what_was_written(connection, mocked):
    from syncapp.exceptions import PartialWriteError

    mocked.post(PERSONS, json={"success": True, "data": person(50, "one@example.com")})
    mocked.post(PERSONS, status=429, json={"success": False, "error": "Daily token limit reached"})

    with pytest.raises(PartialWriteError) as raised:
        get_adapter(connection).create_many([ContactRecord(email=f"{n}@example.com") for n in ("one", "two", "three")])

    assert [(result.ok, result.remote_id) for result in raised.value.results] == [(True, "50")]
    assert isinstance(raised.value.cause, QuotaExhaustedError)
    assert len(calls(mocked, "POST", "/api/v2/persons")) == 2, "nothing sent after the spent budget"


def test_a_transient_failure_midway_stops_the_writes_and_marks_nothing_it_did_not_try(connection, mocked):
    from syncapp.exceptions import PartialWriteError

    mocked.post(PERSONS, json={"success": True, "data": person(50, "one@example.com")})
    mocked.post(PERSONS, status=503, body="unavailable")

    with pytest.raises(PartialWriteError) as raised:
        get_adapter(connection).create_many([ContactRecord(email=f"{n}@example.com") for n in ("one", "two", "three")])

    assert [(result.ok, result.remote_id) for result in raised.value.results] == [(True, "50")]
    assert isinstance(raised.value.cause, TransientProviderError) and raised.value.cause.status == 503
    assert len(calls(mocked, "POST", "/api/v2/persons")) == 2, "three was not tried; two is not resent blindly"


def test_a_budget_spent_during_a_push_links_what_was_written_and_keeps_the_rest_queued(connection, mocked, tenant):
    from syncapp.models import ContactLink, OutboxEntry

    for name in ("one", "two", "three"):
        contact_create(tenant=tenant, values={"email": f"{name}@example.com"})
    mocked.get(f"{PERSONS}/search", json={"success": True, "data": {"items": []}})
    mocked.post(PERSONS, json={"success": True, "data": person(50, "one@example.com")})
    mocked.post(PERSONS, status=429, json={"success": False, "error": "Daily token limit reached"})

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert (run.status, run.errors) == (SyncRun.Status.FAILED, 0) and "daily" in run.error.lower()
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.RATE_LIMITED and connection.rate_limited_until
    link = ContactLink.objects.get()
    assert (link.contact.email, link.remote_id, link.status) == ("one@example.com", "50", ContactLink.Status.OK)
    entries = OutboxEntry.objects.filter(connection=connection)
    assert sorted(entry.contact.email for entry in entries) == [
        "one@example.com",
        "three@example.com",
        "two@example.com",
    ]
    assert {(entry.attempts, entry.record_failures) for entry in entries} == {(1, 0)}, "no record failure counted"
    assert len(calls(mocked, "POST", "/api/v2/persons")) == 2


def test_no_permission_on_one_person_is_that_records_error_not_the_connections(connection, mocked, tenant):
    from syncapp.models import ContactLink

    contact = contact_create(tenant=tenant, values={"email": "hidden@example.com"})
    ContactLink.objects.create(
        connection=connection, contact=contact, remote_id="60", base={"email": "hidden@example.com"}
    )
    contact_update(contact=contact, values={"phone": "9"})
    mocked.get(PERSONS, json=page(person(60, "hidden@example.com")))
    mocked.patch(f"{PERSONS}/60", status=403, json={"success": False, "error": "You do not have permission"})

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED and connection.status == CrmConnection.Status.ACTIVE
    assert "permission" in ContactLink.objects.get(contact=contact).last_error


def test_a_person_missing_from_the_listing_but_still_readable_is_not_deleted(connection, mocked, tenant):
    from syncapp.models import ContactLink

    contact = contact_create(tenant=tenant, values={"email": "private@example.com"})
    ContactLink.objects.create(
        connection=connection, contact=contact, remote_id="70", base={"email": "private@example.com"}
    )
    mocked.get(PERSONS, json=page(), match=[matchers.query_param_matcher({"limit": "500"})])
    mocked.get(
        PERSONS,
        json=page(person(70, "private@example.com")),
        match=[matchers.query_param_matcher({"ids": "70"}, strict_match=False)],
    )

    run = connection_sync(connection=connection, full=True)

    contact.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED and not contact.is_deleted


def test_a_failure_before_the_first_read_still_ends_the_run(connection, mocked):
    mocked.replace(responses.GET, FIELDS, status=500, body="boom")
    run = connection_sync(connection=connection)
    assert run.status == SyncRun.Status.FAILED and "500" in run.error
    assert not SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()


def test_the_budget_counts_down_with_x_token_cost_when_the_remaining_header_is_missing(connection, mocked):
    mocked.get(PERSONS, json=page(), headers={"x-daily-ratelimit-token-remaining": "15", "x-token-cost": "10"})
    mocked.get(PERSONS, json=page(), headers={"x-token-cost": "10"})
    adapter = get_adapter(connection)
    adapter.read_many(["1"])  # 15 left, as reported
    adapter.read_many(["1"])  # 5 left, counted
    adapter.read_many(["1"])  # -5: spent
    with pytest.raises(QuotaExhaustedError):
        get_adapter(connection).read_many(["1"])  # a new worker knows it too


def test_a_contact_whose_email_a_person_holds_as_secondary_is_listed_not_duplicated(connection, mocked, tenant):
    from syncapp.models import ExcludedRecord

    contact_create(tenant=tenant, values={"email": "ada.home@example.com"})
    ada = fixture("persons_page1")["data"][0]  # primary ada@, secondary ada.home@
    mocked.get(
        f"{PERSONS}/search", json={"success": True, "data": {"items": [{"result_score": 1, "item": {"id": 11}}]}}
    )
    mocked.get(PERSONS, json=page(ada))

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert run.status == SyncRun.Status.SUCCEEDED and not calls(mocked, "POST", "/api/v2/persons")
    assert ExcludedRecord.objects.get(side="app").code == "secondary_email"


def test_a_create_refused_with_429_is_sent_again_after_the_wait(connection, mocked, tenant, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    contact_create(tenant=tenant, values={"email": "new@example.com"})
    mocked.get(PERSONS, json=page())  # the listing, then the catch-up read: nothing
    mocked.post(PERSONS, status=429, json={"success": False, "error": "Rate limit"}, headers={"x-ratelimit-reset": "1"})
    mocked.post(PERSONS, json={"success": True, "data": person(50, "new@example.com")})

    run = connection_sync(connection=connection, full=True)

    assert run.status == SyncRun.Status.SUCCEEDED and waits == [1.0]
    assert len(calls(mocked, "POST", "/api/v2/persons")) == 2 and not calls(mocked, "GET", "/persons/search")
    assert Contact.objects.get(email="new@example.com").links.get().remote_id == "50"


def test_a_create_leaves_empty_fields_out_and_an_update_clears_them_with_schema_valid_values():
    record = ContactRecord(email="new@example.com", first_name="New")
    created = mapping.to_body(record.as_dict(), current=None, full=record.as_dict(), pronouns_key=PRONOUNS_KEY)
    assert created == {
        "name": "New",
        "emails": [{"value": "new@example.com", "primary": True, "label": "work"}],
    }

    current = person(40, "new@example.com", job_title="CTO", custom_fields={PRONOUNS_KEY: "she/her"})
    cleared = mapping.to_body(
        {"job_title": "", "pronouns": ""}, current=current, full=record.as_dict(), pronouns_key=PRONOUNS_KEY
    )
    # job_title is a string in the v2 schema, so "" clears it; custom fields are cleared with null.
    assert cleared == {"job_title": "", "custom_fields": {PRONOUNS_KEY: None}}
