"""The HubSpot adapter against mocked HTTP: the requests we send and how we read HubSpot's answers."""

import json
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from syncapp.engine import ContactRecord
from syncapp.exceptions import ProviderAuthError, ProviderError, QuotaExhaustedError, TransientProviderError
from syncapp.models import CrmConnection, SyncRun
from syncapp.providers import get_adapter
from syncapp.services.connections import connection_create
from syncapp.services.pronouns import connection_setup_pronouns
from syncapp.services.sync import connection_sync

pytestmark = pytest.mark.django_db

API = "https://api.hubapi.com"
CONTACTS = f"{API}/crm/v3/objects/contacts"
FIXTURES = Path(__file__).parent / "fixtures" / "api"


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def contact(remote_id, email, **properties):
    updated = properties.pop("updatedAt", "2026-11-25T10:00:00.000Z")
    return {
        "id": str(remote_id),
        "properties": {"email": email, "lastmodifieddate": updated, "hs_object_id": str(remote_id), **properties},
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": updated,
        "archived": False,
    }


@pytest.fixture
def connection(tenant):
    return connection_create(
        tenant=tenant, provider="hubspot", account_id="62515", credentials={"access_token": "pat-na1-secret"}
    )


@pytest.fixture
def adapter(connection):
    return get_adapter(connection)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def sent_json(call):
    return json.loads(call.request.body)


def recycling_bin(mocked, *pages):
    """Answer the listings of archived contacts (an incremental read's last step) with these pages."""
    archived = matchers.query_param_matcher({"archived": "true"}, strict_match=False)
    for n, results in enumerate(pages or ([],), start=1):
        paging = {"paging": {"next": {"after": f"a{n}"}}} if n < len(pages) else {}
        mocked.get(CONTACTS, json={"results": results, **paging}, match=[archived])


def test_full_listing_pages_with_after_and_asks_only_for_mapped_properties(adapter, mocked):
    mocked.get(CONTACTS, json=fixture("contacts_list_page1"), match=[matchers.query_param_matcher({
        "limit": "100", "archived": "false",
        "properties": "email,firstname,lastname,phone,jobtitle,lastmodifieddate,hs_merged_object_ids",
    })])  # fmt: skip
    mocked.get(
        CONTACTS,
        json=fixture("contacts_list_page2"),
        match=[matchers.query_param_matcher({"after": "514"}, strict_match=False)],
    )

    pages = list(adapter.list_all())

    records = [r for page in pages for r in page.records]
    assert [r.remote_id for r in records] == ["512", "513", "514"]
    assert records[0].record == ContactRecord(
        email="ada@example.com", first_name="Ada", last_name="Lovelace", phone="+44 20 7946 0000", job_title="Analyst"
    )
    assert records[1].record.email == ""
    assert records[2].merged_ids == ("498", "499")
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer pat-na1-secret"


def test_incremental_search_overlaps_the_cursor_sorts_ascending_and_saves_a_cursor_per_page(adapter, mocked):
    first = [contact(i, f"p{i}@example.com", updatedAt=f"2026-11-25T10:00:0{i}.000Z") for i in range(1, 3)]
    mocked.post(f"{CONTACTS}/search", json={"total": 3, "results": first, "paging": {"next": {"after": "2"}}})
    mocked.post(f"{CONTACTS}/search", json={"total": 2, "results": [first[1], contact(3, "p3@example.com")]})

    pages = list(adapter.list_changed(cursor="1764064800000"))

    body = sent_json(mocked.calls[0])
    (flt,) = body["filterGroups"][0]["filters"]
    assert flt == {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(1764064800000 - 120_000)}
    assert body["sorts"] == [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    assert body["limit"] == 200 and "after" not in body
    assert [[r.remote_id for r in page.records] for page in pages] == [["1", "2"], ["3"]]  # "2" again is dropped
    assert pages[0].cursor == str(1795600802000)  # 2026-11-25T10:00:02Z, the last row's lastmodifieddate


def test_each_search_page_is_a_new_query_from_the_last_timestamp_so_writes_between_pages_skip_nothing(adapter, mocked):
    # HubSpot's "after" is an offset: once the sync has updated the first page's contacts, they sort
    # last, and offset 2 would start past contact 3. A query from the last timestamp read starts at it.
    first = [contact(i, f"p{i}@example.com", updatedAt=f"2026-11-25T10:00:0{i}.000Z") for i in range(1, 3)]
    mocked.post(f"{CONTACTS}/search", json={"results": first, "paging": {"next": {"after": "2"}}})
    mocked.post(f"{CONTACTS}/search", json={"results": [first[1], contact(3, "p3@example.com")]})

    pages = adapter.list_changed(cursor="1764064800000")
    next(pages)
    rest = list(pages)

    second = sent_json(mocked.calls[1])
    assert "after" not in second
    assert second["filterGroups"][0]["filters"][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": str(1795600802000),
    }
    assert [r.remote_id for page in rest for r in page.records] == ["3"]


def test_a_page_all_in_one_millisecond_follows_after_and_the_10000_cap_moves_to_the_next_millisecond(adapter, mocked):
    same = "2026-11-25T10:00:00.000Z"  # 1795600800000
    page = [contact(i, f"c{i}@example.com", updatedAt=same) for i in range(200)]
    last = contact(9999, "last@example.com", updatedAt="2026-11-25T11:00:00.000Z")
    # The first page moves the query to 10:00:00; from there no page gets further, so "after" pages on
    # until 10,000 results, where page 51 would be refused.
    mocked.post(f"{CONTACTS}/search", json={"results": page, "paging": {"next": {"after": "200"}}})
    for n in range(50):
        mocked.post(f"{CONTACTS}/search", json={"results": page, "paging": {"next": {"after": str((n + 1) * 200)}}})
    mocked.post(f"{CONTACTS}/search", json={"results": [last]})

    records = [r for page in adapter.list_changed(cursor="1764064800000") for r in page.records]

    searches = [call for call in mocked.calls if call.request.method == "POST"]
    filters = [sent_json(call)["filterGroups"][0]["filters"][0]["value"] for call in searches]
    afters = [sent_json(call).get("after") for call in searches]
    assert filters[1:51] == ["1795600800000"] * 50
    assert afters[1:51] == [None] + [str(n * 200) for n in range(1, 50)]
    assert (filters[-1], afters[-1]) == ("1795600800001", None)
    assert [r.remote_id for r in records] == [str(i) for i in range(200)] + ["9999"]


def test_an_idna_email_is_also_read_with_its_domain_in_unicode_within_the_batch_limit(adapter, mocked):
    # HubSpot looks the email up as its user typed it: the IDNA form alone misses "bücher".
    mocked.post(f"{CONTACTS}/batch/read", json={"status": "COMPLETE", "results": []})
    emails = [f"p{n}@xn--bcher-kva.example" for n in range(60)]

    assert adapter.find_by_emails(emails) == []

    batches = [sent_json(call)["inputs"] for call in mocked.calls]
    assert [len(batch) for batch in batches] == [100, 20]
    assert batches[0][:2] == [{"id": "p0@xn--bcher-kva.example"}, {"id": "p0@bücher.example"}]


def archived(n, at):
    return {**contact(n, f"gone{n}@example.com"), "archived": True, "archivedAt": at}


def test_the_first_deletion_scan_reads_the_bin_whole_from_the_search_cursor_and_ends_with_a_watermark(adapter, mocked):
    """Search never shows archived contacts: the recycling bin, listed whole, is filtered by archivedAt."""
    cursor = adapter.deletions_cursor(changes_cursor="1795600800000")  # 2026-11-25T10:00:00Z, our clock
    recycling_bin(
        mocked,
        [archived(1, "2026-11-24T09:00:00.000Z"), archived(2, "2026-11-25T09:58:30.000Z")],
        [archived(3, "2026-11-25T10:05:00.000Z"), archived(4, "2026-11-25T10:06:00.000Z")],
    )
    # Read back: 2 and 3 are still gone; 4 was merged into 9, which answers for it.
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    survivor = contact(9, "kept@example.com", hs_merged_object_ids="4")
    mocked.post(f"{CONTACTS}/batch/read", json={"results": [survivor]})

    pages = list(adapter.list_deleted(cursor=cursor))

    reads = [sent_json(call)["inputs"] for call in mocked.calls if "/batch/read" in call.request.url]
    assert reads == [[{"id": "2"}], [{"id": "3"}, {"id": "4"}]], "1 was archived before the cursor - 2 min"
    assert [[(r.remote_id, r.deleted) for r in page.records] for page in pages] == [
        [("2", True)],
        [("9", False), ("3", True)],
        [],
    ]
    assert [page.cursor for page in pages[:-1]] == [None, None], "only a complete scan moves the watermark"
    # HubSpot's latest archivedAt (10:06) minus the overlap, with the ids already reported inside it.
    assert json.loads(pages[-1].cursor) == {"since": 1795601160000 - 120_000, "handled": ["3", "4"]}
    lists = [call.request.url for call in mocked.calls if call.request.method == "GET"]
    assert "archived=true" in lists[0] and "after=a1" in lists[1]


def test_a_deletion_scan_reads_back_only_what_it_has_not_reported_and_keeps_its_cursor_when_nothing_is_new(
    adapter, mocked
):
    cursor = json.dumps({"since": 1795601040000, "handled": ["3", "4"]})  # 10:04, 3 and 4 done
    old = [archived(2, "2026-11-25T09:58:30.000Z"), archived(3, "2026-11-25T10:05:00.000Z")]
    recycling_bin(mocked, [*old, archived(4, "2026-11-25T10:06:00.000Z")])

    pages = list(adapter.list_deleted(cursor=cursor))

    assert [call.request.method for call in mocked.calls] == ["GET"], "nothing read back again"
    assert [page.records for page in pages] == [[]]
    assert json.loads(pages[-1].cursor) == json.loads(cursor)

    mocked.calls.reset()
    recycling_bin(mocked, [*old, archived(4, "2026-11-25T10:06:00.000Z"), archived(5, "2026-11-25T10:05:30.000Z")])
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})

    pages = list(adapter.list_deleted(cursor=cursor))

    reads = [sent_json(call)["inputs"] for call in mocked.calls if "/batch/read" in call.request.url]
    assert reads == [[{"id": "5"}]], "archived before the latest one seen, inside the overlap: still found"
    assert [(r.remote_id, r.deleted) for r in pages[0].records] == [("5", True)]
    assert json.loads(pages[-1].cursor) == {"since": 1795601040000, "handled": ["3", "4", "5"]}


def test_a_failed_bin_page_leaves_the_deletion_cursor_where_it_was(connection, mocked):
    """A poll whose scan fails after the search saved its cursor: the next poll scans from the old point."""
    connection.sync_cursor = "1795600800000"
    connection.save(update_fields=["sync_cursor"])
    later = contact(1, "p1@example.com", updatedAt="2026-11-25T10:30:00.000Z")
    mocked.post(f"{CONTACTS}/search", json={"results": [later]})
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    mocked.post(f"{CONTACTS}/batch/create", json={"status": "COMPLETE", "results": []})
    archived_only = matchers.query_param_matcher({"archived": "true"}, strict_match=False)
    mocked.get(CONTACTS, status=400, json={"status": "error", "message": "bad"}, match=[archived_only])
    mocked.assert_all_requests_are_fired = False

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.sync_cursor == str(1795602600000), "the search's progress is kept"
    assert json.loads(connection.deletion_cursor) == {"since": 1795600800000 - 120_000, "handled": []}


def test_batch_read_by_id_and_by_email(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/read", json={"status": "COMPLETE", "results": [contact(7, "a@example.com")]})
    mocked.post(
        f"{CONTACTS}/batch/read",
        status=207,
        json={
            "status": "COMPLETE",
            "results": [contact(8, "b@example.com")],
            "numErrors": 1,
            "errors": [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "nf",
                    "context": {"ids": ["x@example.com"]},
                }
            ],
        },
    )

    assert [r.remote_id for r in adapter.read_many(["7", "404"])] == ["7"]
    assert [r.record.email for r in adapter.find_by_emails(["b@example.com", "x@example.com"])] == ["b@example.com"]
    assert sent_json(mocked.calls[0])["inputs"] == [{"id": "7"}, {"id": "404"}]
    assert mocked.calls[0].request.url.endswith("batch/read?archived=false")
    assert sent_json(mocked.calls[1])["idProperty"] == "email"


def test_batch_create_applies_207_item_by_item(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/create", status=207, json=fixture("batch_create_207"))

    ok, bad = adapter.create_many([ContactRecord(email="new@example.com"), ContactRecord(email="bad@")])

    assert (ok.ok, ok.remote_id) == (True, "601")
    assert not bad.ok and not bad.retryable and "bad@ is invalid" in bad.error
    inputs = sent_json(mocked.calls[0])["inputs"]
    assert inputs[0] == {"properties": {"email": "new@example.com"}, "associations": [], "objectWriteTraceId": "0"}


def test_a_duplicate_email_409_names_the_existing_contact_to_link_to(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/create", status=409, json=fixture("error_409_exists"))

    (dup,) = adapter.create_many([ContactRecord(email="dup@example.com")])

    assert not dup.ok and dup.existing_remote_id == "37765128953"
    assert "Contact already exists" in dup.error


def test_a_409_in_a_batch_retries_the_items_one_by_one(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/create", status=409, json=fixture("error_409_exists"))
    mocked.post(f"{CONTACTS}/batch/create", status=409, json=fixture("error_409_exists"))
    mocked.post(f"{CONTACTS}/batch/create", json={"status": "COMPLETE", "results": [
        {**contact(602, "fresh@example.com"), "objectWriteTraceId": "0"}]})  # fmt: skip

    dup, fresh = adapter.create_many([ContactRecord(email="dup@example.com"), ContactRecord(email="fresh@example.com")])

    assert dup.existing_remote_id == "37765128953" and fresh.remote_id == "602"
    assert [len(sent_json(call)["inputs"]) for call in mocked.calls] == [2, 1, 1]


def test_a_daily_limit_met_while_going_one_by_one_says_what_was_written(adapter, mocked):
    from syncapp.exceptions import PartialWriteError

    mocked.post(f"{CONTACTS}/batch/create", status=400, json={"status": "error", "message": "bad@ is invalid"})
    mocked.post(f"{CONTACTS}/batch/create", json={"status": "COMPLETE", "results": [
        {**contact(602, "fresh@example.com"), "objectWriteTraceId": "0"}]})  # fmt: skip
    mocked.post(f"{CONTACTS}/batch/create", status=429, json=fixture("error_429_daily"))

    with pytest.raises(PartialWriteError) as raised:
        adapter.create_many([ContactRecord(email=email) for email in ("fresh@example.com", "bad@", "late@example.com")])

    assert [(result.ok, result.remote_id) for result in raised.value.results] == [(True, "602")]
    assert isinstance(raised.value.cause, QuotaExhaustedError)
    assert [len(sent_json(call)["inputs"]) for call in mocked.calls] == [3, 1, 1]


def test_batch_update_and_archive(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/update", json={"status": "COMPLETE", "results": [
        {**contact(7, "a@example.com"), "objectWriteTraceId": "0"}]})  # fmt: skip
    mocked.post(f"{CONTACTS}/batch/archive", status=204)

    (updated,) = adapter.update_many([("7", {"first_name": "Ada", "phone": ""})])
    (archived,) = adapter.archive_many(["7"])

    assert updated.ok and archived.ok
    assert sent_json(mocked.calls[0])["inputs"] == [
        {"id": "7", "properties": {"firstname": "Ada", "phone": ""}, "objectWriteTraceId": "0"}
    ]
    assert sent_json(mocked.calls[1]) == {"inputs": [{"id": "7"}]}


def test_5xx_then_success_is_retried(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/read", status=502, body="Bad gateway")
    mocked.post(f"{CONTACTS}/batch/read", json={"results": [contact(7, "a@example.com")]})
    assert len(adapter.read_many(["7"])) == 1


def test_timeouts_are_retried_up_to_max_retry_attempts_then_reported(adapter, mocked, settings):
    for _ in range(settings.HTTP_RETRY_ATTEMPTS + 1):
        mocked.post(f"{CONTACTS}/batch/read", body=requests.Timeout("read timed out"))
    with pytest.raises(TransientProviderError, match="timed out"):
        adapter.read_many(["7"])
    assert len(mocked.calls) == settings.HTTP_RETRY_ATTEMPTS + 1


def test_423_lock_waits_two_seconds(adapter, mocked, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    mocked.post(f"{CONTACTS}/batch/read", status=423, json={"status": "error", "message": "locked"})
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    adapter.read_many(["7"])
    assert waits == [2]


def test_ten_secondly_429_waits_the_interval_header(adapter, mocked, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    mocked.post(f"{CONTACTS}/batch/read", status=429, json=fixture("error_429_ten_secondly"),
                headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})  # fmt: skip
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    adapter.read_many(["7"])
    assert waits == [10]


def test_a_429_with_retry_after_waits_what_it_says(adapter, mocked, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    mocked.post(
        f"{CONTACTS}/batch/read", status=429, json=fixture("error_429_ten_secondly"), headers={"Retry-After": "3"}
    )
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    adapter.read_many(["7"])
    assert waits == [3]


def test_daily_429_is_not_retried(adapter, mocked):
    mocked.post(f"{CONTACTS}/batch/read", status=429, json=fixture("error_429_daily"))
    with pytest.raises(QuotaExhaustedError, match="daily limit"):
        adapter.read_many(["7"])
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("write", ["create", "update"])
def test_a_daily_429_on_a_batch_write_is_raised_not_split_into_refusals(adapter, mocked, write):
    mocked.post(f"{CONTACTS}/batch/{write}", status=429, json=fixture("error_429_daily"))

    with pytest.raises(QuotaExhaustedError, match="daily limit"):
        if write == "create":
            adapter.create_many([ContactRecord(email="a@example.com"), ContactRecord(email="b@example.com")])
        else:
            adapter.update_many([("7", {"first_name": "Ada"}), ("8", {"first_name": "Bea"})])
    assert len(mocked.calls) == 1, "one batch call, not one more per record"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried_and_keep_hubspots_message(adapter, mocked, status):
    mocked.post(f"{CONTACTS}/batch/read", status=status, json={"status": "error", "message": f"nope {status}"})
    with pytest.raises(ProviderError, match=f"nope {status}") as raised:
        adapter.read_many(["7"])
    assert len(mocked.calls) == 1
    assert isinstance(raised.value, ProviderAuthError) == (status in (401, 403))


def test_a_daily_limit_pauses_the_connection_with_a_clear_status(connection, mocked):
    mocked.post(f"{CONTACTS}/search", status=429, json=fixture("error_429_daily"))

    run = connection_sync(connection=connection)

    connection.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert connection.status == CrmConnection.Status.RATE_LIMITED and connection.rate_limited_until
    assert "daily limit" in connection.status_message
    from syncapp.exceptions import ConnectionInactiveError

    with pytest.raises(ConnectionInactiveError, match="daily limit"):
        connection_sync(connection=connection)


def test_a_daily_limit_met_by_a_push_write_keeps_the_changes_queued(connection, mocked, tenant):
    from syncapp.models import ContactLink, OutboxEntry
    from syncapp.services.contacts import contact_create

    for name in ("ann", "bea"):
        contact_create(tenant=tenant, values={"email": f"{name}@example.com"})
    mocked.post(f"{CONTACTS}/batch/read", json={"status": "COMPLETE", "results": []})  # no match by email
    mocked.post(f"{CONTACTS}/batch/create", status=429, json=fixture("error_429_daily"))

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert (run.status, run.errors) == (SyncRun.Status.FAILED, 0)
    assert "daily limit" in run.error
    connection.refresh_from_db()
    assert connection.status == CrmConnection.Status.RATE_LIMITED and connection.rate_limited_until
    entries = OutboxEntry.objects.filter(connection=connection)
    assert sorted(entry.contact.email for entry in entries) == ["ann@example.com", "bea@example.com"]
    assert {(entry.attempts, entry.record_failures) for entry in entries} == {(1, 0)}
    assert not ContactLink.objects.filter(connection=connection).exists()
    assert [call.request.url.rsplit("/", 1)[-1] for call in mocked.calls] == ["read?archived=false", "create"]


def test_pronouns_setup_creates_the_property_once(connection, mocked):
    mocked.get(f"{API}/crm/v3/properties/contacts", json={"results": [{"name": "email", "label": "Email"}]})
    mocked.get(
        f"{API}/crm/v3/properties/contacts/pronouns", status=404, json={"status": "error", "message": "not found"}
    )
    mocked.post(f"{API}/crm/v3/properties/contacts", status=201, json={"name": "pronouns", "label": "Pronouns"})

    setup = connection_setup_pronouns(connection=connection)

    assert setup.state == "configured" and setup.key == "pronouns"
    created = sent_json(mocked.calls[-1])
    assert {k: created[k] for k in ("name", "label", "type", "fieldType", "groupName")} == {
        "name": "pronouns",
        "label": "Pronouns",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    }
    connection.refresh_from_db()
    assert connection.pronouns_state == "configured"
    assert "pronouns" not in get_adapter(connection).unsupported_fields()


def test_pronouns_setup_is_idempotent_and_offers_an_existing_pronouns_label(connection, mocked):
    mocked.get(
        f"{API}/crm/v3/properties/contacts", json={"results": [{"name": "preferred_pronouns", "label": "Pronouns"}]}
    )

    setup = connection_setup_pronouns(connection=connection)

    assert setup.state == "missing" and setup.candidate == "preferred_pronouns"
    assert "--map-existing preferred_pronouns" in setup.message
    mocked.get(
        f"{API}/crm/v3/properties/contacts", json={"results": [{"name": "preferred_pronouns", "label": "Pronouns"}]}
    )
    mapped = connection_setup_pronouns(connection=connection, map_existing="preferred_pronouns")
    assert (mapped.state, mapped.key) == ("configured", "preferred_pronouns")
    assert get_adapter(connection).names["pronouns"] == "preferred_pronouns"


def test_pronouns_setup_reports_a_missing_scope(connection, mocked):
    mocked.get(f"{API}/crm/v3/properties/contacts", json={"results": []})
    mocked.get(f"{API}/crm/v3/properties/contacts/pronouns", status=404, json={"status": "error", "message": "nf"})
    mocked.post(f"{API}/crm/v3/properties/contacts", status=403, json=fixture("error_403_scopes"))

    setup = connection_setup_pronouns(connection=connection)

    assert setup.state == "failed" and "crm.schemas.contacts.write" in setup.message
    connection.refresh_from_db()
    assert connection.pronouns_state == "failed"


def test_without_the_pronouns_property_sync_runs_on_and_reports_it(connection, mocked, tenant):
    from syncapp.services.contacts import contact_create

    contact_create(tenant=tenant, values={"email": "p@example.com", "pronouns": "she/her"})
    mocked.post(f"{CONTACTS}/search", json={"results": []})
    recycling_bin(mocked)
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})
    mocked.post(f"{CONTACTS}/batch/create", json={"status": "COMPLETE", "results": [
        {**contact(700, "p@example.com"), "objectWriteTraceId": "0"}]})  # fmt: skip

    run = connection_sync(connection=connection)

    assert run.status == SyncRun.Status.SUCCEEDED and run.skipped_fields == "pronouns"
    assert sent_json(mocked.calls[-1])["inputs"][0]["properties"] == {"email": "p@example.com"}


def test_the_base_url_is_configurable_per_connection(tenant, mocked, settings):
    settings.CRM_API_ALLOWED_HOSTS = ["127.0.0.1:8765"]
    sandbox = connection_create(
        tenant=tenant, provider="hubspot", account_id="777", credentials={"access_token": "t"},
        api_base_url="http://127.0.0.1:8765/hubspot/777",
    )  # fmt: skip
    mocked.post("http://127.0.0.1:8765/hubspot/777/crm/v3/objects/contacts/batch/read", json={"results": []})
    assert get_adapter(sandbox).read_many(["1"]) == []


def test_more_than_100_records_go_in_batches_of_at_most_100(connection, mocked, tenant, settings):
    from syncapp.services.contacts import contact_create

    settings.SYNC_BATCH_SIZE = 500  # the adapter's own cap of 100 still applies
    for n in range(150):
        contact_create(tenant=tenant, values={"email": f"b{n:03}@example.com"})

    def created(request):
        inputs = json.loads(request.body)["inputs"]
        results = [
            {
                **contact(1000 + int(i["properties"]["email"][1:4]), i["properties"]["email"]),
                "objectWriteTraceId": i["objectWriteTraceId"],
            }
            for i in inputs
        ]
        return 201, {}, json.dumps({"status": "COMPLETE", "results": results})

    mocked.add_callback(responses.POST, f"{CONTACTS}/batch/read", callback=lambda r: (200, {}, '{"results": []}'))
    mocked.add_callback(responses.POST, f"{CONTACTS}/batch/create", callback=created)

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert run.status == SyncRun.Status.SUCCEEDED and run.created == 150, run.error
    sizes = [len(sent_json(call)["inputs"]) for call in mocked.calls]
    assert sizes == [100, 100, 50, 50]  # read 100, create 100, read 50, create 50


def test_a_refused_record_in_a_batch_does_not_hold_back_the_others(connection, mocked, tenant):
    from syncapp.models import ContactLink
    from syncapp.services.contacts import contact_create, contact_update

    good = contact_create(tenant=tenant, values={"email": "good@example.com"})
    bad = contact_create(tenant=tenant, values={"email": "bad@example.com"})
    for remote_id, record in (("1", good), ("2", bad)):
        ContactLink.objects.create(
            connection=connection, contact=record, remote_id=remote_id, base={"email": record.email}
        )
    contact_update(contact=good, values={"phone": "1"})
    contact_update(contact=bad, values={"phone": "not a phone"})
    mocked.post(
        f"{CONTACTS}/batch/read", json={"results": [contact(1, "good@example.com"), contact(2, "bad@example.com")]}
    )
    mocked.post(
        f"{CONTACTS}/batch/update",
        status=400,
        json={"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid"},
    )
    mocked.post(
        f"{CONTACTS}/batch/update",
        json={"status": "COMPLETE", "results": [{**contact(1, "good@example.com"), "objectWriteTraceId": "0"}]},
    )
    mocked.post(
        f"{CONTACTS}/batch/update",
        status=400,
        json={"status": "error", "category": "VALIDATION_ERROR", "message": "phone is invalid"},
    )

    run = connection_sync(connection=connection, trigger=SyncRun.Trigger.PUSH)

    assert run.status == SyncRun.Status.SUCCEEDED and run.errors == 1
    assert ContactLink.objects.get(contact=good).status == "ok"
    failed = ContactLink.objects.get(contact=bad)
    assert failed.status == "error" and "phone is invalid" in failed.last_error


def test_a_read_error_other_than_not_found_never_looks_like_a_deletion(adapter, mocked):
    error = {"status": "error", "category": "INTERNAL_ERROR", "message": "try later", "context": {"ids": ["7"]}}
    mocked.post(f"{CONTACTS}/batch/read", status=207, json={"status": "COMPLETE", "results": [], "errors": [error]})
    with pytest.raises(TransientProviderError, match="try later"):
        adapter.read_many(["7"])


def test_results_without_a_trace_id_are_matched_by_id(adapter, mocked):
    mocked.post(
        f"{CONTACTS}/batch/update", json={"status": "COMPLETE", "results": [contact(8, "b@x.io"), contact(7, "a@x.io")]}
    )
    results = adapter.update_many([("7", {"phone": "1"}), ("8", {"phone": "2"})])
    assert [(r.ok, r.remote_id) for r in results] == [(True, "7"), (True, "8")]


def test_a_wait_longer_than_a_sync_can_hold_its_lock_is_not_slept(adapter, mocked, monkeypatch):
    waits = []
    monkeypatch.setattr("syncapp.providers.base.client._sleep", waits.append)
    mocked.post(f"{CONTACTS}/batch/read", status=477, json={"status": "error", "message": "Migration in progress"},
                headers={"Retry-After": "86400"})  # fmt: skip
    with pytest.raises(TransientProviderError) as raised:
        adapter.read_many(["7"])
    assert raised.value.retry_after == 86400 and waits == []


def test_oauth_tokens_refresh_before_expiry_and_once_after_a_401(tenant, mocked, settings):
    import time

    settings.HUBSPOT_CLIENT_ID, settings.HUBSPOT_CLIENT_SECRET = "client-id", "client-secret"
    oauth = connection_create(
        tenant=tenant, provider="hubspot", account_id="9", credentials={
            "access_token": "old", "refresh_token": "refresh-1", "expires_at": time.time() + 60})  # fmt: skip
    token = {"access_token": "new", "refresh_token": "refresh-2", "expires_in": 1800, "token_type": "bearer"}
    mocked.post(f"{API}/oauth/v1/token", json=token)
    mocked.post(f"{CONTACTS}/batch/read", status=401, json={"status": "error", "message": "expired"})
    mocked.post(f"{API}/oauth/v1/token", json={**token, "access_token": "newer"})
    mocked.post(f"{CONTACTS}/batch/read", json={"results": []})

    get_adapter(oauth).read_many(["1"])

    assert "grant_type=refresh_token" in mocked.calls[0].request.body
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer new"
    assert mocked.calls[3].request.headers["Authorization"] == "Bearer newer"
    oauth.refresh_from_db()
    assert oauth.credentials["access_token"] == "newer" and "newer" not in oauth.credentials_encrypted


def test_pronouns_setup_uses_an_existing_pronouns_property_and_a_409_counts_as_created(connection, mocked):
    mocked.get(f"{API}/crm/v3/properties/contacts", json={"results": [{"name": "pronouns", "label": "Pronouns"}]})
    assert connection_setup_pronouns(connection=connection).key == "pronouns"
    assert [c.request.method for c in mocked.calls] == ["GET"]

    mocked.get(f"{API}/crm/v3/properties/contacts", json={"results": []})
    mocked.get(f"{API}/crm/v3/properties/contacts/pronouns", status=404, json={"status": "error", "message": "nf"})
    mocked.post(
        f"{API}/crm/v3/properties/contacts",
        status=409,
        json={"status": "error", "message": "Property named 'pronouns' already exists."},
    )
    assert connection_setup_pronouns(connection=connection).state == "configured"
