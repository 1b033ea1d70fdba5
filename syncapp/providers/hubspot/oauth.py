"""HubSpot's OAuth 2.0 app: endpoints, scopes, and the portal behind a token."""

from urllib.parse import quote

from django.views.decorators.debug import sensitive_variables

from syncapp.exceptions import OAuthError
from syncapp.providers.base.client import crm_get_json
from syncapp.providers.base.oauth import SECRETS, OAuthConfig

DEFAULT_API_BASE_URL = "https://api.hubapi.com"

HUBSPOT_OAUTH = OAuthConfig(
    provider_id="hubspot",
    authorize_url="https://app.hubspot.com/oauth/authorize",
    token_url="https://api.hubapi.com/oauth/v1/token",
    scopes=(
        "crm.objects.contacts.read",
        "crm.objects.contacts.write",
        "crm.schemas.contacts.read",
        "crm.schemas.contacts.write",
    ),
    client_id_setting="HUBSPOT_CLIENT_ID",
    client_secret_setting="HUBSPOT_CLIENT_SECRET",
    client_auth="body",
)


@sensitive_variables(*SECRETS)
def hubspot_token_portal_id(*, token: str, api_base_url: str) -> str:
    """Return the id of the HubSpot portal a private-app token opens (``GET /account-info/v3/details``).

    The OAuth token lookup below does not know private-app tokens; the account details do.
    """
    base = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
    data = crm_get_json(
        url=f"{base}/account-info/v3/details",
        headers={"Authorization": f"Bearer {token}"},
        provider_id="hubspot",
        description="Looking up the HubSpot portal of this token",
    )
    if not data.get("portalId"):
        raise OAuthError("HubSpot's account details have no portalId.")
    return str(data["portalId"])


@sensitive_variables(*SECRETS)
def hubspot_portal_id(*, access_token: str, api_base_url: str) -> str:
    """Return the id of the HubSpot portal (``hub_id``) an access token belongs to."""
    base = (api_base_url or DEFAULT_API_BASE_URL).rstrip("/")
    data = crm_get_json(
        url=f"{base}/oauth/v1/access-tokens/{quote(access_token, safe='')}",
        provider_id="hubspot",
        description="Looking up the HubSpot portal",
    )
    if not data.get("hub_id"):
        raise OAuthError("HubSpot's token information has no hub_id.")
    return str(data["hub_id"])
