"""HTTP plumbing every CRM client shares: session, timeouts, shared rate limits, retries, errors.

Subclasses say how to authenticate, which rate limits a request counts against and how the CRM
words its errors; the retry loop, the single token refresh on a 401 and the error mapping live here.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from syncapp.exceptions import (
    OAuthError,
    ProviderAuthError,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
    ValidationError,
)
from syncapp.providers.base.api_base import api_base_is_crms_own, api_base_validate
from syncapp.providers.base.oauth import SECRETS, oauth_error_words, oauth_token_expiring
from syncapp.providers.base.ratelimit import rate_limit_wait

logger = logging.getLogger(__name__)


# Longer waits than this are not slept inside a request (they would outlive the sync's lock): the
# error ends the run and the outbox follow-up schedules the next try after the CRM's delay.
MAX_INLINE_WAIT = 30  # seconds
# How long a request may queue for the shared rate limit before the run gives up for now.
RATE_LIMIT_QUEUE_TIMEOUT = 30  # seconds


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientProviderError) and (exc.retry_after or 0) <= MAX_INLINE_WAIT


def _refused_before_acting(exc: BaseException) -> bool:
    # A 429 is answered before the CRM does anything, so even a request that must not be repeated
    # blindly (a create where duplicates are allowed) can be sent again.
    return isinstance(exc, RateLimitedError) and exc.status == 429 and _retryable(exc)


def _wait(retry_state: RetryCallState) -> float:
    """Wait what the CRM asked for, else exponential backoff with jitter."""
    exc = retry_state.outcome.exception()
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return retry_after
    base = settings.HTTP_RETRY_BASE_DELAY
    return wait_exponential_jitter(multiplier=base, max=base * 30, jitter=base)(retry_state)


def crm_retrying(*, idempotent: bool = True) -> Retrying:
    """The retry policy of every CRM request: TransientProviderErrors, with backoff or the CRM's Retry-After."""
    return Retrying(
        retry=retry_if_exception(_retryable if idempotent else _refused_before_acting),
        stop=stop_after_attempt(settings.HTTP_RETRY_ATTEMPTS + 1),
        wait=_wait,
        sleep=lambda seconds: _sleep(seconds),
        reraise=True,
    )


@sensitive_variables(*SECRETS)
def crm_get_json(*, url: str, description: str, provider_id: str, headers: dict[str, str] | None = None) -> dict:
    """GET a JSON document outside a connection (the account behind a token); failures raise OAuthError.

    429, 5xx, timeouts and dropped connections are retried like any CRM request. ``description``
    names the call in messages instead of ``url``, which may contain a token. The answer's own words
    are in the message only when ``url`` is one of ``provider_id``'s own hosts.
    """
    try:
        response = crm_retrying()(_lookup_get, url, headers or {}, description, provider_id)
    except TransientProviderError as exc:
        raise OAuthError(str(exc)) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OAuthError(f"{description} returned a response that is not a JSON object.")
    return body


@sensitive_variables(*SECRETS)
def _lookup_get(url: str, headers: dict[str, str], description: str, provider_id: str) -> requests.Response:
    try:
        # A redirect is not followed: the token in the headers would go to a host nobody checked.
        response = requests.get(url, headers=headers, timeout=settings.HTTP_TIMEOUT, allow_redirects=False)
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TransientProviderError(f"{description} failed: {type(exc).__name__}.") from None
    except requests.RequestException as exc:
        raise OAuthError(f"{description} failed: {type(exc).__name__}.") from None
    if response.is_redirect:
        raise OAuthError(f"{description} failed: answered a redirect ({response.status_code}), not followed.")
    if response.status_code < 400:
        return response
    message = f"{description} failed ({response.status_code}){oauth_error_words(response, provider_id)}"
    if response.status_code == 429:
        raise RateLimitedError(message, retry_after=_retry_after(response))
    if response.status_code >= 500:
        raise TransientProviderError(message, status=response.status_code)
    raise OAuthError(message)


class CrmClient:
    default_base_url = ""
    name = "CRM"

    def __init__(self, *, connection):
        self.connection = connection
        self.session = requests.Session()
        self.calls = 0
        self._base_url = None
        # Whether a failed response's own words may go into error messages, which people see.
        self.shows_remote_words = True

    @property
    def base_url(self) -> str:
        """The connection's API base URL (else the CRM's), checked again at first use.

        A row stored before the check existed, or edited outside the services, must not send the
        token elsewhere: such a connection fails with an error that asks for attention.
        """
        if self._base_url is None:
            stored, provider = self.connection.api_base_url, self.connection.provider
            try:
                self._base_url = api_base_validate(stored, provider=provider) or self.default_base_url
            except ValidationError as exc:
                raise ProviderAuthError(f"{self.name}: the connection's API base URL is refused: {exc}") from None
            self.shows_remote_words = not stored or api_base_is_crms_own(stored, provider=provider)
        return self._base_url

    # Hooks for subclasses ---------------------------------------------------------

    def token_headers(self, credentials: dict) -> dict[str, str]:
        """Return the headers that authenticate a request with these (fresh) credentials."""
        raise NotImplementedError("subclasses of CrmClient must provide a token_headers() method")

    def auth_headers(self) -> dict[str, str]:
        credentials = self.connection.credentials
        # OAuth credentials carry a refresh token: renew them shortly before they expire.
        if credentials.get("refresh_token") and oauth_token_expiring(credentials):
            credentials = self._refresh()
        return self.token_headers(credentials)

    def refresh_auth(self) -> bool:
        """Renew OAuth credentials after a 401; return True when a retry may now succeed."""
        if not self.connection.credentials.get("refresh_token"):
            return False
        self._refresh()
        return True

    def _refresh(self) -> dict:
        # The refreshed token is saved on the connection; services import providers, hence imported here.
        from syncapp.services.oauth import connection_credentials_refresh

        try:
            return connection_credentials_refresh(connection=self.connection)
        except OAuthError as exc:
            # A refused refresh means the app was uninstalled or the grant revoked: reconnect.
            raise ProviderAuthError(f"{self.name} refused to refresh the access token: {exc}", status=401) from exc

    def rate_limits(self, method: str, path: str) -> list[tuple[str, int, int]]:
        """Return the (bucket key, limit, interval ms) buckets one request spends from."""
        return []

    def error_for(self, response: requests.Response) -> ProviderError:
        """Return the exception for a failed response, worded with the CRM's own message."""
        message = f"{self.name} answered {response.status_code}: {response.text[:500]}"
        if response.status_code == 429:
            return RateLimitedError(message, retry_after=_retry_after(response))
        if response.status_code >= 500:
            return TransientProviderError(message, status=response.status_code)
        if response.status_code in (401, 403):
            return ProviderAuthError(message, status=response.status_code)
        return ProviderError(message, status=response.status_code)

    # The request loop -----------------------------------------------------------------

    def request(
        self, method: str, path: str, *, ok_statuses=(), idempotent: bool = True, **kwargs
    ) -> requests.Response:
        """Send a request, retrying 429, 5xx, timeouts and dropped connections with backoff.

        Statuses in ``ok_statuses`` (for example 207) are returned instead of raised. 4xx answers
        other than 429 are not retried, nor are waits longer than MAX_INLINE_WAIT: the error, with
        the CRM's message, goes to the caller. A non-idempotent request (a create where the CRM allows
        duplicates) is resent only after a 429, which the CRM answers before acting; after any other
        failure the caller looks the record up before trying again.
        """
        return crm_retrying(idempotent=idempotent)(self._send, method, path, ok_statuses=ok_statuses, **kwargs)

    def _send(self, method: str, path: str, *, ok_statuses=(), refreshed=False, **kwargs) -> requests.Response:
        for key, limit, interval_ms in self.rate_limits(method, path):
            if not rate_limit_wait(key=key, limit=limit, interval_ms=interval_ms, timeout=RATE_LIMIT_QUEUE_TIMEOUT):
                raise RateLimitedError(
                    f"{self.name}: the shared rate limit ({key}) is busy; trying again later.",
                    retry_after=interval_ms / 1000 + MAX_INLINE_WAIT,
                )
        url = self._url(path)
        try:
            # Never followed: requests would resend the token headers (all but Authorization) to any host.
            response = self.session.request(
                method, url, headers=self.auth_headers(), timeout=settings.HTTP_TIMEOUT, allow_redirects=False, **kwargs
            )
        except requests.Timeout as exc:
            raise TransientProviderError(f"{self.name}: {method} {path} timed out") from exc
        except requests.ConnectionError as exc:
            raise TransientProviderError(f"{self.name}: {method} {path} failed to connect: {exc}") from exc
        finally:
            self.calls += 1
        if response.status_code == 401 and not refreshed and self.refresh_auth():
            return self._send(method, path, ok_statuses=ok_statuses, refreshed=True, **kwargs)
        if response.is_redirect:
            raise ProviderError(
                f"{self.name}: {method} {path} answered a redirect ({response.status_code}), not followed."
            )
        if response.ok or response.status_code in ok_statuses:
            return response
        error = self.error_for(response)
        if not self.shows_remote_words:
            # Another server than the CRM (an overridden base URL): its answer is not repeated to people.
            error.args = (f"{self.name} answered {response.status_code}.",)
        logger.info("%s %s %s -> %s", self.name, method, path, response.status_code)
        raise error

    def _url(self, path: str) -> str:
        # Paths carry ids from CRM data and webhooks: escaped, an id cannot start a query or a fragment,
        # and a dot segment (which the HTTP client would resolve) cannot climb out of its endpoint.
        if not path.startswith("/") or any(segment in (".", "..") for segment in path.split("/")):
            raise ProviderError(f"{self.name}: refused to request {path!r}, which leaves its API endpoint.")
        return self.base_url + quote(path, safe="/")


def response_json(response: requests.Response) -> dict:
    """Return a response's JSON object, or {} for anything else (an HTML error page, say)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0) if value is not None else None
    except ValueError:
        return None
