"""The webhook endpoint every provider shares: check the size, verify, parse, store, queue, answer."""

import logging
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from syncapp.exceptions import ProviderNotConfiguredError, WebhookPayloadError, WebhookSignatureError
from syncapp.providers import get_webhook_handler, provider_ids
from syncapp.selectors.connections import connection_by_webhook_key
from syncapp.services.webhooks import webhook_event_record, webhook_rejection_count

logger = logging.getLogger(__name__)

WEBHOOK_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _refuse(request, provider_id: str, status: int, reason: str) -> JsonResponse:
    # The reasons come from our own messages, which never quote a secret or a signature.
    logger.warning(
        "%s webhook refused with %s from %s: %s", provider_id, status, request.META.get("REMOTE_ADDR"), reason
    )
    if provider_id in provider_ids():  # an unknown slug in the URL must not create rows at will
        webhook_rejection_count(provider=provider_id, status_code=status, reason=reason)
    return JsonResponse({"error": reason}, status=status)


def _declared_length(request) -> int:
    try:
        return int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return 0


@csrf_exempt
@require_POST
def provider_webhook(request, provider_id: str, connection_key: str | None = None) -> JsonResponse:
    """Store a verified delivery in the inbox and queue its processing; answer before any sync runs."""
    try:
        handler = get_webhook_handler(provider_id)
    except ProviderNotConfiguredError:
        # The exception's text names source files and settings: nothing for whoever posted here.
        return _refuse(request, provider_id, 404, "Unknown provider.")
    connection = None
    if connection_key is not None:
        # Keys are token_urlsafe strings; anything else (a NUL, which PostgreSQL refuses) names no connection.
        if not WEBHOOK_KEY.fullmatch(connection_key):
            return _refuse(request, provider_id, 404, "Unknown connection key.")
        connection = connection_by_webhook_key(provider=provider_id, webhook_key=connection_key)
        if connection is None:
            return _refuse(request, provider_id, 404, "Unknown connection key.")

    limit = settings.WEBHOOK_MAX_BODY_BYTES
    too_big = f"The body is larger than {limit} bytes."
    if _declared_length(request) > limit:
        return _refuse(request, provider_id, 413, too_big)
    try:
        body = request.body
    except RequestDataTooBig:
        return _refuse(request, provider_id, 413, too_big)
    if len(body) > limit:
        return _refuse(request, provider_id, 413, too_big)

    try:
        handler.verify(request, connection=connection)
    except WebhookSignatureError as exc:
        return _refuse(request, provider_id, 401, str(exc))
    try:
        notices = handler.parse(body)
    except WebhookPayloadError as exc:
        return _refuse(request, provider_id, 400, str(exc))

    events = webhook_event_record(provider=provider_id, notices=notices, connection=connection)
    return JsonResponse({"received": len(notices), "duplicates": len(notices) - len(events)})
