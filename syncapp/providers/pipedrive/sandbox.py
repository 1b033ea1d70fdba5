"""A Pipedrive company in the CRM sandbox: API v2 persons, v1 person fields and webhooks, OAuth.

Faithful where sync depends on it (../shared/reference/pipedrive.md): persons with several emails
and phones, ``name`` on write split into first and last name, custom fields by generated 40-character
key, ``update_time`` in whole seconds with an inclusive ``updated_since``, cursor paging (500 at most,
100 ids at most), soft deletes, merges, the burst limits per token over two seconds, the search
limit, token costs (``x-token-cost``) against the company's daily budget, the edge's HTML 403 for
clients that ignore 429s, and webhooks v2 with HTTP Basic credentials and ``meta.attempt``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs

from syncapp.sandbox.accounts import RollingWindow, SandboxAccount
from syncapp.sandbox.http import ApiError, Request, Response, Route

PERSONS = "/api/v2/persons"
PAGE_LIMIT = 500
IDS_LIMIT = 100
BURST_WINDOW_MS = 2000
SEARCH_BURST = 10
BASE_DAILY_TOKENS = 30_000
# Burst requests per two seconds (API token, OAuth) and the daily budget multiplier, by plan.
PLANS = {
    "lite": (20, 80, 1),
    "growth": (40, 160, 2),
    "premium": (100, 400, 5),
    "ultimate": (120, 480, 7),
}
EDGE_BLOCK_SECONDS = 60  # the edge blocks a client that keeps sending after 429s for this long
EDGE_PATIENCE = 2  # 429s in a row, in multiples of the burst limit, before the edge steps in
EDGE_PAGE = (
    "<html><head><title>Attention Required! | Cloudflare</title></head><body>Sorry, you have been blocked</body></html>"
)
CONTACT_SYNC_FIELDS = frozenset({"job_title", "notes", "birthday", "im", "postal_address"})
WRITABLE = CONTACT_SYNC_FIELDS | {
    "name", "owner_id", "org_id", "add_time", "emails", "phones",
    "visible_to", "label_ids", "marketing_status", "custom_fields",
}  # fmt: skip
BUILT_IN_FIELDS = [
    ("name", "Name", "varchar"),
    ("first_name", "First name", "varchar"),
    ("last_name", "Last name", "varchar"),
    ("email", "Email", "varchar"),
    ("phone", "Phone", "phone"),
    ("owner_id", "Owner", "user"),
    ("org_id", "Organization", "org"),
    ("label_ids", "Labels", "set"),
    ("add_time", "Person created", "date"),
    ("update_time", "Update time", "date"),
    ("visible_to", "Visible to", "visible_to"),
]
VALID_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str, name: str) -> float:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _error(400, f"{name} must be an RFC 3339 date-time, e.g. 2025-01-01T10:20:00Z.") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _error(
    status: int, message: str, info: str = "Please check developers.pipedrive.com for more information."
) -> ApiError:
    return ApiError(
        status,
        {
            "success": False,
            "error": message,
            "error_info": info,
            "data": None,
            "additional_data": None,
            "errorCode": status,
        },
    )


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": position}).encode()).decode()


def _position(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise _error(400, "The cursor is not valid.") from None


class PipedriveSandboxAccount(SandboxAccount):
    provider = "pipedrive"
    webhook_batch_size = 1
    webhook_timeout = 10.0
    public_handlers = frozenset({"oauth_token", "oauth_authorize"})
    routes = [
        Route("GET", PERSONS, "persons_list", cost=10),
        Route("POST", PERSONS, "person_create", cost=5),
        Route("GET", f"{PERSONS}/search", "persons_search", cost=20),
        Route("GET", PERSONS + "/{person_id}", "person_get", cost=1),
        Route("PATCH", PERSONS + "/{person_id}", "person_update", cost=5),
        Route("DELETE", PERSONS + "/{person_id}", "person_delete", cost=3),
        Route("GET", "/v1/personFields", "person_fields", cost=20),
        Route("POST", "/v1/personFields", "person_field_create", cost=10),
        Route("GET", "/v1/webhooks", "webhooks_list", cost=10),
        Route("POST", "/v1/webhooks", "webhook_create", cost=10),
        Route("DELETE", "/v1/webhooks/{webhook_id}", "webhook_delete", cost=6),
        Route("GET", "/v1/users/me", "users_me", cost=2),
        Route("GET", "/api/v1/users/me", "users_me", cost=2),
        Route("POST", "/oauth/token", "oauth_token"),
        Route("GET", "/oauth/authorize", "oauth_authorize"),
    ]

    def configure(self, *, plan: str = "lite", seats: int = 1, contact_sync: bool = True, daily_tokens: int = 0):
        if plan not in PLANS:
            raise ValueError(f"Unknown Pipedrive plan {plan!r}; one of {', '.join(PLANS)}")
        self.plan, self.seats, self.contact_sync = plan, seats, contact_sync
        token_burst, oauth_burst, multiplier = PLANS[plan]
        self.windows: dict[str, RollingWindow] = {}  # burst limits are per token
        self.bursts = {"token": token_burst, "oauth": oauth_burst}
        self.daily_budget = daily_tokens or BASE_DAILY_TOKENS * multiplier * seats
        self.tokens_used = 0
        self.refused_in_a_row = 0
        self.edge_blocked_until = 0.0
        self.persons: dict[int, dict] = {}
        self.fields: list[dict] = [
            self._field(i, key, name, kind, custom=False) for i, (key, name, kind) in enumerate(BUILT_IN_FIELDS, 1)
        ]
        if contact_sync:
            self.fields.append(self._field(len(self.fields) + 1, "job_title", "Job title", "varchar", custom=False))
        self.hooks: dict[int, dict] = {}
        self.merged_into: dict[int, int] = {}
        self.next_person_id = 1
        self.next_hook_id = 1

    @staticmethod
    def _field(field_id: int, key: str, name: str, kind: str, *, custom: bool) -> dict:
        now = _stamp(time.time())
        return {
            "id": field_id,
            "key": key,
            "name": name,
            "field_type": kind,
            "add_time": now,
            "update_time": now,
            "active_flag": True,
            "edit_flag": custom,
            "bulk_edit_allowed": True,
            "searchable_flag": custom,
            "mandatory_flag": key == "name",
            "options": None,
            "is_subfield": False,
        }

    # Plumbing ------------------------------------------------------------------------------

    def _token(self, request: Request) -> str:
        return request.headers.get("x-api-token") or self.bearer(request)

    def authenticate(self, request: Request) -> bool:
        if self._token(request) not in self.tokens:
            raise _error(401, "unauthorized access", "Please check developers.pipedrive.com")
        return self._token(request) in self.oauth_tokens

    def spend(self, route: Route, request: Request, *, oauth: bool) -> dict[str, str]:
        if not self.rate_limits or route.handler in self.public_handlers:
            return {}
        now = time.monotonic()
        if now < self.edge_blocked_until:
            raise ApiError(403, EDGE_PAGE)
        key = ("search:" if route.handler == "persons_search" else "") + self._token(request)
        limit = SEARCH_BURST if route.handler == "persons_search" else self.bursts["oauth" if oauth else "token"]
        window = self.windows.setdefault(key, RollingWindow(limit, BURST_WINDOW_MS))
        if self.daily_budget - self.tokens_used < route.cost:
            raise ApiError(
                429,
                _error(429, "Daily API token budget exceeded", "Your company's daily API token budget is spent.").body,
                self._budget_headers(route),
            )
        if not window.take(now):
            self.refused_in_a_row += 1
            if self.refused_in_a_row > EDGE_PATIENCE * limit:
                self.edge_blocked_until = now + EDGE_BLOCK_SECONDS
                self.refused_in_a_row = 0
            raise self.rate_limited(request, window=window)
        self.refused_in_a_row = 0
        self.tokens_used += route.cost
        return {
            "x-ratelimit-limit": str(window.limit),
            "x-ratelimit-remaining": str(window.remaining(now)),
            "x-ratelimit-reset": str(max(round(window.reset_seconds(now)), 1)),
            **self._budget_headers(route),
        }

    def _budget_headers(self, route: Route) -> dict[str, str]:
        return {
            "x-token-cost": str(route.cost),
            "x-daily-ratelimit-token-limit": str(self.daily_budget),
            "x-daily-ratelimit-token-remaining": str(max(self.daily_budget - self.tokens_used, 0)),
        }

    def rate_limited(self, request: Request, window: RollingWindow | None = None) -> ApiError:
        reset = max(round(window.reset_seconds()), 1) if window else 2
        headers = {
            "x-ratelimit-limit": str(window.limit if window else 0),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
        }
        return ApiError(
            429, _error(429, "Request over limit", "Slow down: the burst limit is per two seconds.").body, headers
        )

    def not_found(self, request: Request) -> ApiError:
        return _error(404, "Unknown method .")

    def _person(self, person_id, *, live: bool = True) -> dict:
        try:
            person = self.persons.get(int(person_id))
        except (TypeError, ValueError):
            person = None
        if person is None or (live and person["is_deleted"]):
            raise _error(404, "Person not found", "Object was not found.")
        return person

    def _custom_keys(self) -> set[str]:
        return {field["key"] for field in self.fields if field["edit_flag"]}

    def _typed(self, person: dict) -> dict:
        """A person as webhooks v2 show it: custom fields as typed objects."""
        kinds = {field["key"]: field["field_type"] for field in self.fields}
        custom = {key: ({"type": kinds.get(key, "varchar"), "value": value} if value is not None else None)
                  for key, value in person["custom_fields"].items()}  # fmt: skip
        return {**person, "custom_fields": custom}

    # Writes ---------------------------------------------------------------------------------

    def _entries(self, value, name: str) -> list[dict]:
        if not isinstance(value, list) or not all(isinstance(entry, dict) and "value" in entry for entry in value):
            raise _error(400, f"{name} must be a list of objects with value, primary and label.")
        entries = [
            {"value": str(e["value"]), "primary": bool(e.get("primary")), "label": e.get("label") or "work"}
            for e in value
        ]
        if entries and not any(entry["primary"] for entry in entries):
            entries[0]["primary"] = True
        if sum(entry["primary"] for entry in entries) > 1:
            raise _error(400, f"Only one of {name} can be primary.")
        return entries

    def _validate(self, body: dict, *, creating: bool) -> dict:
        if not isinstance(body, dict):
            raise _error(400, "The body must be a JSON object.")
        unknown = set(body) - WRITABLE
        if unknown:
            raise _error(400, f"Parameter '{sorted(unknown)[0]}' is not allowed for this request.")
        if not self.contact_sync and set(body) & CONTACT_SYNC_FIELDS:
            raise _error(403, "You do not have permission to use these fields: enable contact sync.")
        if creating and not str(body.get("name") or "").strip():
            raise _error(400, "'name' is a required field.")
        # The v2 schema types job_title as a string: null is not a way to clear it.
        if "job_title" in body and not isinstance(body["job_title"], str):
            raise _error(400, "'job_title' must be a string.")
        changes = dict(body)
        if "emails" in body:
            changes["emails"] = self._entries(body["emails"], "emails")
            bad = [e["value"] for e in changes["emails"] if not VALID_EMAIL.match(e["value"])]
            if bad:
                raise _error(400, f"Invalid email address: {bad[0]}")
        if "phones" in body:
            changes["phones"] = self._entries(body["phones"], "phones")
        custom = body.get("custom_fields")
        if custom is not None:
            if not isinstance(custom, dict):
                raise _error(400, "custom_fields must be an object.")
            missing = set(custom) - self._custom_keys()
            if missing:
                raise _error(400, f"Custom field '{sorted(missing)[0]}' does not exist.")
        return changes

    def _apply(self, person: dict, changes: dict) -> dict:
        """Apply validated changes; return the previous values of the fields that changed."""
        previous = {}
        for name, value in changes.items():
            if name == "custom_fields":
                for key, custom_value in value.items():
                    if person["custom_fields"].get(key) != custom_value:
                        previous.setdefault("custom_fields", {})[key] = person["custom_fields"].get(key)
                        person["custom_fields"][key] = custom_value
                continue
            if name == "name":
                value = str(value).strip()
                first, _, last = value.partition(" ")
                for key, new in (("name", value), ("first_name", first), ("last_name", last or None)):
                    if person.get(key) != new:
                        previous[key] = person.get(key)
                        person[key] = new
                continue
            if person.get(name) != value:
                previous[name] = person.get(name)
                person[name] = value
        if previous:
            person["update_time"] = _stamp(time.time())
        return previous

    def _create(self, changes: dict, *, source: str, notify: bool = True) -> dict:
        now = _stamp(time.time())
        person = {
            "id": self.next_person_id,
            "name": "",
            "first_name": "",
            "last_name": None,
            "owner_id": 1,
            "org_id": None,
            "add_time": now,
            "update_time": now,
            "emails": [],
            "phones": [],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "custom_fields": dict.fromkeys(sorted(self._custom_keys())),
        }
        if self.contact_sync:
            person["job_title"] = None
        self.next_person_id += 1
        self._apply(person, changes)
        person["update_time"] = now
        self.persons[person["id"]] = person
        if notify:
            self._notify("create", person, source=source, previous=None)
        return person

    def _update(self, person: dict, changes: dict, *, source: str, extra: dict | None = None) -> dict:
        previous = self._apply(person, changes)
        if previous or extra:
            self._notify("change", person, source=source, previous=previous, extra=extra)
        return person

    def _delete(self, person: dict, *, source: str, extra: dict | None = None) -> None:
        if person["is_deleted"]:
            return
        before = dict(person)  # a delete's previous is the last state before it
        person["is_deleted"] = True
        person["update_time"] = _stamp(time.time())
        self._notify("delete", person, source=source, previous=before, extra=extra)

    def _notify(
        self, action: str, person: dict, *, source: str, previous: dict | None, extra: dict | None = None
    ) -> None:
        data = None if action == "delete" else self._typed(person)
        if data is not None and extra:
            data.update(extra)
        before = previous
        if action == "delete":
            before = {**self._typed(previous), **(extra or {})}
        payload = {
            "meta": {
                "action": action,
                "entity": "person",
                "company_id": self.account_id,
                "correlation_id": str(uuid.uuid4()),
                "entity_id": str(person["id"]),
                "id": str(uuid.uuid4()),
                "is_bulk_edit": False,
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "type": "general",
                "user_id": "1",
                "version": "2.0",
                "change_source": source,
                "host": "sandbox.pipedrive.com",
                "permitted_user_ids": ["1"],
            },
            "data": data,
            "previous": before,
        }
        for hook in self.hooks.values():
            if hook["event_object"] in ("person", "*") and hook["event_action"] in (action, "*"):
                self.emit(str(hook["id"]), payload)

    def webhook_request(self, destination: str, payloads: list[dict], attempt: int):
        hook = self.hooks.get(int(destination))
        if hook is None:
            return None
        (payload,) = payloads
        meta = {**payload["meta"], "attempt": attempt + 1, "webhook_id": str(hook["id"]), "webhook_owner_id": "1"}
        body = json.dumps({**payload, "meta": meta}).encode()
        headers = {"Content-Type": "application/json"}
        if hook["http_auth_user"] or hook["http_auth_password"]:
            pair = f"{hook['http_auth_user'] or ''}:{hook['http_auth_password'] or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return hook["subscription_url"], headers, body

    # Persons (API v2) --------------------------------------------------------------------------

    def _int_arg(self, request: Request, name: str, default: int, maximum: int) -> int:
        try:
            value = int(request.arg(name, str(default)))
        except ValueError:
            raise _error(400, f"{name} must be an integer.") from None
        if not 1 <= value <= maximum:
            raise _error(400, f"{name} must be between 1 and {maximum}.")
        return value

    def persons_list(self, request: Request) -> Response:
        limit = self._int_arg(request, "limit", 100, PAGE_LIMIT)
        people = [person for person in self.persons.values() if not person["is_deleted"]]
        if request.arg("ids"):
            try:
                ids = {int(part) for part in request.arg("ids").split(",") if part.strip()}
            except ValueError:
                raise _error(400, "ids must be a comma-separated list of integers.") from None
            if len(ids) > IDS_LIMIT:
                raise _error(400, f"ids takes at most {IDS_LIMIT} ids.")
            people = [person for person in people if person["id"] in ids]
        if request.arg("updated_since"):
            since = _parse_time(request.arg("updated_since"), "updated_since")
            people = [p for p in people if _parse_time(p["update_time"], "update_time") >= since]
        if request.arg("updated_until"):
            until = _parse_time(request.arg("updated_until"), "updated_until")
            people = [p for p in people if _parse_time(p["update_time"], "update_time") < until]
        sort_by = request.arg("sort_by", "id")
        if sort_by not in ("id", "update_time", "add_time"):
            raise _error(400, "sort_by must be one of id, update_time, add_time.")
        direction = request.arg("sort_direction", "asc")
        if direction not in ("asc", "desc"):
            raise _error(400, "sort_direction must be asc or desc.")
        if sort_by != "id" or direction != "asc":
            people.sort(key=lambda person: (person[sort_by], person["id"]), reverse=direction == "desc")
        start = _position(request.arg("cursor"))
        page = people[start : start + limit]
        more = start + limit < len(people)
        return Response.json(
            200,
            {
                "success": True,
                "data": page,
                "additional_data": {"next_cursor": _cursor(start + limit) if more else None},
            },
        )

    def person_get(self, request: Request, person_id: str) -> Response:
        return Response.json(200, {"success": True, "data": self._person(person_id, live=False)})

    def person_create(self, request: Request) -> Response:
        person = self._create(self._validate(request.json(), creating=True), source="api")
        return Response.json(201, {"success": True, "data": person})

    def person_update(self, request: Request, person_id: str) -> Response:
        person = self._person(person_id)
        self._update(person, self._validate(request.json(), creating=False), source="api")
        return Response.json(200, {"success": True, "data": person})

    def person_delete(self, request: Request, person_id: str) -> Response:
        person = self._person(person_id)
        self._delete(person, source="api")
        return Response.json(200, {"success": True, "data": {"id": person["id"]}})

    def persons_search(self, request: Request) -> Response:
        term = (request.arg("term") or "").strip()
        exact = request.arg("exact_match", "false") == "true"
        if len(term) < (1 if exact else 2):
            raise _error(400, "term must be at least 2 characters (1 with exact_match).")
        fields = set((request.arg("fields") or "email,name,phone").split(","))
        limit = self._int_arg(request, "limit", 100, PAGE_LIMIT)
        wanted = term.lower()

        def values(person):
            found = []
            if "email" in fields:
                found += [entry["value"] for entry in person["emails"]]
            if "phone" in fields:
                found += [entry["value"] for entry in person["phones"]]
            if "name" in fields:
                found.append(person["name"] or "")
            return [value.lower() for value in found]

        matches = [
            person
            for person in self.persons.values()
            if not person["is_deleted"]
            and any(value == wanted if exact else wanted in value for value in values(person))
        ]
        start = _position(request.arg("cursor"))
        page = matches[start : start + limit]
        items = [
            {
                "result_score": 1.0,
                "item": {
                    "id": person["id"],
                    "type": "person",
                    "name": person["name"],
                    "phones": [entry["value"] for entry in person["phones"]],
                    "emails": [entry["value"] for entry in person["emails"]],
                    "visible_to": person["visible_to"],
                    "owner": {"id": person["owner_id"]},
                    "organization": None,
                    "custom_fields": [],
                    "notes": [],
                },
            }
            for person in page
        ]
        more = start + limit < len(matches)
        return Response.json(
            200,
            {
                "success": True,
                "data": {"items": items},
                "additional_data": {"next_cursor": _cursor(start + limit) if more else None},
            },
        )

    # Person fields and webhooks (API v1) ----------------------------------------------------------

    def person_fields(self, request: Request) -> Response:
        try:
            start = max(int(request.arg("start", "0") or 0), 0)
        except ValueError:
            raise _error(400, "start must be an integer.") from None
        limit = self._int_arg(request, "limit", 100, PAGE_LIMIT)
        page = self.fields[start : start + limit]
        more = start + limit < len(self.fields)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return Response.json(200, {"success": True, "data": page, "additional_data": {"pagination": pagination}})

    def person_field_create(self, request: Request) -> Response:
        body = request.json()
        name, kind = str(body.get("name") or "").strip(), body.get("field_type")
        if not name or not kind:
            raise _error(400, "name and field_type are required.")
        field = self._field(len(self.fields) + 1, secrets.token_hex(20), name, kind, custom=True)
        self.fields.append(field)
        for person in self.persons.values():
            person["custom_fields"].setdefault(field["key"], None)
        return Response.json(201, {"success": True, "data": field})

    def webhooks_list(self, request: Request) -> Response:
        return Response.json(200, {"success": True, "status": "ok", "data": list(self.hooks.values())})

    def webhook_create(self, request: Request) -> Response:
        body = request.json()
        missing = [name for name in ("subscription_url", "event_action", "event_object", "name") if not body.get(name)]
        if missing:
            raise _error(400, f"{', '.join(missing)} is required.")
        if body["event_action"] not in ("create", "change", "delete", "*"):
            raise _error(400, "event_action must be one of create, change, delete, *.")
        if not str(body["subscription_url"]).startswith(("http://", "https://")):
            raise _error(400, "subscription_url must be a full, valid URL.")
        hook = {
            "id": self.next_hook_id,
            "company_id": self.account_id,
            "owner_id": 1,
            "user_id": 1,
            "event_action": body["event_action"],
            "event_object": body["event_object"],
            "subscription_url": body["subscription_url"],
            "version": body.get("version") or "2.0",
            "is_active": 1,
            "add_time": _stamp(time.time()),
            "remove_time": None,
            "type": "general",
            "http_auth_user": body.get("http_auth_user"),
            "http_auth_password": body.get("http_auth_password"),
            "remove_reason": None,
            "last_delivery_time": None,
            "last_http_status": None,
            "admin_id": 1,
            "name": body["name"],
        }
        self.next_hook_id += 1
        self.hooks[hook["id"]] = hook
        return Response.json(201, {"success": True, "status": "ok", "data": hook})

    def webhook_delete(self, request: Request, webhook_id: str) -> Response:
        try:
            hook = self.hooks.pop(int(webhook_id))
        except (KeyError, ValueError):
            raise _error(404, "Webhook not found") from None
        return Response.json(200, {"success": True, "status": "ok", "data": {"id": hook["id"]}})

    def users_me(self, request: Request) -> Response:
        company = int(self.account_id) if self.account_id.isdigit() else self.account_id
        return Response.json(
            200,
            {
                "success": True,
                "data": {
                    "id": 1,
                    "name": "Sandbox Admin",
                    "email": "admin@example.com",
                    "company_id": company,
                    "company_domain": f"sandbox-{self.account_id}",
                    "is_admin": 1,
                },
            },
        )

    def oauth_token(self, request: Request) -> Response:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            client_id = client_secret = ""
        if scheme.lower() != "basic" or (client_id, client_secret) != (self.client_id, self.client_secret):
            raise ApiError(401, {"success": False, "error": "invalid_client", "message": "Invalid client credentials."})
        form = {name: values[-1] for name, values in parse_qs(request.body.decode()).items()}
        grant = self.oauth_grant(form)
        scope = "base,contacts:full,admin"
        answer = {**grant, "token_type": "Bearer", "expires_in": 3599, "scope": scope, "api_domain": self.base_url}
        return Response.json(200, answer)

    # The control API ------------------------------------------------------------------------------

    def _pronouns_key(self) -> str:
        for field in self.fields:
            if field["edit_flag"] and field["name"].strip().lower() == "pronouns":
                return field["key"]
        return ""

    def _changes(self, values: dict[str, str], person: dict | None) -> dict:
        """Universal contact values as a v2 write, as a Pipedrive user's edit would change the person."""
        changes: dict = {}
        if "first_name" in values or "last_name" in values or person is None:
            first = values.get("first_name", (person or {}).get("first_name") or "")
            last = values.get("last_name", (person or {}).get("last_name") or "")
            changes["name"] = " ".join(part for part in (first, last) if part) or values.get("email", "") or "(no name)"
        for name in ("email", "phone"):
            if name in values:
                others = [dict(e, primary=False) for e in (person or {}).get(f"{name}s", []) if not e["primary"]]
                changes[f"{name}s"] = (
                    [{"value": values[name], "primary": True, "label": "work"}] if values[name] else []
                ) + others
        if "job_title" in values:
            if not self.contact_sync:
                raise ApiError(400, {"message": "This company has no job_title field (contact sync is off)."})
            changes["job_title"] = values["job_title"] or None
        if "pronouns" in values:
            key = self._pronouns_key()
            if not key:
                raise ApiError(
                    400, {"message": "This company has no Pronouns person field yet (run the pronouns setup)."}
                )
            changes["custom_fields"] = {key: values["pronouns"] or None}
        return changes

    def _control_record(self, person: dict) -> dict:
        key = self._pronouns_key()
        primary = {
            name: next((e["value"] for e in person[f"{name}s"] if e["primary"]), "") for name in ("email", "phone")
        }
        return {
            "id": str(person["id"]),
            "deleted": person["is_deleted"],
            "updated": person["update_time"],
            "merged_into": self.merged_into.get(person["id"]),
            "email": primary["email"],
            "first_name": person.get("first_name") or "",
            "last_name": person.get("last_name") or "",
            "phone": primary["phone"],
            "job_title": person.get("job_title") or "",
            "pronouns": (person["custom_fields"].get(key) or "") if key else "",
            "raw": person,
        }

    def control_list(self, *, include_deleted: bool = True) -> list[dict]:
        return [self._control_record(p) for p in self.persons.values() if include_deleted or not p["is_deleted"]]

    def control_create(self, values: dict, *, notify: bool = True) -> dict:
        return self._control_record(self._create(self._changes(values, None), source="app", notify=notify))

    def control_backdate(self, record_ids: list[str], seconds: float) -> None:
        """Stamp loaded persons as added and last updated ``seconds`` ago (old data, as real companies hold)."""
        stamp = _stamp(time.time() - seconds)
        for record_id in record_ids:
            self.persons[int(record_id)].update(add_time=stamp, update_time=stamp)

    def control_update(self, record_id: str, values: dict) -> dict:
        person = self._person(record_id)
        return self._control_record(self._update(person, self._changes(values, person), source="app"))

    def control_delete(self, record_id: str) -> None:
        self._delete(self._person(record_id), source="app")

    def control_restore(self, record_id: str) -> dict:
        person = self._person(record_id, live=False)
        if person["is_deleted"]:
            person["is_deleted"] = False
            person["update_time"] = _stamp(time.time())
            self._notify("change", person, source="app", previous={"is_deleted": True})
        return self._control_record(person)

    def control_merge(self, primary_id: str, merged_id: str) -> dict:
        primary, merged = self._person(primary_id), self._person(merged_id)
        changes: dict = {}
        for name in ("emails", "phones"):
            known = {entry["value"].lower() for entry in primary[name]}
            extra = [dict(e, primary=False) for e in merged[name] if e["value"].lower() not in known]
            if extra:
                changes[name] = primary[name] + extra
        if not primary.get("job_title") and merged.get("job_title"):
            changes["job_title"] = merged["job_title"]
        custom = {
            k: v
            for k, v in merged["custom_fields"].items()
            if v is not None and primary["custom_fields"].get(k) is None
        }
        if custom:
            changes["custom_fields"] = custom
        self.merged_into[merged["id"]] = primary["id"]
        self._delete(merged, source="app", extra={"merged_to_id": primary["id"]})
        self._update(primary, changes, source="app", extra={"merged_from_id": merged["id"]})
        return self._control_record(primary)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "plan": self.plan,
            "records": sum(1 for p in self.persons.values() if not p["is_deleted"]),
            "pronouns_field_key": self._pronouns_key(),
            "registered_webhooks": [
                {k: hook[k] for k in ("id", "event_action", "subscription_url")} for hook in self.hooks.values()
            ],
            "limits": {"burst": self.bursts, "daily_tokens": self.daily_budget, "tokens_used": self.tokens_used},
            # Persons are written one call each: Pipedrive's v2 API has no batch person writes.
            "api_profile": {
                "list_page_limit": PAGE_LIMIT,
                "write_batch_limit": 1,
                "requests_per_second": self.bursts["token"] * 1000 / BURST_WINDOW_MS,
                "window_ms": BURST_WINDOW_MS,  # the window the burst limit is counted over
            },
        }
