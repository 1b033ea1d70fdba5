"""Settings for contactsync, read from the environment (and an optional .env file).

Every setting has a safe default so a fresh checkout starts with nothing configured;
docs/configuration.md describes each one.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEVELOPMENT_SECRET_KEY = "contactsync-development-only-secret-key-do-not-use-in-production"

# "development" (default) or "production"; production refuses unsafe defaults.
DJANGO_ENV = env.str("DJANGO_ENV", default="development")
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION)
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if IS_PRODUCTION and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "syncapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "contactsync.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "contactsync.wsgi.application"

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web process share one file: wait for locks instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# --- Sync engine -------------------------------------------------------------

SYNC_ENCRYPTION_KEY = env.str("SYNC_ENCRYPTION_KEY", default="")
if IS_PRODUCTION and not SYNC_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "SYNC_ENCRYPTION_KEY must be set when DJANGO_ENV=production: CRM tokens are encrypted with it."
    )

HUBSPOT_CLIENT_ID = env.str("HUBSPOT_CLIENT_ID", default="")
HUBSPOT_CLIENT_SECRET = env.str("HUBSPOT_CLIENT_SECRET", default="")
HUBSPOT_WEBHOOK_SECRET = env.str("HUBSPOT_WEBHOOK_SECRET", default="")
PIPEDRIVE_CLIENT_ID = env.str("PIPEDRIVE_CLIENT_ID", default="")
PIPEDRIVE_CLIENT_SECRET = env.str("PIPEDRIVE_CLIENT_SECRET", default="")
PIPEDRIVE_WEBHOOK_SECRET = env.str("PIPEDRIVE_WEBHOOK_SECRET", default="")

DEFAULT_SYNC_INTERVAL = env.int("DEFAULT_SYNC_INTERVAL", default=600_000)  # ms
MAX_RETRY_ATTEMPTS = env.int("MAX_RETRY_ATTEMPTS", default=3)
CONFLICT_RESOLUTION_STRATEGY = env.str("CONFLICT_RESOLUTION_STRATEGY", default="crm_wins")
WEBHOOK_REPLAY_WINDOW = env.int("WEBHOOK_REPLAY_WINDOW", default=300_000)  # ms
RATE_LIMIT_WINDOW = env.int("RATE_LIMIT_WINDOW", default=10_000)  # ms
MAX_CONCURRENT_SYNCS = env.int("MAX_CONCURRENT_SYNCS", default=4)
SYNC_BATCH_SIZE = env.int("SYNC_BATCH_SIZE", default=100)
# A sync holds its connection's lock for this long without renewing it; a killed worker's
# lock expires after it.
SYNC_LOCK_TTL = env.int("SYNC_LOCK_TTL", default=600)  # seconds

# Where CRMs reach this deployment (webhook URLs are printed and registered with it).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# Hosts a connection's API base URL may point at besides the CRMs' own (CrmAdapter.api_hosts): "host",
# "host:port" or ".domain" (its subdomains). Tokens and client secrets are sent there, so none by
# default; the CRM sandbox needs its loopback address (and port) listed.
CRM_API_ALLOWED_HOSTS = env.list("CRM_API_ALLOWED_HOSTS", default=[])
# Whether staff may give a base URL on the Connect page, the OAuth start and the admin (a sandbox).
CRM_API_BASE_OVERRIDE = env.bool("CRM_API_BASE_OVERRIDE", default=False)

# CRM adapters from elsewhere, or replacing a built-in one, by provider id (id -> dotted path). The
# built-in CRMs need no entry: each folder under syncapp/providers/ with an adapter.py is one.
SYNCAPP_PROVIDERS = env.dict("SYNCAPP_PROVIDERS", default={})

# Webhook deliveries larger than this are refused with 413 before anything is parsed.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# HubSpot's v2 signature (no timestamp, so replayable) is accepted only when an old app needs it.
HUBSPOT_ACCEPT_V2_SIGNATURE = env.bool("HUBSPOT_ACCEPT_V2_SIGNATURE", default=False)
# Requests per RATE_LIMIT_WINDOW per connection (HubSpot: 100 private app Free/Starter, 110 OAuth app,
# 190 Professional/Enterprise private app); a connection may override it (CrmConnection.rate_limit).
HUBSPOT_RATE_LIMIT = env.int("HUBSPOT_RATE_LIMIT", default=100)
HUBSPOT_SEARCH_RATE_PER_SECOND = env.int("HUBSPOT_SEARCH_RATE_PER_SECOND", default=5)
# How often the safety-net incremental pull runs for each HubSpot connection (ms; webhooks are the fast path).
HUBSPOT_POLL_INTERVAL = env.int("HUBSPOT_POLL_INTERVAL", default=3_600_000)
# Pipedrive burst limits per token per 2 seconds (Lite 20 / Growth 40 / Premium 100 / Ultimate 120 for API
# tokens, four times that for OAuth apps); search is 10 per 2 seconds on every plan.
PIPEDRIVE_RATE_LIMIT = env.int("PIPEDRIVE_RATE_LIMIT", default=20)
PIPEDRIVE_OAUTH_RATE_LIMIT = env.int("PIPEDRIVE_OAUTH_RATE_LIMIT", default=80)
PIPEDRIVE_SEARCH_RATE_LIMIT = env.int("PIPEDRIVE_SEARCH_RATE_LIMIT", default=10)
# Polls turn into a full listing this often (ms), so deletions are found where no webhook reports them.
FULL_SYNC_INTERVAL = env.int("FULL_SYNC_INTERVAL", default=86_400_000)

# Shared rate-limit buckets: Redis when REDIS_URL is set, else this SQLite file (one host, many processes).
RATE_LIMIT_DB_PATH = env.str("RATE_LIMIT_DB_PATH", default=str(BASE_DIR / "ratelimit.sqlite"))
HTTP_TIMEOUT = env.float("HTTP_TIMEOUT", default=30.0)  # seconds per CRM request
HTTP_RETRY_BASE_DELAY = env.float("HTTP_RETRY_BASE_DELAY", default=1.0)  # seconds; doubles per retry

# --- Task queue (django-q2) --------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "contactsync",
    "workers": MAX_CONCURRENT_SYNCS,
    "timeout": 900,
    "retry": 1200,
    "max_attempts": MAX_RETRY_ATTEMPTS,
    "catch_up": False,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Logging and errors --------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL},
        # At DEBUG these log token request bodies (client secrets) and tokens: never below INFO.
        "requests_oauthlib": {"level": "WARNING"},
        "oauthlib": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError as exc:
        raise ImproperlyConfigured("SENTRY_DSN is set but sentry-sdk is not installed: pip install sentry-sdk") from exc
    sentry_sdk.init(dsn=SENTRY_DSN, send_default_pii=False)

# Read only to warn that it is ignored (see docs/decisions.md).
MONGODB_URI = env.str("MONGODB_URI", default="")
