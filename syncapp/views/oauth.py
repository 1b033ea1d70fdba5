"""Connect a CRM through its OAuth 2.0 authorization-code flow: start, then the provider's callback.

Starting is a POST (CSRF-protected) because the form may carry ``api_base``, a base-URL override that
receives the authorization code and the client credentials: a cross-site link must not be able to set it.
"""

import logging
import secrets

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from syncapp.exceptions import OAuthError, SyncError, ValidationError
from syncapp.models import CrmConnection, Tenant
from syncapp.providers.base.oauth import OAuthConfig, oauth_authorization_url, oauth_state_load
from syncapp.services.connections import api_base_override_allowed, api_base_validate
from syncapp.services.oauth import oauth_adapter, oauth_connection_complete
from syncapp.views.connect import OVERRIDE_REFUSED
from syncapp.views.tenancy import current_tenant

logger = logging.getLogger(__name__)

TEMPLATE = "syncapp/oauth_result.html"
# The nonces of the flows this browser session started and has not finished: a state is accepted once,
# and only in the session that asked for it (RFC 6749, section 10.12).
SESSION_NONCES = "syncapp_oauth_nonces"
PENDING_FLOWS = 5  # per session; starting a sixth forgets the oldest


@login_required
@require_POST
def oauth_start(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Send the user to the provider to grant access for one of their tenants.

    The tenant is the current one of the session, as on every page (see ``views.tenancy``). Form field
    (or query parameter): ``api_base`` (a sandbox base URL; staff only, where CRM_API_BASE_OVERRIDE is on).
    """
    config = _config(provider_id)
    tenant = current_tenant(request)
    api_base = (request.POST.get("api_base") or request.GET.get("api_base", "")).strip()

    if api_base:
        if not api_base_override_allowed(request.user):
            return _result(request, provider_id, error=OVERRIDE_REFUSED, status=403)
        try:
            api_base = api_base_validate(api_base, provider=provider_id)
        except ValidationError as exc:
            return _result(request, provider_id, error=str(exc), status=400)

    nonce = secrets.token_urlsafe(16)
    try:
        url = oauth_authorization_url(
            config=config,
            tenant_id=tenant.pk,
            redirect_uri=_redirect_uri(provider_id),
            api_base_url=api_base,
            nonce=nonce,
        )
    except SyncError as exc:
        return _result(request, provider_id, error=str(exc), status=400)
    request.session[SESSION_NONCES] = [*request.session.get(SESSION_NONCES, []), nonce][-PENDING_FLOWS:]
    return HttpResponseRedirect(url)


@sensitive_variables("code")
@login_required
@require_GET
def oauth_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Finish the flow the provider redirected back from, and show what was connected or what failed."""
    _config(provider_id)
    # The state is checked before anything else, including the provider's error, so a forged link
    # cannot put its own text on this page.
    try:
        state = oauth_state_load(state=request.GET.get("state", ""), provider_id=provider_id)
    except SyncError as exc:
        return _result(request, provider_id, error=str(exc), status=400)
    tenant = Tenant.objects.filter(pk=state["tenant_id"], membership__user=request.user).first()
    if tenant is None:
        logger.warning(
            "OAuth callback for %s refused: user %s is not in tenant %s",
            provider_id,
            request.user.pk,
            state["tenant_id"],
        )
        return _result(
            request,
            provider_id,
            error="This authorization was started for a tenant you are not a member of.",
            status=403,
        )

    pending = request.session.get(SESSION_NONCES, [])
    if state.get("nonce") not in pending:
        return _result(
            request,
            provider_id,
            error="This authorization was not started in this browser session, or it was already used. "
            "Please start again.",
            status=400,
        )
    request.session[SESSION_NONCES] = [nonce for nonce in pending if nonce != state["nonce"]]
    # Saved now: a crash below answers 500, and the session middleware would not save it then.
    request.session.save()

    error = request.GET.get("error", "")
    if error:
        description = request.GET.get("error_description", "")
        return _result(
            request, provider_id, error=f"{provider_id} did not grant access: {description or error}", status=400
        )
    code = request.GET.get("code", "")
    if not code:
        return _result(request, provider_id, error="The provider sent no authorization code.", status=400)

    try:
        connection = oauth_connection_complete(
            tenant=tenant,
            provider_id=provider_id,
            code=code,
            redirect_uri=_redirect_uri(provider_id),
            api_base_url=state["api_base_url"],
        )
    except SyncError as exc:
        logger.warning("OAuth connection for %s in tenant %s failed: %s", provider_id, tenant.pk, exc)
        return _result(request, provider_id, error=str(exc), status=400)
    logger.info("OAuth connected %s account %s to tenant %s", provider_id, connection.account_id, tenant.pk)
    return _result(request, provider_id, connection=connection)


def _config(provider_id: str) -> OAuthConfig:
    try:
        return oauth_adapter(provider_id).oauth
    except OAuthError:
        raise Http404(f"No OAuth provider '{provider_id}'.") from None


def _redirect_uri(provider_id: str) -> str:
    # Built from PUBLIC_BASE_URL, not the request's host: it must match the URL registered with the app.
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("syncapp:oauth-callback", args=[provider_id])


def _result(
    request: HttpRequest,
    provider_id: str,
    *,
    connection: CrmConnection | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {"provider_id": provider_id, "connection": connection, "error": error}
    return render(request, TEMPLATE, context, status=status)
