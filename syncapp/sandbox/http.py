"""The sandbox's small HTTP vocabulary: a parsed request, a response, and errors that become responses."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

REDACTED = "[redacted]"
# Keys whose values the request log never shows (also any key ending in _secret or _token).
SECRET_KEYS = frozenset(
    {"client_secret", "refresh_token", "code", "access_token", "http_auth_password", "password", "token"}
)


def is_secret(key) -> bool:
    return isinstance(key, str) and (key in SECRET_KEYS or key.endswith(("_secret", "_token")))


def redact(data):
    """``data`` (parsed JSON, form fields) with the values of secret keys, at any depth, replaced."""
    if isinstance(data, dict):
        return {key: REDACTED if is_secret(key) else redact(value) for key, value in data.items()}
    if isinstance(data, list):
        return [redact(item) for item in data]
    return data


@dataclass
class Request:
    method: str
    path: str  # the real API's path, below the account's base URL
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    @classmethod
    def build(cls, *, method: str, path: str, query_string: str, headers: dict[str, str], body: bytes) -> Request:
        return cls(
            method=method.upper(),
            path=path,
            query=parse_qs(query_string, keep_blank_values=True),
            headers={name.lower(): value for name, value in headers.items()},
            body=body,
        )

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise ApiError(400, {"message": "The request body is not valid JSON."}) from None
        if not isinstance(data, dict):  # every endpoint of both CRMs and of the control API takes an object
            raise ApiError(400, {"message": "The request body must be a JSON object."})
        return data

    def log_body(self) -> tuple[str | None, object]:
        """("json" | "form" | "text" | None, the body) as the request log shows it, secret values redacted.

        JSON is parsed, a form-encoded body becomes a dict of its fields, anything else stays text.
        """
        if not self.body:
            return None, None
        try:
            return "json", redact(json.loads(self.body))
        except ValueError:
            pass
        text = self.body.decode("utf-8", "replace")
        try:
            fields = parse_qs(text, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            return "text", text
        return "form", redact({name: values[-1] for name, values in fields.items()})

    def log_query(self) -> dict[str, list[str]]:
        return {name: [REDACTED] * len(values) if is_secret(name) else values for name, values in self.query.items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (a fault)

    @classmethod
    def json(cls, status: int, data, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json;charset=utf-8", **(headers or {})},
        )


class ApiError(Exception):
    """Raised by a handler: answered with ``status`` and the provider's error ``body``."""

    def __init__(self, status: int, body, headers: dict[str, str] | None = None):
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> Response:
        if isinstance(self.body, str):
            return Response(status=self.status, body=self.body.encode(), headers={"Content-Type": "text/html"})
        return Response.json(self.status, self.body, self.headers)


@dataclass(frozen=True)
class Route:
    """One API operation: ``pattern`` uses ``{name}`` for a path segment; ``label`` names it in statistics."""

    method: str
    pattern: str
    handler: str
    cost: int = 0  # Pipedrive's x-token-cost

    @property
    def regex(self) -> re.Pattern:
        return _compile(self.pattern)

    @property
    def label(self) -> str:
        return f"{self.method} {self.pattern}"


@functools.cache
def _compile(pattern: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$")


@functools.cache
def _secret_params(pattern: str) -> tuple[str, ...]:
    return tuple(name for name in re.findall(r"\{(\w+)\}", pattern) if is_secret(name))


def mask_path(routes: list[Route], path: str) -> str:
    """``path`` with the segments a route names as secret (``{token}``) replaced, for logs."""
    for route in routes:
        secret = _secret_params(route.pattern)
        found = secret and route.regex.match(path)
        if found:
            for name in sorted(secret, key=found.start, reverse=True):
                path = path[: found.start(name)] + REDACTED + path[found.end(name) :]
            return path
    return path


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    allowed = False
    for route in routes:
        found = route.regex.match(path)
        if found:
            if route.method == method:
                return route, found.groupdict()
            allowed = True
    if allowed:
        raise ApiError(405, {"message": f"{method} is not allowed on {path}."})
    return None
