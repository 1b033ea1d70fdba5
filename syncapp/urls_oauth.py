"""OAuth routes, meant to be included into the ``syncapp`` URL namespace (redirect URIs use its names)."""

from django.urls import path

from syncapp.views.oauth import oauth_callback, oauth_start

urlpatterns = [
    path("oauth/<slug:provider_id>/start/", oauth_start, name="oauth-start"),
    path("oauth/<slug:provider_id>/callback/", oauth_callback, name="oauth-callback"),
]
