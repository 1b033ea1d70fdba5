"""The sandbox's HubSpot portal over real HTTP: contacts v3, search, properties, merges, limits, OAuth."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.sandbox.conftest import AccountHttp

CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"


class Portal(AccountHttp):
    """requests against one sandbox HubSpot account, with its token."""

    def __init__(self, account):
        super().__init__(account, {"Authorization": f"Bearer {account.token}"})

    def create(self, **properties):
        response = self("POST", CONTACTS, json={"properties": properties})
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def portal(crm_sandbox):
    return Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=False))


def test_requests_without_a_token_or_with_a_wrong_one_get_401(crm_sandbox, portal):
    url = portal.account.base_url + CONTACTS
    missing = requests.get(url, timeout=10)
    wrong = requests.get(url, headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    right = portal("GET", CONTACTS)

    assert missing.status_code == wrong.status_code == 401
    assert wrong.json()["category"] == "INVALID_AUTHENTICATION"
    assert right.status_code == 200


def test_list_pages_with_after_and_refuses_a_limit_over_100(portal):
    ids = [portal.create(email=f"p{i}@example.com")["id"] for i in range(5)]

    first = portal("GET", CONTACTS, params={"limit": 2}).json()
    after = first["paging"]["next"]["after"]
    second = portal("GET", CONTACTS, params={"limit": 2, "after": after}).json()
    last = portal("GET", CONTACTS, params={"limit": 2, "after": second["paging"]["next"]["after"]}).json()

    assert [r["id"] for r in first["results"] + second["results"] + last["results"]] == ids
    assert "paging" not in last
    assert portal("GET", CONTACTS, params={"limit": 100}).status_code == 200
    too_many = portal("GET", CONTACTS, params={"limit": 101})
    assert too_many.status_code == 400
    assert too_many.json()["category"] == "VALIDATION_ERROR"


def test_records_carry_string_properties_and_timestamps(portal):
    created = portal.create(email="ada@example.com", firstname="Ada")

    fetched = portal("GET", f"{CONTACTS}/{created['id']}").json()
    assert fetched["properties"]["email"] == "ada@example.com"
    assert fetched["properties"]["hs_object_id"] == created["id"]
    assert fetched["properties"]["lastmodifieddate"] == fetched["updatedAt"]
    assert fetched["archived"] is False
    by_email = portal("GET", f"{CONTACTS}/ADA@example.com", params={"idProperty": "email"})
    assert by_email.json()["id"] == created["id"]


def test_batch_read_create_update_archive(portal):
    created = portal(
        "POST",
        f"{CONTACTS}/batch/create",
        json={"inputs": [{"properties": {"email": f"b{i}@example.com", "firstname": f"B{i}"}} for i in range(3)]},
    )
    assert created.status_code == 201
    ids = [result["id"] for result in created.json()["results"]]
    assert len(ids) == 3

    updated = portal(
        "POST",
        f"{CONTACTS}/batch/update",
        json={"inputs": [{"id": ids[0], "properties": {"firstname": "Changed"}}]},
    )
    assert updated.status_code == 200
    assert updated.json()["results"][0]["properties"]["firstname"] == "Changed"

    read = portal(
        "POST",
        f"{CONTACTS}/batch/read",
        json={"properties": ["firstname"], "inputs": [{"id": i} for i in ids]},
    )
    assert read.status_code == 200
    assert sorted(r["properties"]["firstname"] for r in read.json()["results"]) == ["B1", "B2", "Changed"]

    archived = portal("POST", f"{CONTACTS}/batch/archive", json={"inputs": [{"id": ids[1]}]})
    assert archived.status_code == 204
    again = portal("POST", f"{CONTACTS}/batch/read", json={"properties": [], "inputs": [{"id": i} for i in ids]})
    assert again.status_code == 207
    assert {r["id"] for r in again.json()["results"]} == {ids[0], ids[2]}
    assert again.json()["errors"][0]["context"]["ids"] == [ids[1]]


@pytest.mark.parametrize("operation", ["read", "create", "update", "archive"])
def test_a_batch_of_101_inputs_is_refused(portal, operation):
    inputs = [{"id": str(i), "properties": {"email": f"x{i}@example.com"}} for i in range(101)]
    body = {"inputs": inputs, "properties": []}

    response = portal("POST", f"{CONTACTS}/batch/{operation}", json=body)

    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert portal("GET", CONTACTS).json()["results"] == []


def test_an_unknown_property_fails_the_write_with_a_validation_error_naming_it(portal):
    response = portal("POST", CONTACTS, json={"properties": {"email": "p@example.com", "pronouns": "she/her"}})

    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert "pronouns" in body["message"]
    assert body["errors"][0]["context"]["propertyName"] == ["pronouns"]
    assert portal("GET", CONTACTS).json()["results"] == []

    batch = portal("POST", f"{CONTACTS}/batch/create", json={"inputs": [{"properties": {"pronouns": "they"}}]})
    assert batch.status_code == 400
    assert "pronouns" in batch.json()["message"]

    portal(
        "POST",
        PROPERTIES,
        json={"name": "pronouns", "label": "Pronouns", "type": "string", "fieldType": "text", "groupName": "g"},
    )
    assert portal("POST", CONTACTS, json={"properties": {"pronouns": "she/her"}}).status_code == 201


def test_a_read_only_property_is_refused(portal):
    response = portal("POST", CONTACTS, json={"properties": {"email": "r@example.com", "hs_object_id": "5"}})

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "READ_ONLY_VALUE"


def test_an_existing_email_conflicts_on_create_and_batch_create(portal):
    existing = portal.create(email="dup@example.com")

    single = portal("POST", CONTACTS, json={"properties": {"email": "DUP@example.com"}})
    batch = portal(
        "POST",
        f"{CONTACTS}/batch/create",
        json={"inputs": [{"properties": {"email": "new@example.com"}}, {"properties": {"email": "dup@example.com"}}]},
    )

    for response in (single, batch):
        assert response.status_code == 409
        assert response.json()["category"] == "CONFLICT"
        assert response.json()["message"] == f"Contact already exists. Existing ID: {existing['id']}"
    assert len(portal("GET", CONTACTS).json()["results"]) == 1  # the batch failed as a whole


def test_an_invalid_email_in_a_batch_is_a_207_item_error_with_its_trace_id(portal):
    response = portal(
        "POST",
        f"{CONTACTS}/batch/create",
        json={
            "inputs": [
                {"properties": {"email": "good@example.com"}, "objectWriteTraceId": "t-good"},
                {"properties": {"email": "not an email"}, "objectWriteTraceId": "t-bad"},
            ]
        },
    )

    assert response.status_code == 207
    body = response.json()
    assert [r["objectWriteTraceId"] for r in body["results"]] == ["t-good"]
    assert body["numErrors"] == 1
    assert body["errors"][0]["context"]["objectWriteTraceId"] == ["t-bad"]
    assert body["errors"][0]["category"] == "VALIDATION_ERROR"


def test_archived_records_leave_list_and_search_and_archived_true_lists_them(portal):
    kept = portal.create(email="kept@example.com")
    gone = portal.create(email="gone@example.com")

    assert portal("DELETE", f"{CONTACTS}/{gone['id']}").status_code == 204

    listed = [r["id"] for r in portal("GET", CONTACTS).json()["results"]]
    searched = [r["id"] for r in portal("POST", f"{CONTACTS}/search", json={}).json()["results"]]
    archived = portal("GET", CONTACTS, params={"archived": "true"}).json()["results"]
    assert listed == searched == [kept["id"]]
    assert [r["id"] for r in archived] == [gone["id"]]
    assert archived[0]["archived"] is True and archived[0]["archivedAt"]
    assert portal("GET", f"{CONTACTS}/{gone['id']}").status_code == 404
    assert portal("GET", f"{CONTACTS}/{gone['id']}", params={"archived": "true"}).status_code == 200
    # The email is free again.
    assert portal("POST", CONTACTS, json={"properties": {"email": "gone@example.com"}}).status_code == 201


def test_search_filters_on_lastmodifieddate_in_ms_and_sorts(portal):
    old = portal.create(email="old@example.com", firstname="Zed")
    time.sleep(0.02)
    cutoff = int(time.time() * 1000)
    time.sleep(0.02)
    new_a = portal.create(email="a@example.com", firstname="Bea")
    new_b = portal.create(email="b@example.com", firstname="Abe")

    def search(**body):
        response = portal("POST", f"{CONTACTS}/search", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    since = {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(cutoff)}]}
    found = search(filterGroups=[since], sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}])
    assert [r["id"] for r in found["results"]] == [new_a["id"], new_b["id"]]
    assert found["total"] == 2

    by_name = search(sorts=[{"propertyName": "firstname", "direction": "ASCENDING"}], properties=["firstname"])
    assert [r["properties"]["firstname"] for r in by_name["results"]] == ["Abe", "Bea", "Zed"]
    descending = search(sorts=["-firstname"])
    assert [r["id"] for r in descending["results"]] == [old["id"], new_a["id"], new_b["id"]]

    paged = search(limit=2, sorts=[{"propertyName": "firstname", "direction": "ASCENDING"}])
    assert paged["paging"]["next"]["after"] == "2"
    rest = search(limit=2, after="2", sorts=[{"propertyName": "firstname", "direction": "ASCENDING"}])
    assert [r["id"] for r in rest["results"]] == [old["id"]]
    assert "paging" not in rest


def test_search_sees_records_written_a_moment_ago(portal):
    """Many writes in one millisecond must not push lastmodifieddate past the moment a search looks."""
    inputs = [{"properties": {"email": f"fresh{i}@example.com"}} for i in range(100)]
    assert portal("POST", f"{CONTACTS}/batch/create", json={"inputs": inputs}).status_code == 201

    found = portal("POST", f"{CONTACTS}/search", json={"limit": 200}).json()

    assert found["total"] == 100


def test_search_lag_hides_fresh_changes_for_a_while(crm_sandbox):
    portal = Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=False, search_lag_ms=300))
    portal.create(email="late@example.com")

    assert portal("POST", f"{CONTACTS}/search", json={}).json()["total"] == 0
    time.sleep(0.35)
    assert portal("POST", f"{CONTACTS}/search", json={}).json()["total"] == 1


def test_search_limits_a_page_to_200_and_a_query_to_10000_results(portal):
    portal.create(email="one@example.com")

    assert portal("POST", f"{CONTACTS}/search", json={"limit": 200}).status_code == 200
    over = portal("POST", f"{CONTACTS}/search", json={"limit": 201})
    assert over.status_code == 400
    assert over.json()["category"] == "VALIDATION_ERROR"
    beyond = portal("POST", f"{CONTACTS}/search", json={"limit": 100, "after": "10000"})
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"


def test_a_merge_in_the_crm_answers_for_the_merged_away_id_with_the_survivor(crm_sandbox, control, portal):
    survivor = portal.create(email="keep@example.com", firstname="Keep")
    merged = portal.create(email="old@example.com", phone="555")

    control.merge(portal.account, survivor["id"], merged["id"])

    answer = portal(
        "GET", f"{CONTACTS}/{merged['id']}", params={"properties": "hs_merged_object_ids,phone,hs_additional_emails"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["id"] == survivor["id"]
    assert body["properties"]["hs_merged_object_ids"].split(";") == [merged["id"]]
    assert body["properties"]["phone"] == "555"
    assert "old@example.com" in body["properties"]["hs_additional_emails"].split(";")
    listed = [r["id"] for r in portal("GET", CONTACTS).json()["results"]]
    assert listed == [survivor["id"]]
    # The merged-away email is now a secondary address of the survivor, so it still conflicts.
    conflict = portal("POST", CONTACTS, json={"properties": {"email": "old@example.com"}})
    assert conflict.status_code == 409
    assert conflict.json()["message"].endswith(survivor["id"])


def test_the_api_merge_endpoint_merges_too(portal):
    survivor = portal.create(email="s@example.com")
    merged = portal.create(email="m@example.com")

    response = portal(
        "POST", f"{CONTACTS}/merge", json={"primaryObjectId": survivor["id"], "objectIdToMerge": merged["id"]}
    )

    assert response.status_code == 200
    assert response.json()["id"] == survivor["id"]
    assert portal("GET", f"{CONTACTS}/{merged['id']}").json()["id"] == survivor["id"]


def test_properties_list_get_and_create(portal):
    names = [p["name"] for p in portal("GET", PROPERTIES).json()["results"]]
    assert {"email", "firstname", "lastname", "phone", "jobtitle", "lastmodifieddate"} <= set(names)
    assert "pronouns" not in names
    email = portal("GET", f"{PROPERTIES}/email").json()
    assert email["type"] == "string" and email["modificationMetadata"]["readOnlyValue"] is False
    assert portal("GET", f"{PROPERTIES}/hs_object_id").json()["modificationMetadata"]["readOnlyValue"] is True
    assert portal("GET", f"{PROPERTIES}/pronouns").status_code == 404

    definition = {"name": "pronouns", "label": "Pronouns", "type": "string", "fieldType": "text", "groupName": "g"}
    created = portal("POST", PROPERTIES, json=definition)
    assert created.status_code == 201
    assert created.json()["name"] == "pronouns"
    assert portal("GET", f"{PROPERTIES}/pronouns").json()["label"] == "Pronouns"

    again = portal("POST", PROPERTIES, json=definition)
    assert again.status_code == 409
    assert again.json()["category"] == "CONFLICT"
    missing = portal("POST", PROPERTIES, json={"name": "x", "label": "X"})
    assert missing.status_code == 400


def test_creating_a_property_without_the_schema_scope_is_403_naming_the_missing_scopes(crm_sandbox):
    scopes = ["crm.schemas.contacts.write"]
    portal = Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=False, missing_scopes=scopes))

    response = portal(
        "POST",
        PROPERTIES,
        json={"name": "pronouns", "label": "Pronouns", "type": "string", "fieldType": "text", "groupName": "g"},
    )

    assert response.status_code == 403
    assert response.json()["category"] == "MISSING_SCOPES"
    assert response.json()["context"]["missingScopes"] == scopes
    assert portal("GET", f"{PROPERTIES}/pronouns").status_code == 404


def test_the_ten_secondly_limit_answers_429_with_hubspot_headers(crm_sandbox):
    portal = Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=True, tier="free"))

    answers = [portal("GET", CONTACTS, params={"limit": 1}) for _ in range(101)]

    assert [a.status_code for a in answers[:100]] == [200] * 100
    first = answers[0].headers
    assert first["X-HubSpot-RateLimit-Max"] == "100"
    assert first["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert first["X-HubSpot-RateLimit-Remaining"] == "99"
    assert first["X-HubSpot-RateLimit-Daily"] == "250000"
    assert first["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    refused = answers[100]
    assert refused.status_code == 429
    assert refused.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    assert refused.json()["errorType"] == "RATE_LIMIT"
    assert refused.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert refused.headers["X-HubSpot-RateLimit-Max"] == "100"


def test_the_search_limit_answers_429_secondly_without_rate_limit_headers(crm_sandbox):
    portal = Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=True, tier="professional"))

    answers = [portal("POST", f"{CONTACTS}/search", json={}) for _ in range(6)]

    assert [a.status_code for a in answers[:5]] == [200] * 5
    refused = answers[5]
    assert refused.status_code == 429
    assert refused.json()["message"] == "You have reached your secondly limit."
    for answer in answers:
        assert not [name for name in answer.headers if name.lower().startswith("x-hubspot-ratelimit")]
    # The search limit is its own: other calls still pass.
    assert portal("GET", CONTACTS).status_code == 200


def test_oauth_authorize_exchange_refresh_and_token_info(crm_sandbox):
    account = crm_sandbox.sandbox.account_create("hubspot", account_id="62515", rate_limits=False)
    base = account.base_url
    redirect = "http://localhost:8000/oauth/callback/"

    authorize = requests.get(
        f"{base}/oauth/authorize",
        params={"client_id": account.client_id, "redirect_uri": redirect, "state": "st-1", "scope": "oauth"},
        allow_redirects=False,
        timeout=10,
    )
    assert authorize.status_code == 302
    location = urlsplit(authorize.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]

    form = {"client_id": account.client_id, "client_secret": account.client_secret, "redirect_uri": redirect}
    exchange = {**form, "grant_type": "authorization_code", "code": query["code"][0]}
    exchanged = requests.post(f"{base}/oauth/v1/token", data=exchange, timeout=10)
    assert exchanged.status_code == 200
    tokens = exchanged.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 1800
    reused = requests.post(f"{base}/oauth/v1/token", data=exchange, timeout=10)
    assert reused.status_code == 400

    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(base + CONTACTS, headers=headers, timeout=10).status_code == 200

    refreshed = requests.post(
        f"{base}/oauth/v1/token",
        data={**form, "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        timeout=10,
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != tokens["access_token"]

    info = requests.get(f"{base}/oauth/v1/access-tokens/{refreshed.json()['access_token']}", timeout=10)
    assert info.status_code == 200
    assert info.json()["hub_id"] == 62515
    assert requests.get(f"{base}/oauth/v1/access-tokens/unknown", timeout=10).status_code == 404

    bad_client = requests.post(
        f"{base}/oauth/v1/token",
        data={**form, "client_secret": "wrong", "grant_type": "refresh_token", "refresh_token": "x"},
        timeout=10,
    )
    assert bad_client.status_code == 400


def oauth_access_token(account):
    """An OAuth access token for ``account``, through the authorize redirect and the code exchange."""
    redirect = "http://localhost:8000/oauth/callback/"
    authorize = requests.get(
        f"{account.base_url}/oauth/authorize",
        params={"client_id": account.client_id, "redirect_uri": redirect, "state": "s"},
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect,
        "client_id": account.client_id,
        "client_secret": account.client_secret,
    }
    return requests.post(f"{account.base_url}/oauth/v1/token", data=form, timeout=10).json()["access_token"]


def test_oauth_tokens_have_their_own_110_limit_and_no_daily_headers(crm_sandbox):
    account = crm_sandbox.sandbox.account_create("hubspot", rate_limits=True)
    headers = {"Authorization": f"Bearer {oauth_access_token(account)}"}

    answer = requests.get(account.base_url + CONTACTS, headers=headers, timeout=10)

    assert answer.status_code == 200
    assert answer.headers["X-HubSpot-RateLimit-Max"] == "110"
    assert "X-HubSpot-RateLimit-Daily" not in answer.headers


def test_a_failed_request_within_the_limits_still_carries_the_rate_limit_headers(crm_sandbox):
    portal = Portal(crm_sandbox.sandbox.account_create("hubspot", rate_limits=True))

    missing = portal("GET", f"{CONTACTS}/404404")

    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"
    assert missing.headers["X-HubSpot-RateLimit-Remaining"] == "99"
