"""Connections made and kept alive through OAuth: completing the authorization and refreshing tokens."""

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from syncapp.exceptions import OAuthError, ProviderNotConfiguredError, ValidationError
from syncapp.models import CrmConnection, Tenant
from syncapp.providers import get_adapter_class, get_adapter_classes
from syncapp.providers.base.oauth import SECRETS, oauth_endpoint, oauth_exchange_code, oauth_refresh
from syncapp.services.connections import api_base_validate, connection_create
from syncapp.services.schedules import connection_schedule_update


def oauth_adapters() -> dict[str, type]:
    """Return the adapter class of every provider with an OAuth app (``CrmAdapter.oauth``), by id."""
    return {provider_id: cls for provider_id, cls in get_adapter_classes().items() if cls.oauth is not None}


def oauth_adapter(provider_id: str) -> type:
    """Return the adapter class of ``provider_id``; OAuthError if it has no OAuth app."""
    try:
        adapter_class = get_adapter_class(provider_id)
    except ProviderNotConfiguredError:
        adapter_class = None
    if adapter_class is None or adapter_class.oauth is None:
        choices = ", ".join(oauth_adapters())
        raise OAuthError(f"'{provider_id}' does not support OAuth; choose one of: {choices}.")
    return adapter_class


@sensitive_variables(*SECRETS, "credentials")
def oauth_connection_complete(
    *,
    tenant: Tenant,
    provider_id: str,
    code: str,
    redirect_uri: str,
    api_base_url: str = "",
) -> CrmConnection:
    """Exchange an authorization code and connect the CRM account it grants to ``tenant``.

    ``api_base_url`` is the override signed into the state (a sandbox); without one, Pipedrive's
    ``api_domain`` becomes the connection's base URL. Reconnecting an account this tenant already
    has replaces its credentials and makes it active again; an account another tenant has
    connected is refused.
    """
    adapter_class = oauth_adapter(provider_id)
    config = adapter_class.oauth
    api_base_url = api_base_validate(api_base_url, provider=provider_id)
    token_url = oauth_endpoint(config.token_url, api_base_url) if api_base_url else None
    credentials = oauth_exchange_code(config=config, code=code, redirect_uri=redirect_uri, token_url=token_url)
    if token_url:
        # Refreshes must go to the same (sandbox) token endpoint as the exchange did.
        credentials["token_url"] = token_url
    # Pipedrive's api_domain comes from the token response: checked like any base URL before the token goes there.
    base_url = api_base_validate(api_base_url or str(credentials.get("api_domain") or ""), provider=provider_id)
    account_id = adapter_class.oauth_account_id(access_token=credentials["access_token"], api_base_url=base_url)

    with transaction.atomic():
        existing = CrmConnection.objects.select_for_update().filter(provider=provider_id, account_id=account_id).first()
        if existing is None:
            return connection_create(
                tenant=tenant,
                provider=provider_id,
                account_id=account_id,
                credentials=credentials,
                api_base_url=base_url,
            )
        if existing.tenant_id != tenant.pk:
            # Do not say which tenant: that would leak another customer's name.
            raise ValidationError(f"This {provider_id} account ({account_id}) is already connected to another tenant.")
        existing.credentials = credentials
        existing.api_base_url = base_url
        existing.status = CrmConnection.Status.ACTIVE
        existing.status_message = ""
        existing.save(update_fields=["credentials_encrypted", "api_base_url", "status", "status_message", "updated_at"])
        connection_schedule_update(connection=existing)
        return existing


@sensitive_variables(*SECRETS, "current", "fresh", "credentials")
def connection_credentials_refresh(*, connection: CrmConnection) -> dict:
    """Refresh the connection's access token, save the new credentials and return them.

    Raise OAuthError when the connection has no refresh token or the provider refuses it.
    """
    config = oauth_adapter(connection.provider).oauth
    current = connection.credentials
    refresh_token = current.get("refresh_token")
    if not refresh_token:
        raise OAuthError(f"Connection {connection.pk} has no refresh token; reconnect it through OAuth.")
    # The client secret is posted to a stored token_url: checked again like the base URL it came from.
    try:
        token_url = api_base_validate(current.get("token_url") or "", provider=connection.provider) or None
    except ValidationError as exc:
        raise OAuthError(f"Connection {connection.pk}'s token endpoint is refused: {exc}") from None
    fresh = oauth_refresh(config=config, refresh_token=refresh_token, token_url=token_url)
    # Merge rather than replace: a provider may leave out the refresh token (keep the old one) and
    # fields set at connect time, such as token_url and api_domain, still apply.
    credentials = {**current, **fresh}
    connection.credentials = credentials
    connection.save(update_fields=["credentials_encrypted", "updated_at"])
    return credentials
