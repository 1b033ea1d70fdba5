"""HubSpot's CRM API v3 over HTTP: the calls contacts sync needs, and HubSpot's error rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings

from syncapp.exceptions import (
    ProviderAuthError,
    ProviderError,
    QuotaExhaustedError,
    RateLimitedError,
    TransientProviderError,
)
from syncapp.providers.base.client import CrmClient, response_json

CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"
SEARCH_PAGE_SIZE = 200  # the search API's maximum
LIST_PAGE_SIZE = 100  # the list API's maximum
LOCK_WAIT_SECONDS = 2  # HubSpot's 423 lock lasts 2 seconds


class HubspotClient(CrmClient):
    default_base_url = "https://api.hubapi.com"
    name = "HubSpot"

    def token_headers(self, credentials: dict) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.get('access_token', '')}"}

    def rate_limits(self, method: str, path: str) -> list[tuple[str, int, int]]:
        if path.endswith("/search"):
            # Search has its own per-second limit and does not count against the ten-second one.
            return [(f"hubspot:{self.connection.pk}:search", settings.HUBSPOT_SEARCH_RATE_PER_SECOND, 1000)]
        limit = self.connection.rate_limit or (
            110 if self.connection.credentials.get("refresh_token") else settings.HUBSPOT_RATE_LIMIT
        )
        return [(f"hubspot:{self.connection.pk}", limit, settings.RATE_LIMIT_WINDOW)]

    def error_for(self, response: requests.Response) -> ProviderError:
        body = response_json(response)
        message = f"HubSpot {response.status_code}: {body.get('message') or response.text[:300]}"
        status = response.status_code
        if status == 429:
            if body.get("policyName") == "DAILY":
                return QuotaExhaustedError(message, until=_daily_limit_probe_time())
            if "Retry-After" in response.headers:
                return RateLimitedError(message, retry_after=_seconds(response))
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if interval:
                return RateLimitedError(message, retry_after=int(interval) / 1000)
            if body.get("policyName") == "TEN_SECONDLY_ROLLING":
                return RateLimitedError(message, retry_after=settings.RATE_LIMIT_WINDOW / 1000)
            # The search API's limit is per second and its answers carry no rate-limit headers.
            return RateLimitedError(message, retry_after=1 if "secondly limit" in message else None)
        if status == 423:
            return TransientProviderError(message, status=status, retry_after=LOCK_WAIT_SECONDS)
        if status == 477:
            return TransientProviderError(message, status=status, retry_after=_seconds(response))
        if status >= 500:
            return TransientProviderError(message, status=status)
        if status in (401, 403):
            missing = (body.get("context") or {}).get("missingScopes")
            if missing:
                message += f" (missing scopes: {', '.join(missing)})"
            return ProviderAuthError(message, status=status)
        return ProviderError(message, status=status)

    # Contacts ---------------------------------------------------------------------------

    def list_contacts(self, *, properties: list[str], after: str | None, archived: bool = False) -> dict:
        """One page of the live contacts, or with ``archived`` of the recycling bin's, in id order."""
        params = {"limit": LIST_PAGE_SIZE, "properties": ",".join(properties), "archived": str(archived).lower()}
        if after:
            params["after"] = after
        return self.request("GET", CONTACTS, params=params).json()

    def search_modified_since(self, *, since_ms: int, properties: list[str], after: str | None) -> dict:
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since_ms)}]}
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": SEARCH_PAGE_SIZE,
        }
        if after:
            body["after"] = after
        return self.request("POST", f"{CONTACTS}/search", json=body).json()

    def batch_read(self, *, ids: list[str], properties: list[str], id_property: str | None = None) -> dict:
        body = {"properties": properties, "propertiesWithHistory": [], "inputs": [{"id": i} for i in ids]}
        if id_property:
            body["idProperty"] = id_property
        return self._batch("read", body, params={"archived": "false"})

    def batch_create(self, *, inputs: list[dict]) -> dict:
        return self._batch("create", {"inputs": inputs})

    def batch_update(self, *, inputs: list[dict]) -> dict:
        return self._batch("update", {"inputs": inputs})

    def batch_archive(self, *, ids: list[str]) -> None:
        self.request("POST", f"{CONTACTS}/batch/archive", json={"inputs": [{"id": i} for i in ids]})

    def _batch(self, action: str, body: dict, **kwargs) -> dict:
        # 207 is a partial success: the caller sorts results from errors item by item.
        return self.request("POST", f"{CONTACTS}/batch/{action}", json=body, ok_statuses=(207,), **kwargs).json()

    # Properties -----------------------------------------------------------------------

    def property_get(self, name: str) -> dict | None:
        try:
            return self.request("GET", f"{PROPERTIES}/{name}").json()
        except ProviderError as exc:
            if exc.status == 404:
                return None
            raise

    def property_list(self) -> list[dict]:
        return self.request("GET", PROPERTIES).json().get("results", [])

    def property_create(self, definition: dict) -> dict:
        return self.request("POST", PROPERTIES, json=definition).json()


def _seconds(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _daily_limit_probe_time() -> datetime:
    # The daily limit resets at midnight in the account's time zone, which the API does not say:
    # one probe an hour finds the reset without hammering.
    return datetime.now(UTC) + timedelta(hours=1)
