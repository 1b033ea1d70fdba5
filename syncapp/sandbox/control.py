"""The sandbox's control API under /_sandbox/: accounts, records as a CRM user edits them, the log, faults.

Every answer is JSON; docs/sandbox.md lists the endpoints. Record edits made here fire webhooks like
any change made in the CRM's own UI.
"""

from __future__ import annotations

from dataclasses import asdict

from .accounts import universal_values
from .http import ApiError, Request, Response, Route, match_route

ROUTES = [
    Route("GET", "/_sandbox", "index"),
    Route("GET", "/_sandbox/accounts", "accounts_list"),
    Route("POST", "/_sandbox/accounts", "account_create"),
    Route("GET", "/_sandbox/accounts/{provider}/{account_id}", "account_get"),
    Route("PATCH", "/_sandbox/accounts/{provider}/{account_id}", "account_update"),
    Route("GET", "/_sandbox/accounts/{provider}/{account_id}/records", "records_list"),
    Route("POST", "/_sandbox/accounts/{provider}/{account_id}/records", "record_create"),
    Route("POST", "/_sandbox/accounts/{provider}/{account_id}/records/bulk", "records_bulk"),
    Route("POST", "/_sandbox/accounts/{provider}/{account_id}/merge", "records_merge"),
    Route("PATCH", "/_sandbox/accounts/{provider}/{account_id}/records/{record_id}", "record_update"),
    Route("DELETE", "/_sandbox/accounts/{provider}/{account_id}/records/{record_id}", "record_delete"),
    Route("POST", "/_sandbox/accounts/{provider}/{account_id}/records/{record_id}/restore", "record_restore"),
    Route("GET", "/_sandbox/requests", "requests_list"),
    Route("GET", "/_sandbox/faults", "faults_get"),
    Route("PUT", "/_sandbox/faults", "faults_set"),
    Route("GET", "/_sandbox/webhooks", "webhooks_get"),
    Route("POST", "/_sandbox/webhooks/wait", "webhooks_wait"),
]


def control_handle(sandbox, request: Request) -> Response:
    try:
        found = match_route(ROUTES, request.method, request.path.rstrip("/") or "/")
        if found is None:
            raise ApiError(404, {"message": f"No control endpoint {request.method} {request.path}; see GET /_sandbox/"})
        route, params = found
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(400, {"message": "The body must be a JSON object."})
        account = None
        if "provider" in params:
            account = sandbox.account(params.pop("provider"), params.pop("account_id"))
        handler = HANDLERS[route.handler]
        status, data = handler(sandbox, account, request, body, **params)
    except ApiError as exc:
        return exc.response()
    return Response.json(status, data)


def _index(sandbox, account, request, body):
    return 200, {"endpoints": [route.label for route in ROUTES], "providers": sorted(sandbox.classes)}


def _accounts_list(sandbox, account, request, body):
    return 200, {"accounts": [sandbox.describe_account(item) for item in sandbox.accounts.values()]}


def _account_create(sandbox, account, request, body):
    options = dict(body)
    provider = options.pop("provider", "")
    created = sandbox.account_create(provider, account_id=str(options.pop("account_id", "") or ""), **options)
    return 201, sandbox.describe_account(created)


def _account_get(sandbox, account, request, body):
    return 200, {**sandbox.describe_account(account), "webhooks": asdict(account.webhooks)}


def _account_update(sandbox, account, request, body):
    """Change webhook delivery options or turn rate limits on and off."""
    with account.lock:
        if "rate_limits" in body:
            account.rate_limits = bool(body["rate_limits"])
        for name, value in (body.get("webhooks") or {}).items():
            if not hasattr(account.webhooks, name):
                raise ApiError(400, {"message": f"Unknown webhook option {name!r}."})
            setattr(account.webhooks, name, tuple(value) if name == "retry_delays" else value)
    return 200, {**sandbox.describe_account(account), "webhooks": asdict(account.webhooks)}


def _records_list(sandbox, account, request, body):
    include_deleted = request.arg("include_deleted", "true") != "false"
    with account.lock:
        return 200, {"records": account.control_list(include_deleted=include_deleted)}


def _record_create(sandbox, account, request, body):
    with account.lock:
        return 201, account.control_create(universal_values(body))


def _records_bulk(sandbox, account, request, body):
    """Load many records at once, without notifications unless ``"webhooks": true``.

    ``modified_seconds_ago`` stamps them as created and last modified that long ago.
    """
    records = body.get("records")
    if not isinstance(records, list):
        raise ApiError(400, {"message": "records must be a list of contacts."})
    notify = bool(body.get("webhooks", False))
    age = float(body.get("modified_seconds_ago") or 0)
    with account.lock:
        created = [account.control_create(universal_values(values), notify=notify) for values in records]
        if age:
            account.control_backdate([record["id"] for record in created], age)
    return 201, {"created": len(created), "ids": [record["id"] for record in created]}


def _records_merge(sandbox, account, request, body):
    primary, merged = str(body.get("primary_id") or ""), str(body.get("merged_id") or "")
    if not primary or not merged or primary == merged:
        raise ApiError(400, {"message": "primary_id and merged_id must name two different records."})
    with account.lock:
        return 200, account.control_merge(primary, merged)


def _record_update(sandbox, account, request, body, record_id):
    with account.lock:
        return 200, account.control_update(record_id, universal_values(body))


def _record_delete(sandbox, account, request, body, record_id):
    with account.lock:
        account.control_delete(record_id)
    return 200, {"deleted": record_id}


def _record_restore(sandbox, account, request, body, record_id):
    with account.lock:
        return 200, account.control_restore(record_id)


def _requests_list(sandbox, account, request, body):
    try:
        after = int(request.arg("after", "0") or 0)
    except ValueError:
        raise ApiError(400, {"message": "after must be a request sequence number."}) from None
    entries = sandbox.requests_since(
        after, provider=request.arg("provider"), account_id=request.arg("account_id"), method=request.arg("method")
    )
    return 200, {"requests": entries, "last": sandbox.log_sequence}


def _faults_get(sandbox, account, request, body):
    return 200, asdict(sandbox.faults)


def _faults_set(sandbox, account, request, body):
    try:
        return 200, sandbox.faults_set(**body)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, {"message": str(exc)}) from None


def _webhooks_get(sandbox, account, request, body):
    return 200, sandbox.dispatcher.describe()


def _webhooks_wait(sandbox, account, request, body):
    try:
        timeout = float(body.get("timeout", 30))
    except (TypeError, ValueError):
        raise ApiError(400, {"message": "timeout must be a number of seconds."}) from None
    idle = sandbox.dispatcher.wait_idle(timeout)
    return (200 if idle else 504), {"idle": idle, **sandbox.dispatcher.describe()}


HANDLERS = {route.handler: globals()[f"_{route.handler}"] for route in ROUTES}
