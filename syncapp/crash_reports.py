"""Crash reports (the 500 e-mails to ADMINS, DEBUG pages) with secrets in query strings masked.

Django hides sensitive POST fields and local variables, but prints a request's query string as it
came: the OAuth callback's ``?code=`` would reach every admin's inbox.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import HttpRequest
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

SENSITIVE_QUERY_PARAMETERS = frozenset({"code", "token", "access_token", "refresh_token", "client_secret", "password"})
# Where a server puts the query string besides QUERY_STRING (gunicorn: RAW_URI; others: REQUEST_URI).
QUERY_CARRYING_META = ("QUERY_STRING", "RAW_URI", "REQUEST_URI")


def query_masked(url_or_query: str, substitute: str) -> str:
    """``url_or_query`` with the values of SENSITIVE_QUERY_PARAMETERS replaced by ``substitute``."""
    parts = urlsplit(url_or_query if "?" in url_or_query else "?" + url_or_query)
    pairs = [
        (name, substitute if name.lower() in SENSITIVE_QUERY_PARAMETERS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    masked = parts._replace(query=urlencode(pairs, safe="*"))
    return urlunsplit(masked) if "?" in url_or_query else masked.query


class QueryMaskingFilter(SafeExceptionReporterFilter):
    def cleanse_special_types(self, request, value):
        value = super().cleanse_special_types(request, value)
        if isinstance(value, HttpRequest):
            # A frame's ``request`` variable is shown by its repr, which holds the full path and query.
            path = query_masked(value.get_full_path(), self.cleansed_substitute)
            return f"<{type(value).__name__}: {value.method} {path!r}>"
        return value

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        for key in QUERY_CARRYING_META:
            if isinstance(meta.get(key), str):
                meta[key] = query_masked(meta[key], self.cleansed_substitute)
        return meta


class QueryMaskingExceptionReporter(ExceptionReporter):
    def get_traceback_data(self):
        data = super().get_traceback_data()
        if self.request is not None:
            substitute = self.filter.cleansed_substitute
            data["request_GET_items"] = [
                (name, substitute if name.lower() in SENSITIVE_QUERY_PARAMETERS else value)
                for name, value in self.request.GET.items()
            ]
            data["request_insecure_uri"] = query_masked(data["request_insecure_uri"], substitute)
        return data
