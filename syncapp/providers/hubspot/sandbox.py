"""A HubSpot portal in the CRM sandbox: contacts API v3, properties, search, OAuth and signed webhooks.

Faithful where sync depends on it (../shared/reference/hubspot.md): string property values,
``createdAt``/``updatedAt``/``lastmodifieddate``, archived records, merges that keep answering for the
merged-away id, batches of at most 100 (400 above), 207 for invalid items, 409 for an existing email,
400 for unknown properties, the search API's 200-per-page and 10,000-result caps, and the
ten-secondly, daily and search rate limits with HubSpot's headers and 429 bodies.
"""

from __future__ import annotations

import bisect
import json
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs

from syncapp.sandbox.accounts import RollingWindow, SandboxAccount
from syncapp.sandbox.http import ApiError, Request, Response, Route

from .mapping import PROPERTY_FOR_FIELD
from .webhooks import signature_uri, signature_v3

CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"
BATCH_LIMIT = 100
LIST_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
# Requests per ten seconds and per day, by the private app's account tier; OAuth apps get 110 per ten seconds.
TIERS = {
    "free": (100, 250_000),
    "starter": (100, 250_000),
    "professional": (190, 625_000),
    "enterprise": (190, 1_000_000),
}
OAUTH_TEN_SECONDLY = 110
SEARCH_PER_SECOND = 5
WINDOW_MS = 10_000
READ_ONLY = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_merged_object_ids"})
DATE_PROPERTIES = frozenset({"createdate", "lastmodifieddate"})
ALWAYS_RETURNED = ("createdate", "hs_object_id", "lastmodifieddate")
DEFAULT_RETURNED = ("email", "firstname", "lastname", *ALWAYS_RETURNED)
SUBSCRIPTION_IDS = {
    "contact.creation": 101,
    "contact.propertyChange": 102,
    "contact.deletion": 103,
    "contact.restore": 104,
    "contact.merge": 105,
}
VALID_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _definition(name: str, label: str, type_: str = "string", field_type: str = "text") -> dict:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": "contactinformation",
        "description": "",
        "hubspotDefined": True,
        "modificationMetadata": {"archivable": False, "readOnlyDefinition": True, "readOnlyValue": name in READ_ONLY},
    }


DEFAULT_PROPERTIES = [
    _definition("email", "Email"),
    _definition("firstname", "First Name"),
    _definition("lastname", "Last Name"),
    _definition("phone", "Phone Number", "string", "phonenumber"),
    _definition("jobtitle", "Job Title"),
    _definition("company", "Company Name"),
    _definition("website", "Website URL"),
    _definition("lifecyclestage", "Lifecycle Stage", "enumeration", "radio"),
    _definition("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox"),
    _definition("createdate", "Create Date", "datetime", "date"),
    _definition("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    _definition("hs_object_id", "Record ID", "number", "number"),
    _definition("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox"),
]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _ms(value) -> int | None:
    """A date filter value or a date property as epoch milliseconds (HubSpot takes both forms)."""
    if value in (None, ""):
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _error(status: int, message: str, category: str, **extra) -> ApiError:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return ApiError(status, {**body, **extra})


def _whole_number(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _error(400, f"{name} must be a whole number.", "VALIDATION_ERROR") from None


class HubspotSandboxAccount(SandboxAccount):
    provider = "hubspot"
    webhook_batch_size = 100
    webhook_timeout = 5.0
    default_webhook_path = "/webhooks/hubspot/"
    public_handlers = frozenset({"oauth_token", "oauth_token_info", "oauth_authorize"})
    routes = [
        Route("GET", CONTACTS, "contacts_list"),
        Route("POST", CONTACTS, "contact_create"),
        Route("POST", f"{CONTACTS}/search", "search"),
        Route("POST", f"{CONTACTS}/merge", "contacts_merge"),
        Route("POST", f"{CONTACTS}/batch/read", "batch_read"),
        Route("POST", f"{CONTACTS}/batch/create", "batch_create"),
        Route("POST", f"{CONTACTS}/batch/update", "batch_update"),
        Route("POST", f"{CONTACTS}/batch/archive", "batch_archive"),
        Route("GET", CONTACTS + "/{contact_id}", "contact_get"),
        Route("PATCH", CONTACTS + "/{contact_id}", "contact_update"),
        Route("DELETE", CONTACTS + "/{contact_id}", "contact_archive"),
        Route("GET", PROPERTIES, "properties_list"),
        Route("POST", PROPERTIES, "property_create"),
        Route("GET", PROPERTIES + "/{name}", "property_get"),
        Route("POST", "/oauth/v1/token", "oauth_token"),
        Route("GET", "/oauth/v1/access-tokens/{token}", "oauth_token_info"),
        Route("GET", "/account-info/v3/details", "account_details"),
        Route("GET", "/oauth/authorize", "oauth_authorize"),
    ]

    def configure(self, *, tier: str = "free", search_lag_ms: int = 0, missing_scopes=(), app_id: int = 1160452):
        if tier not in TIERS:
            raise ValueError(f"Unknown HubSpot tier {tier!r}; one of {', '.join(TIERS)}")
        self.tier = tier
        ten_secondly, self.daily_limit = TIERS[tier]
        self.window = RollingWindow(ten_secondly, WINDOW_MS)
        self.oauth_window = RollingWindow(OAUTH_TEN_SECONDLY, WINDOW_MS)
        self.search_window = RollingWindow(SEARCH_PER_SECOND, 1000)
        self.daily_used = 0
        self.search_lag_ms = search_lag_ms  # search results appear "after a few moments"
        self.missing_scopes = list(missing_scopes)
        self.app_id = app_id
        self.properties = {definition["name"]: dict(definition) for definition in DEFAULT_PROPERTIES}
        self.records: dict[str, dict] = {}
        self.order: list[int] = []  # every id, ascending: list pages start with a bisect
        self.by_email: dict[str, str] = {}  # live records' primary and additional emails
        self.merged_into: dict[str, str] = {}
        self.next_id = 101
        self.last_ms = 0
        self.event_ids = iter(range(1, 10**12))

    # Plumbing --------------------------------------------------------------------------

    def authenticate(self, request: Request) -> bool:
        token = self.bearer(request)
        if token not in self.tokens:
            raise _error(
                401,
                "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
                "INVALID_AUTHENTICATION",
            )
        return token in self.oauth_tokens

    def spend(self, route: Route, request: Request, *, oauth: bool) -> dict[str, str]:
        if not self.rate_limits or route.handler in self.public_handlers:
            return {}
        if route.handler == "search":
            # The search API has its own per-second limit and sends no rate-limit headers.
            if not self.search_window.take():
                raise _error(429, "You have reached your secondly limit.", "RATE_LIMITS", errorType="RATE_LIMIT")
            return {}
        window = self.oauth_window if oauth else self.window
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(WINDOW_MS),
            "X-HubSpot-RateLimit-Max": str(window.limit),
        }
        if not oauth:
            if self.daily_used >= self.daily_limit:
                raise ApiError(429, self._limit_body("You have reached your daily limit.", "DAILY"), headers)
            self.daily_used += 1
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily_limit - self.daily_used)
        if not window.take():
            raise self.rate_limited(request, headers={**headers, "X-HubSpot-RateLimit-Remaining": "0"})
        headers["X-HubSpot-RateLimit-Remaining"] = str(window.remaining())
        return headers

    def _limit_body(self, message: str, policy: str) -> dict:
        return {
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }

    def rate_limited(self, request: Request, headers: dict | None = None) -> ApiError:
        message = "You have reached your ten_secondly_rolling limit."
        return ApiError(429, self._limit_body(message, "TEN_SECONDLY_ROLLING"), headers)

    def not_found(self, request: Request) -> ApiError:
        return _error(404, f"Unable to route {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def _now(self) -> int:
        # Strictly increasing, so every change has its own lastmodifieddate, as HubSpot's do in practice.
        self.last_ms = max(int(time.time() * 1000), self.last_ms + 1)
        return self.last_ms

    # Records ----------------------------------------------------------------------------

    def _resolve(self, contact_id: str) -> dict | None:
        """The record an id names; a merged-away id answers with the record it was merged into."""
        seen = set()
        while contact_id in self.merged_into and contact_id not in seen:
            seen.add(contact_id)
            contact_id = self.merged_into[contact_id]
        return self.records.get(contact_id)

    def _by_id_property(self, value: str, id_property: str | None) -> dict | None:
        if id_property == "email":
            record_id = self.by_email.get(str(value).strip().lower())
            return self.records.get(record_id) if record_id else None
        if id_property not in (None, "", "hs_object_id"):
            raise _error(400, f"{id_property} is not a unique identifier property.", "VALIDATION_ERROR")
        return self._resolve(str(value))

    def _public(self, record: dict, wanted: list[str] | None) -> dict:
        names = list(dict.fromkeys([*(wanted or DEFAULT_RETURNED), *ALWAYS_RETURNED]))
        properties = record["properties"]
        public = {
            "id": record["id"],
            "properties": {name: properties.get(name) for name in names if name in self.properties},
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record["archived"],
        }
        if record["archived"]:
            public["archivedAt"] = record["archivedAt"]
        return public

    def _check_properties(self, inputs: list[dict]) -> None:
        """Unknown or read-only properties fail the whole request (400), as in HubSpot."""
        problems = []
        for item in inputs:
            for name in item.get("properties") or {}:
                if name not in self.properties:
                    problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
                elif name in READ_ONLY:
                    problems.append(
                        (name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.')
                    )
        if problems:
            details = [
                {"isValid": False, "message": message, "error": code, "name": name} for name, code, message in problems
            ]
            raise _error(
                400,
                f"Property values were not valid: {json.dumps(details)}",
                "VALIDATION_ERROR",
                errors=[
                    {"message": message, "code": code, "context": {"propertyName": [name]}}
                    for name, code, message in problems
                ],
            )

    def _email_problem(self, properties: dict, record_id: str | None = None) -> ApiError | None:
        email = properties.get("email")
        if email is None or email == "":
            return None
        email = str(email)
        if not VALID_EMAIL.match(email.strip()):
            return _error(400, f"Email address {email} is invalid", "VALIDATION_ERROR", subCategory="INVALID_EMAIL")
        holder = self.by_email.get(email.strip().lower())
        if holder and holder != record_id:
            return _error(409, f"Contact already exists. Existing ID: {holder}", "CONFLICT")
        return None

    def _index(self, record: dict, *, add: bool) -> None:
        properties = record["properties"]
        emails = [properties.get("email") or "", *(properties.get("hs_additional_emails") or "").split(";")]
        for email in emails:
            key = email.strip().lower()
            if not key:
                continue
            if add:
                self.by_email[key] = record["id"]
            elif self.by_email.get(key) == record["id"]:
                del self.by_email[key]

    def _create(self, properties: dict, *, source: str, notify: bool = True) -> dict:
        now = self._now()
        record_id = str(self.next_id)
        self.next_id += 1
        values = {name: str(value) for name, value in properties.items() if value not in (None, "")}
        values.update(hs_object_id=record_id, createdate=_iso(now), lastmodifieddate=_iso(now))
        record = {
            "id": record_id,
            "properties": values,
            "createdAt": _iso(now),
            "updatedAt": _iso(now),
            "archived": False,
            "archivedAt": None,
        }
        self.records[record_id] = record
        self.order.append(int(record_id))
        self._index(record, add=True)
        if notify:
            self._event("contact.creation", record_id, now, source, changeFlag="NEW")
        return record

    def _update(self, record: dict, properties: dict, *, source: str) -> dict:
        current = record["properties"]
        changed = {
            name: str(value or "") for name, value in properties.items() if (current.get(name) or "") != (value or "")
        }
        if not changed:
            return record
        now = self._now()
        self._index(record, add=False)
        for name, value in changed.items():
            if value:
                current[name] = value
            else:
                current.pop(name, None)  # an empty string clears a property
        current["lastmodifieddate"] = record["updatedAt"] = _iso(now)
        self._index(record, add=True)
        for name, value in changed.items():
            self._event("contact.propertyChange", record["id"], now, source, propertyName=name, propertyValue=value)
        return record

    def _archive(self, record: dict, *, source: str) -> None:
        if record["archived"]:
            return
        now = self._now()
        self._index(record, add=False)
        record.update(archived=True, archivedAt=_iso(now), updatedAt=_iso(now))
        self._event("contact.deletion", record["id"], now, source)

    def _merge(self, primary: dict, merged: dict, *, source: str) -> dict:
        now = self._now()
        moved = 0
        self._index(merged, add=False)
        self._index(primary, add=False)
        into, source_props = primary["properties"], merged["properties"]
        for name, value in source_props.items():
            if name not in READ_ONLY and name != "email" and value and not into.get(name):
                into[name] = value
                moved += 1
        additional = [e for e in (into.get("hs_additional_emails") or "").split(";") if e]
        additional += [
            e for e in [source_props.get("email"), *(source_props.get("hs_additional_emails") or "").split(";")] if e
        ]
        if additional:
            into["hs_additional_emails"] = ";".join(dict.fromkeys(additional))
        merged_ids = [i for i in (into.get("hs_merged_object_ids") or "").split(";") if i]
        merged_ids += [merged["id"], *[i for i in (source_props.get("hs_merged_object_ids") or "").split(";") if i]]
        into["hs_merged_object_ids"] = ";".join(dict.fromkeys(merged_ids))
        into["lastmodifieddate"] = primary["updatedAt"] = _iso(now)
        merged.update(archived=True, archivedAt=_iso(now), updatedAt=_iso(now))
        self.merged_into[merged["id"]] = primary["id"]
        self._index(primary, add=True)
        self._event(
            "contact.merge",
            primary["id"],
            now,
            source,
            primaryObjectId=int(primary["id"]),
            mergedObjectIds=[int(merged["id"])],
            newObjectId=int(primary["id"]),
            numberOfPropertiesMoved=moved,
        )
        return primary

    def _event(self, kind: str, record_id: str, now: int, source: str, **extra) -> None:
        portal = int(self.account_id) if self.account_id.isdigit() else self.account_id
        self.emit(
            "app",
            {
                "eventId": next(self.event_ids),
                "subscriptionId": SUBSCRIPTION_IDS[kind],
                "portalId": portal,
                "appId": self.app_id,
                "occurredAt": now,
                "subscriptionType": kind,
                "attemptNumber": 0,
                "objectId": int(record_id),
                "changeSource": source,
                **extra,
            },
        )

    def webhook_request(self, destination: str, payloads: list[dict], attempt: int):
        url = self.webhooks.url
        if not url:
            return None
        body = json.dumps([{**payload, "attemptNumber": attempt} for payload in payloads]).encode()
        timestamp = str(int(time.time() * 1000))
        signature = signature_v3(
            secret=self.webhooks.secret, method="POST", uri=signature_uri(url), body=body, timestamp=timestamp
        )
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        return url, headers, body

    # Contacts API -----------------------------------------------------------------------

    def _wanted(self, value) -> list[str] | None:
        if value is None:
            return None
        names = value.split(",") if isinstance(value, str) else list(value)
        return [name.strip() for name in names if name.strip()]

    def _limit(self, request: Request, maximum: int) -> int:
        try:
            limit = int(request.arg("limit", "10"))
        except ValueError:
            raise _error(400, "limit must be a number.", "VALIDATION_ERROR") from None
        if not 1 <= limit <= maximum:
            raise _error(400, f"limit must be between 1 and {maximum}.", "VALIDATION_ERROR")
        return limit

    def contacts_list(self, request: Request) -> Response:
        limit = self._limit(request, LIST_LIMIT)
        archived = request.arg("archived", "false") == "true"
        after = _whole_number(request.arg("after", "0") or 0, "after")
        wanted = self._wanted(",".join(request.query.get("properties", [])) or None)
        page, more = [], False
        for record_id in self.order[bisect.bisect_right(self.order, after) :]:
            record = self.records[str(record_id)]
            if record["archived"] != archived:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(record)
        body: dict = {"results": [self._public(record, wanted) for record in page]}
        if more:
            next_after = page[-1]["id"]
            body["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
        return Response.json(200, body)

    def contact_get(self, request: Request, contact_id: str) -> Response:
        record = self._by_id_property(contact_id, request.arg("idProperty"))
        archived = request.arg("archived", "false") == "true"
        if record is None or record["archived"] != archived:
            raise _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        wanted = self._wanted(",".join(request.query.get("properties", [])) or None)
        return Response.json(200, self._public(record, wanted))

    def contact_create(self, request: Request) -> Response:
        properties = request.json().get("properties") or {}
        self._check_properties([{"properties": properties}])
        problem = self._email_problem(properties)
        if problem:
            raise problem
        return Response.json(201, self._public(self._create(properties, source="INTEGRATION"), list(properties)))

    def contact_update(self, request: Request, contact_id: str) -> Response:
        record = self._by_id_property(contact_id, request.arg("idProperty"))
        if record is None or record["archived"]:
            raise _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        properties = request.json().get("properties") or {}
        self._check_properties([{"properties": properties}])
        problem = self._email_problem(properties, record["id"])
        if problem:
            raise problem
        return Response.json(
            200, self._public(self._update(record, properties, source="INTEGRATION"), list(properties))
        )

    def contact_archive(self, request: Request, contact_id: str) -> Response:
        record = self._resolve(contact_id)
        if record is not None:
            self._archive(record, source="INTEGRATION")
        return Response(status=204)

    def _inputs(self, request: Request) -> tuple[dict, list[dict]]:
        body = request.json()
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
            raise _error(400, "inputs must be a list of objects.", "VALIDATION_ERROR")
        if len(inputs) > BATCH_LIMIT:
            raise _error(
                400, f"Batch operations are limited to {BATCH_LIMIT} inputs; got {len(inputs)}.", "VALIDATION_ERROR"
            )
        return body, inputs

    def _batch_answer(self, results: list[dict], errors: list[dict], *, ok_status: int) -> Response:
        stamp = _iso(int(time.time() * 1000))
        body = {"status": "COMPLETE", "results": results, "startedAt": stamp, "completedAt": stamp}
        if errors:
            body.update(errors=errors, numErrors=len(errors))
        return Response.json(207 if errors else ok_status, body)

    @staticmethod
    def _item_error(problem: ApiError, trace: str | None, **context) -> dict:
        error = {key: problem.body[key] for key in ("category", "message")}
        error["status"] = "error"
        error["context"] = {**context, **({"objectWriteTraceId": [trace]} if trace else {})}
        return error

    def batch_read(self, request: Request) -> Response:
        body, inputs = self._inputs(request)
        archived = request.arg("archived", "false") == "true"
        wanted = self._wanted(body.get("properties") or None)
        results, missing = [], []
        for item in inputs:
            record = self._by_id_property(str(item.get("id", "")), body.get("idProperty"))
            if record is None or record["archived"] != archived:
                missing.append(str(item.get("id", "")))
            elif record["id"] not in {result["id"] for result in results}:
                results.append(self._public(record, wanted))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or not exist. "
                    f"Invalid ids: {', '.join(missing)}",
                    "context": {"ids": missing},
                }
            )
        return self._batch_answer(results, errors, ok_status=200)

    def batch_create(self, request: Request) -> Response:
        _, inputs = self._inputs(request)
        self._check_properties(inputs)
        emails: dict[str, int] = {}
        for item in inputs:
            email = ((item.get("properties") or {}).get("email") or "").strip().lower()
            problem = self._email_problem(item.get("properties") or {})
            if problem is not None and problem.status == 409:
                raise problem  # an existing email fails the whole batch with 409, as HubSpot does
            if email and email in emails:
                raise _error(400, f"Duplicate email {email} in the batch inputs.", "VALIDATION_ERROR")
            if email:
                emails[email] = 1
        results, errors = [], []
        for item in inputs:
            properties = item.get("properties") or {}
            trace = item.get("objectWriteTraceId")
            problem = self._email_problem(properties)
            if problem is not None:
                errors.append(self._item_error(problem, trace))
                continue
            result = self._public(self._create(properties, source="INTEGRATION"), list(properties))
            results.append({**result, **({"objectWriteTraceId": trace} if trace else {})})
        return self._batch_answer(results, errors, ok_status=201)

    def batch_update(self, request: Request) -> Response:
        _, inputs = self._inputs(request)
        self._check_properties(inputs)
        results, errors = [], []
        for item in inputs:
            properties = item.get("properties") or {}
            trace = item.get("objectWriteTraceId")
            record = self._by_id_property(str(item.get("id", "")), item.get("idProperty"))
            if record is None or record["archived"]:
                problem = _error(404, f"Object not found: {item.get('id')}", "OBJECT_NOT_FOUND")
                errors.append(self._item_error(problem, trace, ids=[str(item.get("id", ""))]))
                continue
            problem = self._email_problem(properties, record["id"])
            if problem is not None:
                errors.append(self._item_error(problem, trace))
                continue
            result = self._public(self._update(record, properties, source="INTEGRATION"), list(properties))
            results.append({**result, **({"objectWriteTraceId": trace} if trace else {})})
        return self._batch_answer(results, errors, ok_status=200)

    def batch_archive(self, request: Request) -> Response:
        _, inputs = self._inputs(request)
        for item in inputs:
            record = self._resolve(str(item.get("id", "")))
            if record is not None:
                self._archive(record, source="INTEGRATION")
        return Response(status=204)

    def contacts_merge(self, request: Request) -> Response:
        body = request.json()
        primary = self._resolve(str(body.get("primaryObjectId", "")))
        merged = self._resolve(str(body.get("objectIdToMerge", "")))
        if primary is None or merged is None or primary["archived"] or merged["archived"]:
            raise _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
        if primary is merged:
            raise _error(400, "A contact cannot be merged with itself.", "VALIDATION_ERROR")
        return Response.json(200, self._public(self._merge(primary, merged, source="INTEGRATION"), None))

    # Search -------------------------------------------------------------------------------

    def _matches(self, record: dict, flt: dict) -> bool:
        name, operator = flt.get("propertyName", ""), flt.get("operator", "EQ")
        actual = record["properties"].get(name)
        if operator == "HAS_PROPERTY":
            return actual not in (None, "")
        if operator == "NOT_HAS_PROPERTY":
            return actual in (None, "")
        if name in DATE_PROPERTIES:
            actual_value, value, high = _ms(actual), _ms(flt.get("value")), _ms(flt.get("highValue"))
            if (value is None and operator not in ("IN", "NOT_IN")) or (operator == "BETWEEN" and high is None):
                raise _error(400, f"{name} filters take epoch milliseconds or an ISO 8601 date.", "VALIDATION_ERROR")
        else:
            actual_value = (actual or "").lower()
            value, high = str(flt.get("value", "")).lower(), str(flt.get("highValue", "")).lower()
        values = [str(v).lower() for v in flt.get("values") or []]
        if actual_value is None:
            return operator == "NEQ"
        checks = {
            "EQ": lambda: actual_value == value,
            "NEQ": lambda: actual_value != value,
            "LT": lambda: actual_value < value,
            "LTE": lambda: actual_value <= value,
            "GT": lambda: actual_value > value,
            "GTE": lambda: actual_value >= value,
            "BETWEEN": lambda: value <= actual_value <= high,
            "IN": lambda: str(actual_value) in values,
            "NOT_IN": lambda: str(actual_value) not in values,
            "CONTAINS_TOKEN": lambda: str(value).strip("*") in str(actual_value),
            "NOT_CONTAINS_TOKEN": lambda: str(value).strip("*") not in str(actual_value),
        }
        if operator not in checks:
            raise _error(400, f"Unknown filter operator {operator}.", "VALIDATION_ERROR")
        return checks[operator]()

    def search(self, request: Request) -> Response:
        body = request.json()
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or sum(len(group.get("filters") or []) for group in groups) > 18:
            raise _error(
                400, "Too many filter groups or filters (at most 5 groups and 18 filters).", "VALIDATION_ERROR"
            )
        limit = _whole_number(body.get("limit") or 10, "limit")
        if not 1 <= limit <= SEARCH_LIMIT:
            raise _error(400, f"limit must be between 1 and {SEARCH_LIMIT}.", "VALIDATION_ERROR")
        offset = _whole_number(body.get("after") or 0, "after")
        if offset + limit > SEARCH_RESULT_CAP:
            raise _error(400, f"Paging is limited to {SEARCH_RESULT_CAP} results per query.", "VALIDATION_ERROR")
        query = str(body.get("query") or "").lower()
        # _now() runs ahead of the clock after many writes in one millisecond; the newest stamp counts as now.
        visible_before = max(int(time.time() * 1000), self.last_ms) - self.search_lag_ms
        found = [
            record
            for record in self.records.values()
            if not record["archived"]
            and _ms(record["properties"]["lastmodifieddate"]) <= visible_before
            and (not groups or any(all(self._matches(record, f) for f in g.get("filters") or []) for g in groups))
            and (
                not query
                or any(
                    query in (record["properties"].get(p) or "").lower()
                    for p in ("email", "firstname", "lastname", "phone")
                )
            )
        ]
        sorts = body.get("sorts") or []
        if sorts:
            sort = sorts[0]
            if isinstance(sort, str):
                sort = {
                    "propertyName": sort.lstrip("-"),
                    "direction": "DESCENDING" if sort.startswith("-") else "ASCENDING",
                }
            name = sort.get("propertyName", "")

            def key(record):
                value = record["properties"].get(name)
                return (_ms(value) or 0) if name in DATE_PROPERTIES else (value or "").lower(), int(record["id"])

            found.sort(key=key, reverse=sort.get("direction") == "DESCENDING")
        page = found[offset : offset + limit]
        answer: dict = {
            "total": len(found),
            "results": [self._public(r, self._wanted(body.get("properties") or None)) for r in page],
        }
        if offset + limit < len(found):
            answer["paging"] = {"next": {"after": str(offset + limit)}}
        return Response.json(200, answer)

    # Properties ----------------------------------------------------------------------------

    def properties_list(self, request: Request) -> Response:
        return Response.json(200, {"results": list(self.properties.values())})

    def property_get(self, request: Request, name: str) -> Response:
        if name not in self.properties:
            raise _error(404, f"Unable to find property {name}", "OBJECT_NOT_FOUND")
        return Response.json(200, self.properties[name])

    def property_create(self, request: Request) -> Response:
        if self.missing_scopes:
            raise _error(
                403,
                "This app hasn't been granted all required scopes to make this call.",
                "MISSING_SCOPES",
                context={"missingScopes": self.missing_scopes},
            )
        body = request.json()
        missing = [name for name in ("name", "label", "type", "fieldType", "groupName") if not body.get(name)]
        if missing:
            raise _error(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        if body["name"] in self.properties:
            raise _error(409, f"A property named '{body['name']}' already exists.", "CONFLICT")
        definition = {
            **body,
            "hubspotDefined": False,
            "modificationMetadata": {"archivable": True, "readOnlyDefinition": False, "readOnlyValue": False},
        }
        self.properties[body["name"]] = definition
        return Response.json(201, definition, {"Location": f"{PROPERTIES}/{body['name']}"})

    # OAuth -------------------------------------------------------------------------------------

    def oauth_token(self, request: Request) -> Response:
        form = {name: values[-1] for name, values in parse_qs(request.body.decode()).items()}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            raise ApiError(400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"})
        return Response.json(200, self.oauth_grant(form))

    def account_details(self, request: Request) -> Response:
        return Response.json(
            200,
            {
                "portalId": int(self.account_id) if self.account_id.isdigit() else self.account_id,
                "accountType": "STANDARD",
                "timeZone": "UTC",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "+00:00",
                "utcOffsetMilliseconds": 0,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )

    def oauth_token_info(self, request: Request, token: str) -> Response:
        if token not in self.tokens:
            raise _error(404, "access token not found", "OBJECT_NOT_FOUND")
        return Response.json(
            200,
            {
                "token": token,
                "hub_id": int(self.account_id) if self.account_id.isdigit() else self.account_id,
                "hub_domain": f"sandbox-{self.account_id}.hubspot.com",
                "app_id": self.app_id,
                "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"],
                "expires_in": 1800,
                "token_type": "access",
            },
        )

    # The control API -----------------------------------------------------------------------------

    def _field_properties(self) -> dict[str, str]:
        return {field: prop for field, prop in PROPERTY_FOR_FIELD.items() if prop in self.properties}

    def _to_properties(self, values: dict[str, str]) -> dict[str, str]:
        names = self._field_properties()
        if "pronouns" in values and "pronouns" not in names:
            raise ApiError(400, {"message": "This portal has no pronouns property yet (run the pronouns setup)."})
        return {names[field]: value for field, value in values.items()}

    def _control_record(self, record: dict) -> dict:
        properties = record["properties"]
        values = {field: properties.get(prop) or "" for field, prop in self._field_properties().items()}
        return {
            "id": record["id"],
            "deleted": record["archived"],
            "updated": record["updatedAt"],
            "merged_into": self.merged_into.get(record["id"]),
            **values,
            "raw": self._public(record, list(self.properties)),
        }

    def _control_get(self, record_id: str) -> dict:
        record = self.records.get(record_id)
        if record is None:
            raise ApiError(404, {"message": f"No contact {record_id} in this portal."})
        return record

    def control_list(self, *, include_deleted: bool = True) -> list[dict]:
        return [self._control_record(r) for r in self.records.values() if include_deleted or not r["archived"]]

    def control_create(self, values: dict, *, notify: bool = True) -> dict:
        properties = self._to_properties(values)
        problem = self._email_problem(properties)
        if problem:
            raise problem
        return self._control_record(self._create(properties, source="CRM_UI", notify=notify))

    def control_backdate(self, record_ids: list[str], seconds: float) -> None:
        """Stamp loaded records as created and last modified ``seconds`` ago (old data, as real portals hold)."""
        stamp = _iso(int((time.time() - seconds) * 1000))
        for record_id in record_ids:
            record = self.records[record_id]
            record.update(createdAt=stamp, updatedAt=stamp)
            record["properties"].update(createdate=stamp, lastmodifieddate=stamp)

    def control_update(self, record_id: str, values: dict) -> dict:
        record = self._control_get(record_id)
        properties = self._to_properties(values)
        problem = self._email_problem(properties, record_id)
        if problem:
            raise problem
        return self._control_record(self._update(record, properties, source="CRM_UI"))

    def control_delete(self, record_id: str) -> None:
        self._archive(self._control_get(record_id), source="CRM_UI")

    def control_restore(self, record_id: str) -> dict:
        record = self._control_get(record_id)
        if record_id in self.merged_into:
            raise ApiError(409, {"message": "A merged-away contact cannot be restored."})
        if record["archived"]:
            email = (record["properties"].get("email") or "").lower()
            if email and email in self.by_email:
                raise ApiError(409, {"message": f"Another contact holds {email} now."})
            now = self._now()
            record.update(archived=False, archivedAt=None, updatedAt=_iso(now))
            record["properties"]["lastmodifieddate"] = _iso(now)
            self._index(record, add=True)
            self._event("contact.restore", record_id, now, "CRM_UI")
        return self._control_record(record)

    def control_merge(self, primary_id: str, merged_id: str) -> dict:
        primary, merged = self._control_get(primary_id), self._control_get(merged_id)
        if primary["archived"] or merged["archived"]:
            raise ApiError(409, {"message": "Only live contacts can be merged."})
        return self._control_record(self._merge(primary, merged, source="CRM_UI"))

    def describe(self) -> dict:
        return {
            **super().describe(),
            "tier": self.tier,
            "records": sum(1 for r in self.records.values() if not r["archived"]),
            "webhook_url": self.webhooks.url,
            "pronouns_property": "pronouns" in self.properties,
            "limits": {"ten_secondly": self.window.limit, "daily": self.daily_limit, "daily_used": self.daily_used},
            # What the fewest possible calls and the rate-limit bound of a sync are computed from.
            "api_profile": {
                "list_page_limit": LIST_LIMIT,
                "write_batch_limit": BATCH_LIMIT,
                "requests_per_second": self.window.limit * 1000 / WINDOW_MS,
                "window_ms": WINDOW_MS,  # the window the burst limit is counted over
            },
        }
