"""OAuth 2.0 authorization-code flow shared by every CRM, over requests-oauthlib's OAuth2Session.

A provider describes itself with an ``OAuthConfig``; these functions build the authorization URL
with a signed ``state``, exchange the code, refresh tokens and turn every failure into an
``OAuthError`` whose message can be shown to a person: it never carries the client secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Literal
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core import signing
from django.views.decorators.debug import sensitive_variables
from oauthlib.oauth2 import InsecureTransportError, OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from syncapp.exceptions import OAuthError
from syncapp.providers.base.api_base import api_base_is_crms_own

STATE_SALT = "contactsync.oauth"
# Local variables a crash report must not show (each function marks its own and its callees' frames).
SECRETS = ("code", "client_secret", "token", "refresh_token", "access_token", "auth_kwargs", "headers")


@dataclass(frozen=True)
class OAuthConfig:
    """How one CRM speaks OAuth 2.0. Settings are named, not read, so tests can override them."""

    provider_id: str
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_id_setting: str
    client_secret_setting: str
    # "body": client_id and client_secret in the form body (HubSpot); "basic": HTTP Basic (Pipedrive).
    client_auth: Literal["body", "basic"] = "body"


def oauth_endpoint(url: str, api_base_url: str = "") -> str:
    """Return ``url`` moved onto ``api_base_url`` (same path), or ``url`` itself when there is no override.

    A sandbox serves the provider's OAuth paths below its own base URL, so the override keeps the path.
    """
    if not api_base_url:
        return url
    return api_base_url.rstrip("/") + urlsplit(url).path


@sensitive_variables(*SECRETS)
def oauth_authorization_url(
    *, config: OAuthConfig, tenant_id: int, redirect_uri: str, api_base_url: str = "", nonce: str = ""
) -> str:
    """Return the provider URL that asks the user to grant access to ``tenant_id``.

    The ``state`` is signed and timestamped, so the callback can trust the tenant and base URL it
    names; ``nonce`` (a random one when empty) makes every state unique, and lets the caller tie it
    to the browser session that started the flow.
    """
    client_id, client_secret = _client_credentials(config)
    state = signing.dumps(
        {
            "tenant_id": tenant_id,
            "provider_id": config.provider_id,
            "api_base_url": api_base_url,
            "nonce": nonce or secrets.token_urlsafe(16),
        },
        salt=STATE_SALT,
    )
    session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=list(config.scopes) or None)
    authorize_url = oauth_endpoint(config.authorize_url, api_base_url)
    with _oauth_errors(config, client_secret, authorize_url):
        url, _ = session.authorization_url(authorize_url, state=state)
    return url


def oauth_state_load(*, state: str, provider_id: str, max_age: int = 600) -> dict:
    """Return the data signed into ``state``: tenant_id, provider_id, api_base_url and nonce.

    Raise OAuthError when the signature is wrong, the state is older than ``max_age`` seconds or
    it was issued for another provider.
    """
    try:
        data = signing.loads(state, salt=STATE_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise OAuthError("The authorization took too long and expired. Please start again.") from None
    except signing.BadSignature:
        raise OAuthError("The authorization response is not one this site started (invalid state).") from None
    if not isinstance(data, dict) or data.get("provider_id") != provider_id:
        raise OAuthError(f"The authorization response was not issued for {provider_id}.")
    return data


@sensitive_variables(*SECRETS)
def oauth_exchange_code(*, config: OAuthConfig, code: str, redirect_uri: str, token_url: str | None = None) -> dict:
    """Exchange an authorization code for tokens and return them as a credentials dict.

    ``token_url`` replaces the config's token endpoint (a sandbox). The result holds access_token,
    refresh_token, expires_at (epoch seconds), token_type and any extra fields (Pipedrive's api_domain).
    """
    client_id, client_secret = _client_credentials(config)
    session = _session(config, client_id, redirect_uri=redirect_uri)
    if config.client_auth == "basic":
        # Pipedrive wants the client credentials only in the Authorization header.
        auth_kwargs = {"auth": HTTPBasicAuth(client_id, client_secret), "include_client_id": False}
    else:
        auth_kwargs = {"include_client_id": True, "client_secret": client_secret}
    token_url = token_url or config.token_url
    with _oauth_errors(config, client_secret, token_url):
        token = session.fetch_token(token_url, code=code, timeout=settings.HTTP_TIMEOUT, **auth_kwargs)
    return _credentials_from_token(token)


@sensitive_variables(*SECRETS)
def oauth_refresh(*, config: OAuthConfig, refresh_token: str, token_url: str | None = None) -> dict:
    """Trade a refresh token for a new access token and return the credentials dict.

    When the provider sends no new refresh token, the one given is kept in the result.
    """
    client_id, client_secret = _client_credentials(config)
    session = _session(config, client_id)
    if config.client_auth == "basic":
        auth_kwargs = {"auth": HTTPBasicAuth(client_id, client_secret)}
    else:
        auth_kwargs = {"client_id": client_id, "client_secret": client_secret}
    token_url = token_url or config.token_url
    with _oauth_errors(config, client_secret, token_url):
        token = session.refresh_token(
            token_url,
            refresh_token=refresh_token,
            timeout=settings.HTTP_TIMEOUT,
            **auth_kwargs,
        )
    return _credentials_from_token(token)


def oauth_token_expiring(credentials: dict, *, margin: int = 300) -> bool:
    """Return True when the access token expires within ``margin`` seconds.

    Credentials without ``expires_at`` (private-app and API tokens) never expire.
    """
    expires_at = credentials.get("expires_at")
    if expires_at is None:
        return False
    return time.time() + margin >= float(expires_at)


# Helpers -----------------------------------------------------------------------------


def _client_credentials(config: OAuthConfig) -> tuple[str, str]:
    client_id = getattr(settings, config.client_id_setting, "")
    client_secret = getattr(settings, config.client_secret_setting, "")
    missing = [
        name
        for name, value in ((config.client_id_setting, client_id), (config.client_secret_setting, client_secret))
        if not value
    ]
    if missing:
        raise OAuthError(f"{config.provider_id} OAuth is not configured: set {' and '.join(missing)}.")
    return client_id, client_secret


def _session(config: OAuthConfig, client_id: str, *, redirect_uri: str | None = None) -> OAuth2Session:
    # No scope on the token session: Pipedrive answers with its own comma-separated scope string,
    # which oauthlib would otherwise report as a changed scope and raise on.
    session = OAuth2Session(client_id, redirect_uri=redirect_uri)
    # A redirect would resend the code, the refresh token and the client secret to an unchecked host.
    session.max_redirects = 0
    # oauthlib parses error bodies only in the RFC shape; checking the status first keeps
    # HubSpot's {"status", "message"} errors readable too.
    raise_for_status = partial(_raise_for_status, provider_id=config.provider_id)
    session.register_compliance_hook("access_token_response", raise_for_status)
    session.register_compliance_hook("refresh_token_response", raise_for_status)
    return session


def _raise_for_status(response: requests.Response, *, provider_id: str) -> requests.Response:
    if response.status_code >= 400:
        raise OAuthError(
            f"The token endpoint answered {response.status_code}{oauth_error_words(response, provider_id)}"
        )
    return response


@contextmanager
def _oauth_errors(config: OAuthConfig, client_secret: str, url: str) -> Iterator[None]:
    """Turn library and network failures into OAuthError, with the client secret scrubbed out.

    The words of a token response from ``url`` are kept only when it is one of the CRM's own hosts.
    """
    name = config.provider_id
    own = api_base_is_crms_own(url, provider=name)
    try:
        yield
    except OAuthError as exc:
        raise OAuthError(_scrub(f"{name}: {exc}", client_secret)) from None
    except InsecureTransportError:
        raise OAuthError(
            f"{name}: OAuth endpoints must use https (set OAUTHLIB_INSECURE_TRANSPORT=1 for a local sandbox)."
        ) from None
    except OAuth2Error as exc:
        words = f"{exc.error}: {exc.description or ''}".rstrip(": ") if own else "the token endpoint refused"
        raise OAuthError(_scrub(f"{name}: {words}", client_secret)) from None
    except requests.TooManyRedirects:
        raise OAuthError(f"{name}: the token endpoint answered a redirect, which is not followed.") from None
    except requests.RequestException as exc:
        raise OAuthError(f"{name}: the token endpoint could not be reached ({type(exc).__name__}).") from None
    except (ValueError, Warning) as exc:
        # oauthlib raises these for malformed token responses (bad expires_in, changed scope).
        words = f": {exc}" if own else ""
        raise OAuthError(_scrub(f"{name}: unusable token response{words}", client_secret)) from None


def oauth_error_words(response: requests.Response, provider_id: str) -> str:
    """Return ": " and the provider's own words for a failed response (RFC 6749, HubSpot and Pipedrive shapes).

    Empty for a host that is not the CRM's own (an overridden base URL): what another server says is
    not repeated to people, so a base URL cannot be used to read internal services.
    """
    if not api_base_is_crms_own(response.url, provider=provider_id):
        return "."
    return ": " + _provider_words(response)


def _provider_words(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("error", "error_description", "message") if body.get(key)]
        if parts:
            return ": ".join(parts)
    return response.text.strip()[:200] or response.reason or "no details"


def _scrub(message: str, client_secret: str) -> str:
    # Some servers echo the request back in their errors; the secret must never reach a page or a log.
    return message.replace(client_secret, "[redacted]") if client_secret else message


def _credentials_from_token(token: dict) -> dict:
    credentials = {key: value for key, value in token.items() if key not in ("expires_in", "expires_at")}
    # Stored credentials need an absolute time: expires_in means nothing once the response is gone.
    if token.get("expires_in") is not None:
        credentials["expires_at"] = int(time.time()) + int(token["expires_in"])
    elif token.get("expires_at") is not None:
        credentials["expires_at"] = int(token["expires_at"])
    return credentials
