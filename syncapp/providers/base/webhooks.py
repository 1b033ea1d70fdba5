"""The webhook contract: verify a delivery, split it into notices, turn stored notices into sync hints.

A notification is a hint, not the truth: processing re-reads the records it names, so a handler
never maps payload values onto contacts. Required methods raise NotImplementedError naming
themselves; optional ones have a working default.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WebhookNotice:
    """One event of a verified delivery, ready to be stored.

    ``dedupe_key`` is the same for every delivery of the same event (at most 255 characters);
    ``account_id`` is the CRM account that sent it and routes it to a connection; ``payload`` is
    the event as the CRM sent it.
    """

    dedupe_key: str
    account_id: str
    event_type: str
    payload: dict


@dataclass
class WebhookHints:
    """What a batch of events asks the sync to do.

    ``remote_ids`` are records to read again and reconcile; ``purge_remote_ids`` are records whose
    personal data must be erased (privacy deletions), never read or restored.
    """

    remote_ids: set[str] = field(default_factory=set)
    purge_remote_ids: set[str] = field(default_factory=set)


class WebhookHandler:
    def verify(self, request, *, connection=None) -> None:
        """Check that ``request`` comes from the CRM, or raise WebhookSignatureError saying why.

        ``connection`` is the CrmConnection named by a per-connection URL (``None`` on the shared
        URL), for providers whose credentials are per connection.

        The reason is logged and returned to the caller, so it must never contain a secret or a
        signature.
        """
        raise NotImplementedError("subclasses of WebhookHandler must provide a verify() method")

    def parse(self, body: bytes) -> list[WebhookNotice]:
        """Split a verified body into notices, or raise WebhookPayloadError if it is malformed."""
        raise NotImplementedError("subclasses of WebhookHandler must provide a parse() method")

    def hints(self, payloads: list[dict]) -> WebhookHints:
        """Return the records that the stored ``payloads`` name: which to re-read, which to purge.

        Payloads of event types the handler does not know contribute nothing.
        """
        raise NotImplementedError("subclasses of WebhookHandler must provide a hints() method")

    def handles(self, event_type: str) -> bool:
        """Return whether events of ``event_type`` are processed; others are stored as ignored."""
        return True
