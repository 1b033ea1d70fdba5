"""What every sandbox CRM account shares: tokens, OAuth grants, rolling-window limits, statistics, webhooks.

A provider's account (``syncapp/providers/<id>/sandbox.py``) adds its routes, its record shape and its
own error wording. Accounts are called from many server threads: every handler runs under the
account's lock, so the state of one account changes one request at a time, as a CRM's would.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from syncapp.engine import FIELDS

from .http import ApiError, Request, Response, Route, match_route

# The fields of the universal contact, the shape the control API speaks for every provider.
CONTACT_FIELDS = FIELDS


class RollingWindow:
    """At most ``limit`` requests in any ``window_ms`` (the CRMs' burst limits are rolling windows)."""

    def __init__(self, limit: int, window_ms: int):
        self.limit = limit
        self.window = window_ms / 1000
        self.times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self._expire(now)
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True

    def remaining(self, now: float | None = None) -> int:
        self._expire(time.monotonic() if now is None else now)
        return max(self.limit - len(self.times), 0)

    def reset_seconds(self, now: float | None = None) -> float:
        """Seconds until the oldest request in the window leaves it."""
        now = time.monotonic() if now is None else now
        self._expire(now)
        return max(self.times[0] + self.window - now, 0) if self.times else 0


@dataclass
class WebhookOptions:
    """How an account delivers its webhooks (see docs/sandbox.md)."""

    url: str = ""  # HubSpot: the app's target URL; Pipedrive delivers to its registered webhooks instead
    secret: str = ""  # HubSpot: the app's client secret, which signs deliveries
    delay_ms: int = 0  # deliver this late
    duplicate_rate: float = 0.0  # share of deliveries sent twice
    reorder_ms: int = 0  # random extra delay per delivery, so deliveries overtake each other
    retry_delays: tuple[float, ...] = (1, 2, 4)  # seconds between attempts after a failure
    paused: bool = False  # hold deliveries (they wait, and go out when resumed)


class SandboxAccount:
    """One CRM account (a HubSpot portal, a Pipedrive company) with its own records and limits."""

    provider = ""
    routes: list[Route] = []
    public_handlers: frozenset[str] = frozenset()  # answered without a token (OAuth endpoints)
    webhook_timeout = 5.0  # seconds the CRM waits for the app to answer a delivery
    webhook_batch_size = 1  # events per delivery
    default_webhook_path = ""  # where the app receives this CRM's webhooks, below the sandbox's --webhook-target

    def __init__(self, *, account_id: str, token: str = "", rate_limits: bool = True, dispatcher=None, **options):
        self.account_id = account_id
        self.base_url = ""  # set by the sandbox once the account has its place
        self.token = token or f"sandbox-{self.provider}-{secrets.token_urlsafe(12)}"
        self.tokens = {self.token}
        self.rate_limits = rate_limits
        self.dispatcher = dispatcher
        self.webhooks = WebhookOptions(**options.pop("webhooks", {}))
        self.client_id = options.pop("client_id", "sandbox-client-id")
        self.client_secret = options.pop("client_secret", "sandbox-client-secret")
        self.oauth_codes: dict[str, str] = {}  # code -> redirect_uri
        self.refresh_tokens: set[str] = set()
        self.oauth_tokens: set[str] = set()
        self.lock = threading.RLock()
        self.calls: Counter[str] = Counter()
        self.configure(**options)

    def configure(self, **options) -> None:
        """Apply provider options (plan, tier...); unknown ones are an error."""
        if options:
            raise ValueError(f"Unknown {self.provider} sandbox options: {', '.join(sorted(options))}")

    # HTTP -------------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[Response, str]:
        """Answer one API request; return the response and the operation's label for statistics."""
        try:
            found = match_route(self.routes, request.method, request.path)
        except ApiError as exc:
            return exc.response(), "unknown"
        if found is None:
            return self.not_found(request).response(), "unknown"
        route, params = found
        with self.lock:
            self.calls[route.label] += 1
            headers: dict[str, str] = {}
            try:
                oauth = False
                if route.handler not in self.public_handlers:
                    oauth = self.authenticate(request)
                headers = self.spend(route, request, oauth=oauth)
                response = getattr(self, route.handler)(request, **params)
            except ApiError as exc:
                # A request that got past the limits and then failed (404, 400) still carries their headers.
                response = exc.response()
                headers = {**headers, **exc.headers}
            response.headers.update(headers)
        return response, route.label

    def bearer(self, request: Request) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def authenticate(self, request: Request) -> bool:
        """Check the request's token; return True when it is an OAuth access token."""
        raise NotImplementedError("subclasses of SandboxAccount must provide an authenticate() method")

    def spend(self, route: Route, request: Request, *, oauth: bool) -> dict[str, str]:
        """Count the request against the account's limits; raise ApiError(429) when over; return headers."""
        return {}

    def rate_limited(self, request: Request) -> ApiError:
        """The CRM's own 429 answer (also what a '429' fault answers)."""
        raise NotImplementedError("subclasses of SandboxAccount must provide a rate_limited() method")

    def not_found(self, request: Request) -> ApiError:
        return ApiError(404, {"message": f"No such endpoint: {request.method} {request.path}"})

    # OAuth: every account approves the sandbox client at once ---------------------------

    def oauth_authorize(self, request: Request) -> Response:
        redirect_uri, state = request.arg("redirect_uri", ""), request.arg("state", "")
        if request.arg("client_id") != self.client_id or not redirect_uri:
            raise ApiError(400, {"message": "Unknown client_id or missing redirect_uri."})
        code = secrets.token_urlsafe(16)
        self.oauth_codes[code] = redirect_uri
        separator = "&" if "?" in redirect_uri else "?"
        location = f"{redirect_uri}{separator}code={code}&state={state}"
        return Response(status=302, headers={"Location": location})

    def oauth_grant(self, form: dict[str, str]) -> dict:
        """Exchange a code or refresh token for new tokens, as both CRMs' token endpoints do."""
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if self.oauth_codes.pop(form.get("code", ""), None) != form.get("redirect_uri"):
                raise ApiError(400, {"error": "invalid_grant", "message": "The code is unknown or already used."})
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                raise ApiError(400, {"error": "invalid_grant", "message": "The refresh token is unknown."})
        else:
            raise ApiError(400, {"error": "unsupported_grant_type", "message": f"Unknown grant_type {grant!r}."})
        access, refresh = f"oauth-{secrets.token_urlsafe(16)}", f"refresh-{secrets.token_urlsafe(16)}"
        self.tokens.add(access)
        self.oauth_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "expires_in": 1800, "token_type": "bearer"}

    # Webhooks ---------------------------------------------------------------------------

    def emit(self, destination: str, payload: dict) -> None:
        if self.dispatcher is not None:
            self.dispatcher.enqueue(self, destination, payload)

    def webhook_request(self, destination: str, payloads: list[dict], attempt: int):
        """Return (url, headers, body) for one delivery, or None when its destination is gone."""
        raise NotImplementedError("subclasses of SandboxAccount must provide a webhook_request() method")

    # The control API: records in the universal contact's shape ----------------------------

    def control_list(self, *, include_deleted: bool = True) -> list[dict]:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_list() method")

    def control_create(self, values: dict, *, notify: bool = True) -> dict:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_create() method")

    def control_backdate(self, record_ids: list[str], seconds: float) -> None:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_backdate() method")

    def control_update(self, record_id: str, values: dict) -> dict:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_update() method")

    def control_delete(self, record_id: str) -> None:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_delete() method")

    def control_restore(self, record_id: str) -> dict:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_restore() method")

    def control_merge(self, primary_id: str, merged_id: str) -> dict:
        raise NotImplementedError("subclasses of SandboxAccount must provide a control_merge() method")

    def describe(self) -> dict:
        return {
            "provider": self.provider,
            "account_id": self.account_id,
            "token": self.token,
            "client_id": self.client_id,
            "rate_limits": self.rate_limits,
            "calls": dict(self.calls),
        }


def universal_values(values: dict) -> dict[str, str]:
    """Return the universal contact fields in ``values``; anything else is an error."""
    unknown = set(values) - set(CONTACT_FIELDS)
    if unknown:
        raise ApiError(400, {"message": f"Unknown contact fields: {', '.join(sorted(unknown))}."})
    return {name: "" if value is None else str(value) for name, value in values.items()}
