"""The sandbox's Pipedrive company over real HTTP: v2 persons, v1 person fields and webhooks, limits, OAuth."""

import base64
import re
import time
from datetime import UTC, datetime

import pytest
import requests

from tests.sandbox.conftest import AccountHttp

PERSONS = "/api/v2/persons"
FIELDS = "/v1/personFields"


class Company(AccountHttp):
    """requests against one sandbox Pipedrive account, with its API token in x-api-token."""

    def __init__(self, account):
        super().__init__(account, {"x-api-token": account.token})

    def create(self, name="Ada Lovelace", **body):
        response = self("POST", PERSONS, json={"name": name, **body})
        assert response.status_code == 201, response.text
        return response.json()["data"]


@pytest.fixture
def company(crm_sandbox):
    return Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False))


def emails(*values):
    return [{"value": value, "primary": i == 0, "label": "work"} for i, value in enumerate(values)]


def test_the_api_token_goes_in_x_api_token_or_as_a_bearer_token(company):
    url = company.account.base_url + PERSONS
    token = company.account.token

    assert requests.get(url, headers={"x-api-token": token}, timeout=10).status_code == 200
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    refused = requests.get(url, headers={"x-api-token": "wrong"}, timeout=10)
    assert refused.status_code == 401
    assert refused.json()["success"] is False
    assert requests.get(url, timeout=10).status_code == 401


def test_persons_create_get_patch_and_soft_delete(company):
    person = company.create("Ada King Lovelace", emails=emails("ada@example.com"), phones=[{"value": "555"}])
    assert person["first_name"] == "Ada"
    assert person["last_name"] == "King Lovelace"
    assert person["emails"] == [{"value": "ada@example.com", "primary": True, "label": "work"}]
    assert person["phones"][0]["primary"] is True  # the only phone becomes the primary one
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", person["update_time"])

    fetched = company("GET", f"{PERSONS}/{person['id']}").json()["data"]
    assert fetched == person

    patched = company("PATCH", f"{PERSONS}/{person['id']}", json={"name": "Grace"})
    assert patched.status_code == 200
    assert (patched.json()["data"]["first_name"], patched.json()["data"]["last_name"]) == ("Grace", None)

    deleted = company("DELETE", f"{PERSONS}/{person['id']}")
    assert deleted.json() == {"success": True, "data": {"id": person["id"]}}
    assert company("GET", PERSONS).json()["data"] == []
    assert company("GET", f"{PERSONS}/{person['id']}").json()["data"]["is_deleted"] is True
    assert company("PATCH", f"{PERSONS}/{person['id']}", json={"name": "X"}).status_code == 404
    assert company("GET", f"{PERSONS}/999").status_code == 404


def test_writes_are_validated(company):
    assert company("POST", PERSONS, json={"emails": emails("a@example.com")}).status_code == 400  # no name
    assert company("POST", PERSONS, json={"name": "A", "first_name": "A"}).status_code == 400  # not in the v2 body
    assert company("POST", PERSONS, json={"name": "A", "emails": emails("not-an-email")}).status_code == 400
    two_primaries = [{"value": "a@example.com", "primary": True}, {"value": "b@example.com", "primary": True}]
    assert company("POST", PERSONS, json={"name": "A", "emails": two_primaries}).status_code == 400
    assert company("POST", PERSONS, json={"name": "A", "job_title": None}).status_code == 400  # a string in v2
    assert company("GET", PERSONS).json()["data"] == []


def test_cursor_paging_takes_at_most_500_and_ids_at_most_100(company):
    ids = [company.create(f"P{i}")["id"] for i in range(5)]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = company("GET", PERSONS, params=params).json()
        seen += [person["id"] for person in page["data"]]
        cursor = page["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    assert company("GET", PERSONS, params={"limit": 500}).status_code == 200
    assert company("GET", PERSONS, params={"limit": 501}).status_code == 400
    picked = company("GET", PERSONS, params={"ids": f"{ids[1]},{ids[3]}"}).json()["data"]
    assert [person["id"] for person in picked] == [ids[1], ids[3]]
    assert company("GET", PERSONS, params={"ids": ",".join(str(i) for i in range(1, 101))}).status_code == 200
    assert company("GET", PERSONS, params={"ids": ",".join(str(i) for i in range(1, 102))}).status_code == 400


def test_updated_since_is_inclusive_at_whole_seconds_and_sorts_by_update_time(company):
    first = company.create("First")
    # Wait for the next whole second, so the second write has a later update_time.
    time.sleep(1.05 - time.time() % 1)
    second = company.create("Second")
    company("PATCH", f"{PERSONS}/{first['id']}", json={"name": "First again"})
    first_again = company("GET", f"{PERSONS}/{first['id']}").json()["data"]
    assert second["update_time"] > first["update_time"]
    assert first_again["update_time"] >= second["update_time"]

    since = company("GET", PERSONS, params={"updated_since": second["update_time"]}).json()["data"]
    assert {person["id"] for person in since} == {first["id"], second["id"]}  # equal to the second: included
    stamp = datetime.fromisoformat(second["update_time"].replace("Z", "+00:00")).timestamp()
    later = datetime.fromtimestamp(stamp + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert company("GET", PERSONS, params={"updated_since": later}).json()["data"] == []

    ordered = company("GET", PERSONS, params={"sort_by": "update_time", "sort_direction": "desc"}).json()["data"]
    assert [p["update_time"] for p in ordered] == sorted((p["update_time"] for p in ordered), reverse=True)
    assert company("GET", PERSONS, params={"sort_by": "name"}).status_code == 400
    assert company("GET", PERSONS, params={"updated_since": "yesterday"}).status_code == 400


def test_search_by_exact_email_finds_a_secondary_email(company):
    person = company.create("Ada", emails=emails("ada@example.com", "ada.home@example.com"))
    company.create("Bob", emails=emails("bob@example.com"))

    def search(term):
        params = {"term": term, "fields": "email", "exact_match": "true"}
        response = company("GET", f"{PERSONS}/search", params=params)
        assert response.status_code == 200
        return [item["item"] for item in response.json()["data"]["items"]]

    assert [item["id"] for item in search("ada@example.com")] == [person["id"]]
    found = search("ADA.HOME@example.com")
    assert [item["id"] for item in found] == [person["id"]]
    assert found[0]["emails"] == ["ada@example.com", "ada.home@example.com"]
    assert search("ada") == []  # exact, not a substring
    assert company("GET", f"{PERSONS}/search", params={"term": "a"}).status_code == 400


def test_person_fields_page_and_a_created_field_has_a_40_hex_key(company):
    first = company("GET", FIELDS, params={"limit": 3}).json()
    assert len(first["data"]) == 3
    pagination = first["additional_data"]["pagination"]
    assert pagination["more_items_in_collection"] is True and pagination["next_start"] == 3
    everything = company("GET", FIELDS, params={"limit": 500}).json()
    assert everything["additional_data"]["pagination"]["more_items_in_collection"] is False
    assert [f["key"] for f in everything["data"][:3]] == [f["key"] for f in first["data"]]

    created = company("POST", FIELDS, json={"name": "Pronouns", "field_type": "varchar"})
    assert created.status_code == 201
    field = created.json()["data"]
    assert re.fullmatch(r"[0-9a-f]{40}", field["key"])
    assert field["edit_flag"] is True
    listed = company("GET", FIELDS, params={"limit": 500}).json()["data"]
    assert field["key"] in [f["key"] for f in listed]
    assert company("POST", FIELDS, json={"name": "No type"}).status_code == 400

    person = company.create("Ada", custom_fields={field["key"]: "she/her"})
    assert person["custom_fields"] == {field["key"]: "she/her"}


def test_an_unknown_custom_field_key_is_refused(company):
    response = company("POST", PERSONS, json={"name": "Ada", "custom_fields": {"a" * 40: "x"}})

    assert response.status_code == 400
    assert response.json()["success"] is False


def test_job_title_needs_contact_sync(crm_sandbox):
    without = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False, contact_sync=False))
    with_sync = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False, contact_sync=True))

    refused = without("POST", PERSONS, json={"name": "Ada", "job_title": "Engineer"})
    assert refused.status_code == 403
    keys = [f["key"] for f in without("GET", FIELDS, params={"limit": 500}).json()["data"]]
    assert "job_title" not in keys
    assert "job_title" not in without.create("Ada")

    keys = [f["key"] for f in with_sync("GET", FIELDS, params={"limit": 500}).json()["data"]]
    assert "job_title" in keys
    assert with_sync.create("Ada", job_title="Engineer")["job_title"] == "Engineer"


def test_token_costs_count_down_the_daily_budget(crm_sandbox):
    company = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=True, plan="growth", seats=2))
    budget = 30_000 * 2 * 2
    costs = []
    person = company("POST", PERSONS, json={"name": "Ada"})
    person_id = person.json()["data"]["id"]
    answers = [
        person,
        company("GET", f"{PERSONS}/{person_id}"),
        company("PATCH", f"{PERSONS}/{person_id}", json={"name": "Ada L"}),
        company("GET", PERSONS),
        company("GET", f"{PERSONS}/search", params={"term": "Ada"}),
        company("GET", FIELDS),
        company("DELETE", f"{PERSONS}/{person_id}"),
        company("GET", "/v1/users/me"),
    ]
    remaining = budget
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
        cost = int(answer.headers["x-token-cost"])
        costs.append(cost)
        remaining -= cost
        assert answer.headers["x-daily-ratelimit-token-limit"] == str(budget)
        assert answer.headers["x-daily-ratelimit-token-remaining"] == str(remaining)
    assert costs == [5, 1, 5, 10, 20, 20, 3, 2]


def test_an_exhausted_daily_budget_answers_429(crm_sandbox):
    company = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=True, daily_tokens=30))

    answers = [company("GET", PERSONS) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[2].headers["x-daily-ratelimit-token-remaining"] == "0"
    assert answers[3].json()["error"] == "Daily API token budget exceeded"
    assert answers[3].headers["x-daily-ratelimit-token-remaining"] == "0"
    # A cheaper call does not fit either: the budget is spent.
    assert company("GET", f"{PERSONS}/1").status_code == 429


def test_the_burst_limit_answers_429_and_the_edge_blocks_a_client_that_keeps_sending(crm_sandbox):
    company = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=True, plan="lite"))

    answers = [company("GET", f"{PERSONS}/1") for _ in range(21)]

    assert [a.status_code for a in answers[:20]] == [404] * 20  # counted, answered: no such person
    assert answers[0].headers["x-ratelimit-limit"] == "20"
    assert answers[0].headers["x-ratelimit-remaining"] == "19"
    refused = answers[20]
    assert refused.status_code == 429
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) >= 1
    assert refused.json()["success"] is False

    statuses = [company("GET", f"{PERSONS}/1").status_code for _ in range(45)]
    assert 403 in statuses
    blocked = company("GET", f"{PERSONS}/1")
    assert blocked.status_code == 403
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert "blocked" in blocked.text


def test_search_has_its_own_burst_limit_of_10(crm_sandbox):
    company = Company(crm_sandbox.sandbox.account_create("pipedrive", rate_limits=True, plan="premium"))

    answers = [company("GET", f"{PERSONS}/search", params={"term": "ada"}) for _ in range(11)]

    assert [a.status_code for a in answers] == [200] * 10 + [429]
    assert company("GET", PERSONS).status_code == 200


def test_webhooks_list_create_delete(company):
    body = {
        "subscription_url": "http://127.0.0.1:9/hook",
        "event_action": "*",
        "event_object": "person",
        "name": "sync",
        "http_auth_user": "u",
        "http_auth_password": "p",
    }
    created = company("POST", "/v1/webhooks", json=body)
    assert created.status_code == 201
    hook = created.json()["data"]
    assert hook["version"] == "2.0"
    assert hook["subscription_url"] == body["subscription_url"]

    assert [h["id"] for h in company("GET", "/v1/webhooks").json()["data"]] == [hook["id"]]
    assert company("DELETE", f"/v1/webhooks/{hook['id']}").status_code == 200
    assert company("GET", "/v1/webhooks").json()["data"] == []
    assert company("DELETE", f"/v1/webhooks/{hook['id']}").status_code == 404
    assert company("POST", "/v1/webhooks", json={**body, "event_action": "updated"}).status_code == 400
    assert company("POST", "/v1/webhooks", json={"name": "x"}).status_code == 400


def test_oauth_token_with_basic_client_auth_answers_api_domain(crm_sandbox):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=False)
    redirect = "http://localhost:8000/oauth/callback/"
    authorize = requests.get(
        f"{account.base_url}/oauth/authorize",
        params={"client_id": account.client_id, "redirect_uri": redirect, "state": "xyz"},
        allow_redirects=False,
        timeout=10,
    )
    assert authorize.status_code == 302
    code = re.search(r"code=([^&]+)", authorize.headers["Location"]).group(1)
    assert "state=xyz" in authorize.headers["Location"]

    basic = base64.b64encode(f"{account.client_id}:{account.client_secret}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    unauthorized = requests.post(f"{account.base_url}/oauth/token", data=form, timeout=10)
    assert unauthorized.status_code == 401
    answer = requests.post(
        f"{account.base_url}/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"}, timeout=10
    )
    assert answer.status_code == 200
    tokens = answer.json()
    assert tokens["api_domain"] == account.base_url
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3599  # Pipedrive's tokens live an hour (HubSpot's 30 minutes)

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert requests.get(tokens["api_domain"] + PERSONS, headers=bearer, timeout=10).status_code == 200
    refreshed = requests.post(
        f"{account.base_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != tokens["access_token"]


def test_oauth_tokens_get_the_higher_oauth_burst_limit(crm_sandbox):
    account = crm_sandbox.sandbox.account_create("pipedrive", rate_limits=True, plan="lite")
    redirect = "http://localhost/cb"
    authorize = requests.get(
        f"{account.base_url}/oauth/authorize",
        params={"client_id": account.client_id, "redirect_uri": redirect},
        allow_redirects=False,
        timeout=10,
    )
    code = re.search(r"code=([^&]+)", authorize.headers["Location"]).group(1)
    basic = base64.b64encode(f"{account.client_id}:{account.client_secret}".encode()).decode()
    tokens = requests.post(
        f"{account.base_url}/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    ).json()

    answer = requests.get(
        account.base_url + PERSONS, headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=10
    )

    assert answer.headers["x-ratelimit-limit"] == "80"


def test_users_me_answers_the_company_id(crm_sandbox):
    company = Company(crm_sandbox.sandbox.account_create("pipedrive", account_id="8087566", rate_limits=False))

    for path in ("/v1/users/me", "/api/v1/users/me"):
        answer = company("GET", path)
        assert answer.status_code == 200
        assert answer.json()["data"]["company_id"] == 8087566
