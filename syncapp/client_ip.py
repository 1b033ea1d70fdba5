"""The client's IP address, as login throttling (django-axes) counts it."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or behind ``TRUSTED_PROXY_COUNT`` proxies the X-Forwarded-For entry the outermost one added.

    Each proxy appends the address it received the request from, so the client's real address is the
    ``TRUSTED_PROXY_COUNT``-th entry from the right; entries left of it are whatever the client sent and are
    never trusted. A header too short or not an address (a proxy that does not append) falls back to REMOTE_ADDR.
    """
    remote_addr = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote_addr
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < count:
        return remote_addr
    try:
        return str(ipaddress.ip_address(forwarded[-count]))
    except ValueError:
        return remote_addr
