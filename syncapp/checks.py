"""System checks run at start-up by every management command and the web server."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from syncapp.engine import STRATEGIES


@register()
def mongodb_not_supported(app_configs, **kwargs):
    if not settings.MONGODB_URI:
        return []
    return [
        Warning(
            "MONGODB_URI is set but MongoDB is not supported; contactsync stores its data through "
            "DATABASE_URL (SQLite or PostgreSQL).",
            hint="See docs/decisions.md (why not djongo) and unset MONGODB_URI.",
            id="syncapp.W001",
        )
    ]


@register()
def conflict_strategy_known(app_configs, **kwargs):

    if settings.CONFLICT_RESOLUTION_STRATEGY in STRATEGIES:
        return []
    return [
        Error(
            f"CONFLICT_RESOLUTION_STRATEGY is '{settings.CONFLICT_RESOLUTION_STRATEGY}'.",
            hint=f"Use one of: {', '.join(STRATEGIES)}.",
            id="syncapp.E001",
        )
    ]
