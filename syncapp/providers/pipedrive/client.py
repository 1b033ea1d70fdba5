"""Pipedrive's API over HTTP: v2 persons, v1 person fields and webhooks, and Pipedrive's error rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.core.cache import cache

from syncapp.exceptions import (
    ProviderAuthError,
    ProviderError,
    QuotaExhaustedError,
    RateLimitedError,
    TransientProviderError,
)
from syncapp.providers.base.client import CrmClient, response_json

PERSONS = "/api/v2/persons"
PAGE_SIZE = 500  # the maximum; a list call costs the same tokens whatever its size
BURST_WINDOW_MS = 2000  # Pipedrive's burst limits are per rolling two seconds
EDGE_BLOCK_WAIT = 60  # seconds to back off after the edge's 403 page
BUDGET_MEMORY_SECONDS = 3600  # a spent budget is probed again after this long


class PipedriveClient(CrmClient):
    default_base_url = "https://api.pipedrive.com"
    name = "Pipedrive"

    @property
    def _budget_key(self) -> str:
        return f"syncapp:pipedrive-budget:{self.connection.pk}"

    def token_headers(self, credentials: dict) -> dict[str, str]:
        if credentials.get("refresh_token"):
            return {"Authorization": f"Bearer {credentials.get('access_token', '')}"}
        return {"x-api-token": credentials.get("access_token", "")}

    def rate_limits(self, method: str, path: str) -> list[tuple[str, int, int]]:
        if path.endswith("/search"):
            return [(f"pipedrive:{self.connection.pk}:search", settings.PIPEDRIVE_SEARCH_RATE_LIMIT, BURST_WINDOW_MS)]
        oauth = bool(self.connection.credentials.get("refresh_token"))
        default = settings.PIPEDRIVE_OAUTH_RATE_LIMIT if oauth else settings.PIPEDRIVE_RATE_LIMIT
        return [(f"pipedrive:{self.connection.pk}", self.connection.rate_limit or default, BURST_WINDOW_MS)]

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        # The budget is the company's, so what one worker learned holds for all of them (shared cache).
        left = cache.get(self._budget_key)
        if left is not None and left <= 0:
            raise QuotaExhaustedError("Pipedrive's daily API token budget is spent.", until=_budget_probe_time())
        response = super().request(method, path, **kwargs)
        remaining = response.headers.get("x-daily-ratelimit-token-remaining")
        cost = response.headers.get("x-token-cost", "")
        if remaining is not None and remaining.lstrip("-").isdigit():
            cache.set(self._budget_key, int(remaining), BUDGET_MEMORY_SECONDS)
        elif left is not None and cost.isdigit():
            # The remaining-budget header is not always sent: count down with each call's cost instead.
            cache.set(self._budget_key, left - int(cost), BUDGET_MEMORY_SECONDS)
        return response

    def error_for(self, response: requests.Response) -> ProviderError:
        status = response.status_code
        body = response_json(response)
        detail = body.get("error") or response.text[:300]
        message = f"Pipedrive {status}: {detail}"
        if body.get("error_info"):
            message += f" ({body['error_info']})"
        if status == 403 and not body:
            # Pipedrive's edge answers clients that ignored 429s with an HTML page: that is rate limiting.
            return RateLimitedError(
                "Pipedrive's edge blocked requests (403 page) after rate limiting; backing off.",
                status=status,
                retry_after=EDGE_BLOCK_WAIT,
            )
        if status == 429:
            if response.headers.get("x-daily-ratelimit-token-remaining") == "0" or "daily" in detail.lower():
                return QuotaExhaustedError(message, until=_budget_probe_time())
            wait = response.headers.get("x-ratelimit-reset") or response.headers.get("Retry-After")
            return RateLimitedError(message, retry_after=float(wait) if _is_number(wait) else None)
        if status >= 500:
            return TransientProviderError(message, status=status)
        if status in (401, 403):
            return ProviderAuthError(message, status=status)
        return ProviderError(message, status=status)

    # Persons (API v2) -------------------------------------------------------------------

    def persons_list(self, *, cursor: str | None, updated_since: str | None = None, ids: list[str] | None = None):
        params: dict = {"limit": PAGE_SIZE}
        if updated_since is not None:
            params.update(updated_since=updated_since, sort_by="update_time", sort_direction="asc")
        if ids:
            params["ids"] = ",".join(ids)
        if cursor:
            params["cursor"] = cursor
        return self.request("GET", PERSONS, params=params).json()

    def persons_search_email(self, email: str) -> list[str]:
        params = {"term": email, "fields": "email", "exact_match": "true", "limit": PAGE_SIZE}
        body = self.request("GET", f"{PERSONS}/search", params=params).json()
        return [str(entry["item"]["id"]) for entry in (body.get("data") or {}).get("items", [])]

    def person_get(self, person_id: str) -> dict | None:
        try:
            return self.request("GET", f"{PERSONS}/{person_id}").json().get("data")
        except ProviderError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def person_create(self, body: dict) -> dict:
        # Pipedrive accepts duplicate emails: a create whose reply was lost must not be resent blindly.
        return self.request("POST", PERSONS, json=body, idempotent=False).json()["data"]

    def person_update(self, person_id: str, body: dict) -> dict:
        return self.request("PATCH", f"{PERSONS}/{person_id}", json=body).json()["data"]

    def person_delete(self, person_id: str) -> None:
        try:
            self.request("DELETE", f"{PERSONS}/{person_id}")
        except ProviderError as exc:
            if exc.status not in (404, 410):  # already gone is what we wanted
                raise

    # Person fields and webhooks (API v1, where they still live) ------------------------------

    def person_fields(self) -> list[dict]:
        fields, start = [], 0
        while True:
            body = self.request("GET", "/v1/personFields", params={"start": start, "limit": PAGE_SIZE}).json()
            fields += body.get("data") or []
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            if not pagination.get("more_items_in_collection"):
                return fields
            start = pagination.get("next_start", start + PAGE_SIZE)

    def person_field_create(self, *, name: str) -> dict:
        return self.request("POST", "/v1/personFields", json={"name": name, "field_type": "varchar"}).json()["data"]

    def webhooks(self) -> list[dict]:
        return self.request("GET", "/v1/webhooks").json().get("data") or []

    def webhook_create(self, body: dict) -> dict:
        return self.request("POST", "/v1/webhooks", json=body).json()["data"]

    def webhook_delete(self, webhook_id) -> None:
        self.request("DELETE", f"/v1/webhooks/{webhook_id}")


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _budget_probe_time() -> datetime:
    # The budget resets at midnight in Pipedrive's server time zone, which is not published:
    # one probe an hour finds the reset without spending anything meanwhile.
    return datetime.now(UTC) + timedelta(hours=1)
