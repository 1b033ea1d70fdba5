"""Pipedrive webhooks (v2 payloads): HTTP Basic per connection, one event per delivery, person hints.

Pipedrive signs nothing: a delivery carries the Basic credentials given when the webhook was
registered (``setup_webhooks``), so deliveries come to a per-connection URL and are checked
against that connection's stored credentials. See https://pipedrive.readme.io/docs/guide-for-webhooks-v2
and ../shared/reference/pipedrive.md section 5.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging

from django.conf import settings

from syncapp.exceptions import CredentialsDecryptionError, WebhookPayloadError, WebhookSignatureError
from syncapp.providers.base.webhooks import (
    PASSWORD_KEY,
    USER_KEY,
    WebhookHandler,
    WebhookHints,
    WebhookNotice,
    event_name,
    positive_id,
)

logger = logging.getLogger(__name__)

# The user name that goes with PIPEDRIVE_WEBHOOK_SECRET, the optional credential shared by every connection.
SHARED_WEBHOOK_USER = "contactsync"

PERSON_ACTIONS = ("create", "change", "delete")
HANDLED_EVENT_TYPES = frozenset(f"person.{action}" for action in PERSON_ACTIONS)
REQUIRED_META = ("id", "action", "entity", "company_id")
# Where a person event may name its person, first found first: meta.entity_id, else the record's id.
ENTITY_ID_FIELDS = (("meta", "entity_id"), ("data", "id"), ("previous", "id"))
# Merges: the merged-away person's delete names the survivor, the survivor's change names the merged-away one.
MERGE_KEYS = ("merged_to_id", "merged_from_id")
MAX_DEDUPE_ID = 200


def webhook_credentials(connection) -> list[tuple[str, str]]:
    """Return the (user, password) pairs a delivery to ``connection`` may carry."""
    pairs = []
    if connection is not None:
        try:
            stored = connection.credentials
        except CredentialsDecryptionError:
            logger.error("connection %s: stored credentials cannot be decrypted", connection.pk)
            stored = {}
        user, password = stored.get(USER_KEY) or "", stored.get(PASSWORD_KEY) or ""
        if user and password:
            pairs.append((user, password))
    if settings.PIPEDRIVE_WEBHOOK_SECRET:
        pairs.append((SHARED_WEBHOOK_USER, settings.PIPEDRIVE_WEBHOOK_SECRET))
    return pairs


def basic_credentials(header: str) -> tuple[str, str]:
    """Return (user, password) from an ``Authorization: Basic`` header, or raise WebhookSignatureError."""
    if not header:
        raise WebhookSignatureError("The Authorization header is missing.")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise WebhookSignatureError("The Authorization header is not HTTP Basic.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise WebhookSignatureError("The Basic credentials are not valid base64 UTF-8.") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise WebhookSignatureError("The Basic credentials lack the user:password separator.")
    return user, password


def _matches(candidates: list[tuple[str, str]], user: str, password: str) -> bool:
    given_user, given_password = user.encode(), password.encode()
    results = []
    for expected_user, expected_password in candidates:
        # Both parts are always compared, and every candidate, so timing tells nothing about which failed.
        user_ok = hmac.compare_digest(expected_user.encode(), given_user)
        password_ok = hmac.compare_digest(expected_password.encode(), given_password)
        results.append(user_ok & password_ok)
    return any(results)


def _section(payload: dict, name: str) -> dict:
    value = payload.get(name)
    return value if isinstance(value, dict) else {}


def payload_event_type(payload: dict) -> str:
    meta = _section(payload, "meta")
    return f"{meta.get('entity', '')}.{meta.get('action', '')}"


def payload_person_ids(payload: dict) -> set[str]:
    """Return the person ids a stored person event names: the entity, and both sides of a merge.

    Raises WebhookPayloadError when one of them is not an id.
    """
    sections = {name: _section(payload, name) for name in ("meta", "data", "previous")}
    named = [(f"{section}.{key}", sections[section].get(key)) for section, key in ENTITY_ID_FIELDS]
    entity = next(((where, value) for where, value in named if value not in (None, "")), None)
    merges = [(f"{section}.{key}", sections[section].get(key)) for section in sections for key in MERGE_KEYS]
    named = ([entity] if entity else []) + [(where, value) for where, value in merges if value not in (None, "")]
    return {positive_id(value, where) for where, value in named}


class PipedriveWebhookHandler(WebhookHandler):
    def verify(self, request, *, connection=None) -> None:
        if connection is None:
            raise WebhookSignatureError(
                "Pipedrive deliveries must use the connection's URL, /webhooks/pipedrive/<connection key>/."
            )
        candidates = webhook_credentials(connection)
        if not candidates:
            raise WebhookSignatureError(
                "No webhook credentials are stored for this connection (run setup_webhooks) "
                "and PIPEDRIVE_WEBHOOK_SECRET is not set."
            )
        user, password = basic_credentials(request.headers.get("Authorization", ""))
        if not _matches(candidates, user, password):
            raise WebhookSignatureError("The Basic credentials do not match this connection's webhook credentials.")

    def parse(self, body: bytes) -> list[WebhookNotice]:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise WebhookPayloadError("The body is not valid JSON.") from None
        if not isinstance(payload, dict):
            raise WebhookPayloadError("The body must be a JSON object.")
        meta = payload.get("meta")
        if not isinstance(meta, dict):
            raise WebhookPayloadError("The body lacks the meta object of a v2 webhook.")
        if "v" in payload or "object" in meta:
            raise WebhookPayloadError("This is a webhooks v1 payload; register the webhook with version 2.0.")
        event_id = meta.get("id")
        if event_id in (None, "") or not isinstance(event_id, (str, int)) or isinstance(event_id, bool):
            raise WebhookPayloadError("The meta object lacks id, the event id every retry repeats.")
        # Retries resend the same meta.id (with another meta.attempt), so they share this key; an id
        # that is long or holds control characters is hashed to fit the column and the database.
        event_id = str(event_id)
        if len(event_id) > MAX_DEDUPE_ID or not event_id.isprintable():
            event_id = hashlib.sha256(event_id.encode(errors="surrogatepass")).hexdigest()
        account_id = event_type = rejected = ""
        try:
            missing = [name for name in REQUIRED_META if meta.get(name) in (None, "")]
            if missing:
                raise WebhookPayloadError(f"The meta object lacks {', '.join(missing)}.")
            account_id = positive_id(meta["company_id"], "meta.company_id")
            event_type = f"{event_name(meta['entity'], 'meta.entity')}.{event_name(meta['action'], 'meta.action')}"
            if event_type in HANDLED_EVENT_TYPES and not payload_person_ids(payload):
                raise WebhookPayloadError("The person event names no person (meta.entity_id).")
        except WebhookPayloadError as exc:
            rejected = str(exc)
        return [WebhookNotice(f"pipedrive:{event_id}", account_id, event_type, payload, rejected=rejected)]

    def hints(self, payloads: list[dict]) -> WebhookHints:
        # A re-read reconciles every action: a deleted person reads as gone, a merged-away one as merged.
        hints = WebhookHints()
        for payload in payloads:
            if isinstance(payload, dict) and payload_event_type(payload) in HANDLED_EVENT_TYPES:
                hints.remote_ids |= payload_person_ids(payload)
        return hints

    def handles(self, event_type: str) -> bool:
        return event_type in HANDLED_EVENT_TYPES
