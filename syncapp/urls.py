"""URLs of the syncapp application, included at the site root."""

from django.urls import path

from syncapp.urls_oauth import urlpatterns as oauth_urlpatterns
from syncapp.views.webhooks import provider_webhook

app_name = "syncapp"

urlpatterns = [
    path("webhooks/<slug:provider_id>/", provider_webhook, name="webhook"),
    path("webhooks/<slug:provider_id>/<str:connection_key>/", provider_webhook, name="webhook-connection"),
    *oauth_urlpatterns,
]
