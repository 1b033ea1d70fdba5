"""URLs for the OAuth tests until syncapp/urls.py includes syncapp.urls_oauth."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include(("syncapp.urls_oauth", "syncapp"), namespace="syncapp")),
]
