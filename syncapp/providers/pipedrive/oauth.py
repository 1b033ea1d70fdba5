"""Pipedrive's OAuth 2.0 app: endpoints, and the company behind a token."""

from django.views.decorators.debug import sensitive_variables

from syncapp.exceptions import OAuthError
from syncapp.providers.base.client import crm_get_json
from syncapp.providers.base.oauth import SECRETS, OAuthConfig

DEFAULT_API_BASE_URL = "https://api.pipedrive.com"

PIPEDRIVE_OAUTH = OAuthConfig(
    provider_id="pipedrive",
    authorize_url="https://oauth.pipedrive.com/oauth/authorize",
    token_url="https://oauth.pipedrive.com/oauth/token",
    # Pipedrive takes scopes from the app's settings in the Developer Hub, not from the URL.
    scopes=(),
    client_id_setting="PIPEDRIVE_CLIENT_ID",
    client_secret_setting="PIPEDRIVE_CLIENT_SECRET",
    client_auth="basic",
)


@sensitive_variables(*SECRETS)
def pipedrive_company_id(*, access_token: str, api_domain: str, api_token: bool = False) -> str:
    """Return the id of the Pipedrive company a token belongs to (``GET /api/v1/users/me``).

    ``api_token``: the token is a personal API token, sent as ``x-api-token``, not an OAuth one.
    """
    base = (api_domain or DEFAULT_API_BASE_URL).rstrip("/")
    body = crm_get_json(
        url=f"{base}/api/v1/users/me",
        headers={"x-api-token": access_token} if api_token else {"Authorization": f"Bearer {access_token}"},
        provider_id="pipedrive",
        description="Looking up the Pipedrive company",
    )
    company_id = (body.get("data") or {}).get("company_id")
    if not company_id:
        raise OAuthError("Pipedrive's user information has no company_id.")
    return str(company_id)
