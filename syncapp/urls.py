"""URLs of the syncapp application, included at the site root."""

from django.urls import path

from syncapp.views import conflicts as conflict_views
from syncapp.views import contacts as contact_views
from syncapp.views.connect import connect_page, connect_token, connection_disconnect_view
from syncapp.views.oauth import oauth_callback, oauth_start
from syncapp.views.status import (
    connection_pronouns_setup,
    connection_status_poll,
    connection_sync_now,
    failing_record_retry,
    status_page,
)
from syncapp.views.tenancy import tenant_switch
from syncapp.views.webhooks import provider_webhook

app_name = "syncapp"

urlpatterns = [
    path("webhooks/<slug:provider_id>/", provider_webhook, name="webhook"),
    path("webhooks/<slug:provider_id>/<str:connection_key>/", provider_webhook, name="webhook-connection"),
    path("oauth/<slug:provider_id>/start/", oauth_start, name="oauth-start"),
    path("oauth/<slug:provider_id>/callback/", oauth_callback, name="oauth-callback"),
    path("connect/", connect_page, name="connect"),
    path("connect/token/", connect_token, name="connect-token"),
    path("connections/<int:connection_id>/disconnect/", connection_disconnect_view, name="connection-disconnect"),
    path("contacts/", contact_views.contact_list, name="contact-list"),
    path("contacts/new/", contact_views.contact_new, name="contact-new"),
    path("contacts/<int:contact_id>/", contact_views.contact_detail, name="contact-detail"),
    path("contacts/<int:contact_id>/edit/", contact_views.contact_edit, name="contact-edit"),
    path("contacts/<int:contact_id>/delete/", contact_views.contact_remove, name="contact-delete"),
    path("conflicts/", conflict_views.conflict_index, name="conflict-list"),
    path("conflicts/<int:conflict_id>/", conflict_views.conflict_detail, name="conflict-detail"),
    path("conflicts/<int:conflict_id>/restore/", conflict_views.conflict_restore_view, name="conflict-restore"),
    path("conflicts/<int:conflict_id>/pick/", conflict_views.conflict_pick_view, name="conflict-pick"),
    path(
        "conflicts/connections/<int:connection_id>/strategy/",
        conflict_views.connection_policy,
        name="connection-policy",
    ),
    path("", status_page, name="status"),
    path("tenant/switch/", tenant_switch, name="tenant-switch"),
    path("connections/<int:connection_id>/status.json", connection_status_poll, name="connection-status"),
    path("connections/<int:connection_id>/sync/", connection_sync_now, name="connection-sync"),
    path("connections/<int:connection_id>/pronouns/", connection_pronouns_setup, name="connection-pronouns"),
    path("connections/<int:connection_id>/failing/<int:link_id>/retry/", failing_record_retry, name="failing-retry"),
]
