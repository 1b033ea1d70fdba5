"""Settings for contactsync, read from the environment (and an optional .env file).

Every setting has a safe default so a fresh checkout starts with nothing configured;
docs/configuration.md describes each one.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEVELOPMENT_SECRET_KEY = "contactsync-development-only-secret-key-do-not-use-in-production"

# "development" (default) or "production"; production refuses unsafe defaults. Anything else is refused too, so a
# misspelt "prod" cannot quietly start with development settings.
DJANGO_ENVIRONMENTS = ("development", "production")
DJANGO_ENV = env.str("DJANGO_ENV", default="development").strip().lower()
if DJANGO_ENV not in DJANGO_ENVIRONMENTS:
    raise ImproperlyConfigured(f"DJANGO_ENV must be one of {', '.join(DJANGO_ENVIRONMENTS)}, not {DJANGO_ENV!r}.")
IS_PRODUCTION = DJANGO_ENV == "production"

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if IS_PRODUCTION and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")
# The same bar as Django's deploy check (security.W009), enforced: sessions, password resets and the OAuth state
# are signed with this key.
if IS_PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure-")):
    raise ImproperlyConfigured(
        "SECRET_KEY is too weak for DJANGO_ENV=production: use at least 50 random characters (at least 5 different "
        "ones, no 'django-insecure-' prefix), e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )

# HTTPS: on in production unless turned off explicitly (e.g. SECURE_SSL_REDIRECT=false when the proxy redirects).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=IS_PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=IS_PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=IS_PRODUCTION)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=IS_PRODUCTION)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=IS_PRODUCTION)
# Behind a TLS-terminating proxy, "HTTP_X_FORWARDED_PROTO,https": the header the proxy sets (and overwrites).
_proxy_ssl_header = [part.strip() for part in env.list("SECURE_PROXY_SSL_HEADER", default=[])]
if _proxy_ssl_header and (len(_proxy_ssl_header) != 2 or not all(_proxy_ssl_header)):
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https."
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) or None
USE_X_FORWARDED_HOST = env.bool("USE_X_FORWARDED_HOST", default=False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "axes",
    "syncapp",
]
# Development tools (the soak command); production never installs them.
if not IS_PRODUCTION:
    INSTALLED_APPS.append("syncdev")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "syncapp.middleware.StaleTenantPageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
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

# Run by the password forms and `tenant create --password`; 12 characters as OWASP ASVS 2.1.1 asks.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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

# --- Login throttling (django-axes) ----------------------------------------------------

# Axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Counted per user name and client IP together, so nobody can lock a member out from elsewhere; the same
# for a user name that does not exist, so a lock-out does not tell which names do.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("AXES_COOLOFF_TIME", default=900))
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Successful logins are not recorded: the failed attempts are all the throttle needs.
AXES_DISABLE_ACCESS_LOG = True
# The reverse proxies in front of the app that append the client's address to X-Forwarded-For (0: clients connect
# directly and REMOTE_ADDR is theirs). Spoofed entries left of the proxies' own are ignored (syncapp/client_ip.py).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "syncapp.client_ip.client_ip"

# --- Email -------------------------------------------------------------------------------

# EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.com:587, or consolemail:// in development) sets the
# EMAIL_* settings. Without it nothing can be mailed, so the password reset pages are not served (urls.py).
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    globals().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="webmaster@localhost")
PASSWORD_RESET_ENABLED = bool(EMAIL_URL)

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
# Each retry limit is its own: a record the CRM refuses "for now" is queued again at most
# MAX_RETRY_ATTEMPTS times; one CRM request is resent at most HTTP_RETRY_ATTEMPTS times; a webhook event
# is processed at most WEBHOOK_MAX_ATTEMPTS times; django-q2 runs a task at most TASK_MAX_ATTEMPTS times.
MAX_RETRY_ATTEMPTS = env.int("MAX_RETRY_ATTEMPTS", default=3)
HTTP_RETRY_ATTEMPTS = env.int("HTTP_RETRY_ATTEMPTS", default=3)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=3)
TASK_MAX_ATTEMPTS = env.int("TASK_MAX_ATTEMPTS", default=3)
CONFLICT_RESOLUTION_STRATEGY = env.str("CONFLICT_RESOLUTION_STRATEGY", default="crm_wins")
WEBHOOK_REPLAY_WINDOW = env.int("WEBHOOK_REPLAY_WINDOW", default=300_000)  # ms
RATE_LIMIT_WINDOW = env.int("RATE_LIMIT_WINDOW", default=10_000)  # ms
MAX_CONCURRENT_SYNCS = env.int("MAX_CONCURRENT_SYNCS", default=4)
SYNC_BATCH_SIZE = env.int("SYNC_BATCH_SIZE", default=100)
# A sync holds its connection's lock for this long without renewing it; a killed worker's
# lock expires after it.
SYNC_LOCK_TTL = env.int("SYNC_LOCK_TTL", default=600)  # seconds
# Pages a sync task reads at most before it queues its continuation, so a long listing takes turns
# with other tenants' work instead of holding a worker for an hour.
SYNC_SLICE_PAGES = env.int("SYNC_SLICE_PAGES", default=20)
# The django-q2 cluster that runs full listings and continuation slices (`Q_CLUSTER_NAME=<it> manage.py
# qcluster`); empty: the default cluster runs them too (a single-process setup).
BULK_CLUSTER = env.str("BULK_CLUSTER", default="")

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

# Files the processes of one host write at run time (without REDIS_URL): not in the source tree.
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var")))
# Shared rate-limit buckets: Redis when REDIS_URL is set, else this SQLite file (one host, many processes).
RATE_LIMIT_DB_PATH = env.str("RATE_LIMIT_DB_PATH", default=str(DATA_DIR / "ratelimit.sqlite"))
HTTP_TIMEOUT = env.float("HTTP_TIMEOUT", default=30.0)  # seconds per CRM request
HTTP_RETRY_BASE_DELAY = env.float("HTTP_RETRY_BASE_DELAY", default=1.0)  # seconds; doubles per retry

# --- Task queue (django-q2) --------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "contactsync",
    "workers": MAX_CONCURRENT_SYNCS,
    "timeout": 900,
    "retry": 1200,
    "max_attempts": TASK_MAX_ATTEMPTS,
    "catch_up": False,
    # The bulk cluster takes its settings from the default one; only its queue differs.
    "ALT_CLUSTERS": {BULK_CLUSTER: {}} if BULK_CLUSTER else {},
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# One cache for every process, so what one worker learns (Pipedrive's spent daily budget, a connection's
# field list) holds for all: Redis across hosts, else files shared by the processes of one host (which is
# all a setup without Redis spans: its rate limits are one host's too).
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

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
        "axes": {"level": "WARNING"},  # keeps failures and lock-outs; its INFO lines (a banner per process) are noise
    },
}

# Crash reports mask secrets in query strings too (the OAuth callback's code), not only POST fields.
DEFAULT_EXCEPTION_REPORTER = "syncapp.crash_reports.QueryMaskingExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "syncapp.crash_reports.QueryMaskingFilter"

SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError as exc:
        raise ImproperlyConfigured("SENTRY_DSN is set but sentry-sdk is not installed: pip install sentry-sdk") from exc
    sentry_sdk.init(dsn=SENTRY_DSN, send_default_pii=False)

# Read only to warn that it is ignored (see docs/decisions.md).
MONGODB_URI = env.str("MONGODB_URI", default="")
