"""The client's IP address, as login throttling (django-axes) counts it."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or behind ``TRUSTED_PROXY_COUNT`` proxies the X-Forwarded-For entry the outermost one added.

    An IPv6 client is counted by its /64 network (one host usually holds a whole /64, so counting single
    addresses would let it guess without limit), and an IPv4-mapped address as the IPv4 address.

    Each proxy appends the address it received the request from, so the client's real address is the
    ``TRUSTED_PROXY_COUNT``-th entry from the right; entries left of it are whatever the client sent and are
    never trusted. A header too short or not an address (a proxy that does not append) falls back to REMOTE_ADDR.
    """
    remote_addr = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for candidate in ([forwarded[-count]] if 0 < count <= len(forwarded) else []) + [remote_addr]:
        try:
            address = ipaddress.ip_address(candidate or "")
        except ValueError:
            continue
        return _counted_as(address)
    return remote_addr


def _counted_as(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)
