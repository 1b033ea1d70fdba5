"""URLs of the syncapp application, included at the site root."""

from django.urls import path

from syncapp.views.oauth import oauth_callback, oauth_start
from syncapp.views.webhooks import provider_webhook

app_name = "syncapp"

urlpatterns = [
    path("webhooks/<slug:provider_id>/", provider_webhook, name="webhook"),
    path("webhooks/<slug:provider_id>/<str:connection_key>/", provider_webhook, name="webhook-connection"),
    path("oauth/<slug:provider_id>/start/", oauth_start, name="oauth-start"),
    path("oauth/<slug:provider_id>/callback/", oauth_callback, name="oauth-callback"),
]
