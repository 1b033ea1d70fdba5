"""HubSpot webhooks: v3 request signatures (v2 on request), the event array, hints per event type.

See https://developers.hubspot.com/docs/api/webhooks and .../webhooks/validating-requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable

from django.conf import settings

from syncapp.exceptions import WebhookPayloadError, WebhookSignatureError
from syncapp.providers.base.webhooks import (
    WebhookHandler,
    WebhookHints,
    WebhookNotice,
    event_name,
    positive_id,
    shown,
)

SIGNATURE_V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
SIGNATURE_HEADER = "X-HubSpot-Signature"
SIGNATURE_VERSION_HEADER = "X-HubSpot-Signature-Version"

# HubSpot signs the URI with exactly these escapes decoded, and no others (as documented, upper case).
URI_DECODINGS = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_URI_ESCAPE = re.compile("|".join(URI_DECODINGS))

# eventId alone is not unique (HubSpot's docs); these fields together identify one event.
DEDUPE_FIELDS = (
    "portalId",
    "subscriptionId",
    "eventId",
    "objectId",
    "occurredAt",
    "propertyName",
    "subscriptionType",
)


def signature_uri(uri: str) -> str:
    """Return ``uri`` as HubSpot signs it: only the documented percent-encodings decoded."""
    return _URI_ESCAPE.sub(lambda match: URI_DECODINGS[match.group(0)], uri)


def signature_v3(*, secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """Return base64(HMAC-SHA256(secret, method + uri + body + timestamp)); ``uri`` as signed."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signature_v2(*, secret: str, method: str, uri: str, body: bytes) -> str:
    """Return hex(SHA-256(secret + method + uri + body)), HubSpot's older signature."""
    return hashlib.sha256(secret.encode() + method.encode() + uri.encode() + body).hexdigest()


def webhook_secrets() -> list[str]:
    """Return the secrets a delivery may be signed with; several while one is being rotated."""
    configured = settings.HUBSPOT_WEBHOOK_SECRET or settings.HUBSPOT_CLIENT_SECRET
    return [secret.strip() for secret in configured.split(",") if secret.strip()]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _matches(expected: list[str], signature: str) -> bool:
    given = signature.encode()
    # Compare against every secret so the time taken does not tell which one matched.
    results = [hmac.compare_digest(candidate.encode(), given) for candidate in expected]
    return any(results)


def _present_ids(payload: dict, *names: str) -> set[str]:
    """Return the ids in the named fields that are present; raise WebhookPayloadError for a bad one."""
    return {positive_id(payload[name], name) for name in names if payload.get(name) not in (None, "")}


def handle_contact_change(payload: dict, hints: WebhookHints) -> None:
    hints.remote_ids.add(positive_id(payload.get("objectId"), "objectId"))


def handle_contact_merge(payload: dict, hints: WebhookHints) -> None:
    merged = payload.get("mergedObjectIds")
    if merged is None:
        merged = []
    if not isinstance(merged, list):
        raise WebhookPayloadError(f"mergedObjectIds must be a list of ids, not {shown(merged)}.")
    # Reading a merged-away id returns the survivor listing it as merged, which re-points the link.
    # objectId and newObjectId are read too: harmless re-reads if they repeat the winner.
    hints.remote_ids |= _present_ids(payload, "primaryObjectId", "objectId", "newObjectId") | {
        positive_id(value, "mergedObjectIds[]") for value in merged
    }


def handle_contact_privacy_deletion(payload: dict, hints: WebhookHints) -> None:
    hints.purge_remote_ids.add(positive_id(payload.get("objectId"), "objectId"))


EVENT_TO_HANDLER: dict[str, Callable[[dict, WebhookHints], None]] = {
    "contact.creation": handle_contact_change,
    "contact.propertyChange": handle_contact_change,
    "contact.deletion": handle_contact_change,
    "contact.restore": handle_contact_change,
    "contact.merge": handle_contact_merge,
    "contact.privacyDeletion": handle_contact_privacy_deletion,
}


def payload_event_type(payload: dict):
    """Return the event's type as sent, checked by parse (real payloads say subscriptionType, the docs eventType)."""
    return payload.get("subscriptionType") or payload.get("eventType")


class HubspotWebhookHandler(WebhookHandler):
    def verify(self, request, *, connection=None) -> None:
        # HubSpot signs with the app's secret, the same for every connection: ``connection`` is unused.
        secrets = webhook_secrets()
        if not secrets:
            raise WebhookSignatureError(
                "No HubSpot webhook secret is configured (set HUBSPOT_WEBHOOK_SECRET or HUBSPOT_CLIENT_SECRET)."
            )
        uri = signature_uri(request.build_absolute_uri())
        if request.headers.get(SIGNATURE_V3_HEADER):
            self._verify_v3(request, uri, secrets)
        elif request.headers.get(SIGNATURE_VERSION_HEADER) == "v2" and request.headers.get(SIGNATURE_HEADER):
            if not settings.HUBSPOT_ACCEPT_V2_SIGNATURE:
                raise WebhookSignatureError(
                    "v2 signatures are not accepted (HUBSPOT_ACCEPT_V2_SIGNATURE is off); use v3."
                )
            expected = [
                signature_v2(secret=secret, method=request.method, uri=uri, body=request.body) for secret in secrets
            ]
            if not _matches(expected, request.headers[SIGNATURE_HEADER]):
                raise WebhookSignatureError("The v2 signature does not match the request.")
        else:
            raise WebhookSignatureError(f"The {SIGNATURE_V3_HEADER} header is missing.")

    def _verify_v3(self, request, uri: str, secrets: list[str]) -> None:
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        try:
            age = _now_ms() - int(timestamp)
        except ValueError:
            raise WebhookSignatureError(f"The {TIMESTAMP_HEADER} header is missing or not a number.") from None
        window = settings.WEBHOOK_REPLAY_WINDOW
        if age > window:
            raise WebhookSignatureError(f"The request timestamp is {age} ms old, beyond the {window} ms window.")
        if -age > window:
            raise WebhookSignatureError(f"The request timestamp is {-age} ms in the future (check the clock).")
        expected = [
            signature_v3(secret=secret, method=request.method, uri=uri, body=request.body, timestamp=timestamp)
            for secret in secrets
        ]
        if not _matches(expected, request.headers[SIGNATURE_V3_HEADER]):
            raise WebhookSignatureError("The v3 signature does not match the request (method, URL, body, timestamp).")

    def parse(self, body: bytes) -> list[WebhookNotice]:
        try:
            events = json.loads(body)
        except (ValueError, RecursionError):
            raise WebhookPayloadError("The body is not valid JSON.") from None
        if not isinstance(events, list):
            raise WebhookPayloadError("The body must be a JSON array of events.")
        return [self._notice(index, event) for index, event in enumerate(events)]

    def _notice(self, index: int, event) -> WebhookNotice:
        identity = event
        if isinstance(event, dict):
            identity = [{**event, "subscriptionType": payload_event_type(event)}.get(name) for name in DEDUPE_FIELDS]
        key = f"hubspot:{hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()}"
        account_id = kind = ""
        try:
            if not isinstance(event, dict):
                raise WebhookPayloadError("it is not a JSON object.")
            account_id = positive_id(event.get("portalId"), "portalId")
            kind = event_name(payload_event_type(event), "subscriptionType")
            self.hints([event])
        except WebhookPayloadError as exc:
            return WebhookNotice(key, account_id, kind, event, rejected=f"Event {index}: {exc}")
        return WebhookNotice(dedupe_key=key, account_id=account_id, event_type=kind, payload=event)

    def hints(self, payloads: list[dict]) -> WebhookHints:
        hints = WebhookHints()
        for payload in payloads:
            kind = payload_event_type(payload) if isinstance(payload, dict) else None
            handler = EVENT_TO_HANDLER.get(kind) if isinstance(kind, str) else None
            if handler:
                handler(payload, hints)
        return hints

    def handles(self, event_type: str) -> bool:
        return event_type in EVENT_TO_HANDLER
