"""Turns a form posted from a page of another tenant into a clear page instead of an error."""

from django.shortcuts import render

from syncapp.exceptions import StaleTenantPage


class StaleTenantPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, StaleTenantPage):
            return render(request, "syncapp/stale_tenant.html", {"message": str(exception)}, status=409)
        return None
