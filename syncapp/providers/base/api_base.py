"""Where a connection's CRM calls may go: its API base URL, read the way the HTTP client reads it.

Tokens and client secrets are sent to this URL, so it is parsed with both ``urlsplit`` and urllib3's
``parse_url`` (what requests sends with) and refused unless both agree and it is plain: http(s), a
host, an optional port and a simple path. Hosts are compared in one canonical spelling, so an IP
address written in decimal, hex or as IPv4-mapped IPv6 cannot pass for another entry.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from syncapp.exceptions import ProviderNotConfiguredError, ValidationError

DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII without space, backslash, user info, query, fragment or percent-escapes.
_PLAIN_URL = re.compile(r"[A-Za-z0-9:/.\-_~\[\]]+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label like these makes resolvers read the name as an IPv4 address (127.1, 0x7f.1, 2130706433).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~\-]+")


class ApiBase(NamedTuple):
    scheme: str
    host: str  # canonical: lowercase name, or an IP address as ipaddress prints it
    port: int | None
    path: str  # "" or "/a/b", no trailing slash

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{host}{port}{self.path}"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]


def api_base_parse(url: str) -> ApiBase:
    """Return the checked parts of ``url``; ValidationError when it is not a plain http(s) base URL."""
    refused = ValidationError(
        "The API base URL must be a plain http(s) URL: a host, an optional port and a path of letters, digits "
        "and ._~- (no user, query, fragment, spaces, backslashes or %-escapes; a non-ASCII host in its xn-- form)."
    )
    if not isinstance(url, str) or not _PLAIN_URL.fullmatch(url):
        raise refused
    try:
        split = urlsplit(url)
        split_port = split.port
        sent = parse_url(url)
    except (ValueError, LocationParseError):
        raise refused from None
    scheme = split.scheme.lower()
    if scheme not in DEFAULT_PORTS or split.query or split.fragment or split.username is not None:
        raise refused
    host = _host_canonical(split.hostname or "")
    # The client must read the same host, port and path as this check did.
    sent_host = _host_canonical((sent.host or "").strip("[]"))
    if (sent.scheme, sent_host, sent.port, sent.path or "") != (scheme, host, split_port, split.path):
        raise refused
    segments = split.path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()  # one trailing slash
    if any(not _PATH_SEGMENT.fullmatch(segment) or segment in (".", "..") for segment in segments):
        raise refused
    if split_port == 0:
        raise refused
    return ApiBase(scheme, host, split_port, "".join(f"/{segment}" for segment in segments))


def api_base_validate(url: str, *, provider: str) -> str:
    """Return ``url`` rebuilt from its checked parts if a connection of ``provider`` may talk to it.

    Allowed are that CRM's own hosts (its adapter's ``api_hosts``) and those in CRM_API_ALLOWED_HOSTS:
    never another CRM's, so one adapter cannot widen where the others' tokens go. "" stays "" (the
    CRM's public API); anything else raises ValidationError.
    """
    if not url:
        return ""
    base = api_base_parse(url)
    if _host_listed(base, settings.CRM_API_ALLOWED_HOSTS):
        return base.url
    if not _host_listed(base, _crm_hosts(provider)):
        raise ValidationError(
            f"API base URL host '{base.host}' (port {base.effective_port}) is neither a host of the CRM "
            "nor in CRM_API_ALLOWED_HOSTS."
        )
    # The CRM itself is only ever spoken to over TLS: plain http would send its token in clear.
    if base.scheme != "https":
        raise ValidationError(f"API base URL '{base.url}' must use https to reach the CRM's own host.")
    return base.url


def api_base_is_crms_own(url: str, *, provider: str) -> bool:
    """Whether ``url`` (one already checked, or the URL a response came from) is on the CRM's own hosts.

    Only then may the answer's own words go into an error message people see: another server (a
    sandbox, or anything an operator allowed) could be an internal service read through this app.
    """
    try:
        split = urlsplit(url)
        scheme, host, port = split.scheme.lower(), _host_canonical(split.hostname or ""), split.port
    except (ValueError, ValidationError):
        return False
    return scheme in DEFAULT_PORTS and _host_listed(ApiBase(scheme, host, port, ""), _crm_hosts(provider))


def _crm_hosts(provider: str) -> tuple[str, ...]:
    # Imported here: the registry loads the adapters, which import this package.
    from syncapp.providers import get_adapter_class

    try:
        return tuple(get_adapter_class(provider).api_hosts)
    except ProviderNotConfiguredError:
        return ()


def _host_listed(base: ApiBase, entries) -> bool:
    """Match ``base`` against entries: ``host``, ``host:port``, ``[v6]:port`` or ``.domain`` (its subdomains)."""
    for entry in entries:
        entry = entry.strip().lower()
        if entry.startswith("."):
            if not _is_ip(base.host) and base.host.endswith(entry):
                return True
            continue
        try:
            if _is_ip(entry):  # a bare IPv6 address would not split into host and port
                host, port = _host_canonical(entry), None
            else:
                listed = urlsplit(f"//{entry}")
                host, port = _host_canonical(listed.hostname or ""), listed.port
        except (ValueError, ValidationError):
            continue  # a malformed entry allows nothing
        if host == base.host and (port is None or port == base.effective_port):
            return True
    return False


def _host_canonical(host: str) -> str:
    """Return ``host`` in the one spelling entries are compared in; ValidationError for any other spelling."""
    host = host.lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if not host or not all(_DNS_LABEL.fullmatch(label) for label in labels) or _NUMERIC_LABEL.fullmatch(labels[-1]):
            raise ValidationError(f"'{host}' is not a host name or an IP address in its usual form.") from None
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
