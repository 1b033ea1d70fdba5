"""Start-up behaviour driven by the environment, checked in fresh processes."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Values a test sets itself; inherited from the developer's shell they would change what is tested.
UNSET = {"SECRET_KEY", "SYNC_ENCRYPTION_KEY", "MONGODB_URI", "DJANGO_ENV", "DEBUG", "EMAIL_URL"}
# A developer's .env must not decide what is tested either.
NO_DOTENV = "import environ; environ.Env.read_env = lambda *args, **kwargs: None\n"
MANAGE = NO_DOTENV + "import sys; from django.core.management import execute_from_command_line\n"
MANAGE += "execute_from_command_line(['manage.py', *sys.argv[1:]])"
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "SYNC_ENCRYPTION_KEY": "a-passphrase",
    "ALLOWED_HOSTS": "sync.example.com",
}


def run(code, *args, clean=False, unset=(), **env):
    """Run ``code`` in a fresh Python with ``env``; ``clean`` starts from an empty environment (PATH aside)."""
    dropped = UNSET | set(unset)
    base = {"PATH": os.environ["PATH"]} if clean else {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "contactsync.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def manage(*args, **env):
    return run(MANAGE, *args, **{"DATABASE_URL": "sqlite:///:memory:", **env})


def settings_of(*names, **env):
    """The named settings as a fresh process resolves them with ``env``."""
    code = NO_DOTENV + "import json, sys; from django.conf import settings\n"
    code += "print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))"
    result = run(code, *names, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_start_with_nothing_configured():
    result = manage("check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_default_secret_key():
    result = manage("check", DJANGO_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DJANGO_ENV=production" in result.stderr


def test_production_refuses_to_start_without_an_encryption_key():
    result = manage("check", DJANGO_ENV="production", SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert result.returncode != 0
    assert "SYNC_ENCRYPTION_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    "weak_key",
    [
        "x" * 50,  # one character repeated
        "abcd" * 13,  # four different characters
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM",  # one character short
        "django-insecure-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM",  # Django's startproject prefix
    ],
)
def test_production_refuses_a_weak_secret_key(weak_key):
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": weak_key})
    assert result.returncode != 0
    assert "SECRET_KEY is too weak for DJANGO_ENV=production" in result.stderr
    assert weak_key not in result.stderr


@pytest.mark.parametrize("spelling", ["Production", " production ", "PRODUCTION\n"])
def test_django_env_is_read_case_insensitively_and_without_surrounding_whitespace(spelling):
    # Production's refusal of the published development key shows the value was read as production.
    result = manage("check", DJANGO_ENV=spelling)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DJANGO_ENV=production" in result.stderr
    assert settings_of("IS_PRODUCTION", **{**PRODUCTION, "DJANGO_ENV": spelling}) == {"IS_PRODUCTION": True}


@pytest.mark.parametrize("unknown", ["prod", "staging", "dev", ""])
def test_an_unknown_django_env_refuses_to_start_and_names_the_accepted_values(unknown):
    result = manage("check", DJANGO_ENV=unknown)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_ENV must be one of development, production" in result.stderr


def test_debug_is_off_unless_set_explicitly():
    assert settings_of("DEBUG") == {"DEBUG": False}
    assert settings_of("DEBUG", DJANGO_ENV="development") == {"DEBUG": False}
    assert settings_of("DEBUG", DEBUG="true") == {"DEBUG": True}


SECURE_BY_DEFAULT = {
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
}


def test_production_is_secure_by_default_and_development_is_not():
    assert settings_of(*SECURE_BY_DEFAULT, **PRODUCTION) == SECURE_BY_DEFAULT
    development = settings_of(*SECURE_BY_DEFAULT)
    assert not any(development.values()), development


def test_each_production_https_setting_can_be_turned_off_from_the_environment():
    off = {name: "0" if name == "SECURE_HSTS_SECONDS" else "false" for name in SECURE_BY_DEFAULT}
    resolved = settings_of(*SECURE_BY_DEFAULT, **PRODUCTION, **off)
    assert not any(resolved.values()), resolved


def test_proxy_headers_and_trusted_origins_come_from_the_environment():
    names = ("SECURE_PROXY_SSL_HEADER", "USE_X_FORWARDED_HOST", "CSRF_TRUSTED_ORIGINS")
    assert settings_of(*names, **PRODUCTION) == {
        "SECURE_PROXY_SSL_HEADER": None,
        "USE_X_FORWARDED_HOST": False,
        "CSRF_TRUSTED_ORIGINS": [],
    }
    resolved = settings_of(
        *names,
        **PRODUCTION,
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO, https",
        USE_X_FORWARDED_HOST="true",
        CSRF_TRUSTED_ORIGINS="https://sync.example.com,https://admin.example.com",
    )
    assert resolved == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],  # a tuple, through JSON
        "USE_X_FORWARDED_HOST": True,
        "CSRF_TRUSTED_ORIGINS": ["https://sync.example.com", "https://admin.example.com"],
    }


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTO,https,http", ",https"])
def test_a_proxy_ssl_header_without_exactly_a_header_and_a_value_is_refused(header):
    result = manage("check", SECURE_PROXY_SSL_HEADER=header)
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be a header and a value" in result.stderr


def test_the_deploy_check_passes_with_only_the_required_production_values():
    # The same command .ci/run runs; only PATH besides the four required values.
    result = run(MANAGE, "check", "--deploy", "--fail-level", "WARNING", clean=True, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


# The password reset pages as a fresh process serves them (the URLconf reads the settings once, at import).
SHOW_RESET_PAGES = (
    NO_DOTENV
    + """
import django
django.setup()
import json
from django.conf import settings
from django.test import Client
client = Client()
print(json.dumps({
    "form": client.get("/accounts/password_reset/").status_code,
    "done": client.get("/accounts/password_reset/done/").status_code,
    "login_links_to_it": "/accounts/password_reset/" in client.get("/accounts/login/").text,
    "backend": settings.EMAIL_BACKEND,
}))
"""
)


def reset_pages(**env):
    result = run(SHOW_RESET_PAGES, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_email_the_password_reset_pages_are_not_served():
    assert reset_pages() == {
        "form": 404,
        "done": 404,
        "login_links_to_it": False,
        "backend": "django.core.mail.backends.smtp.EmailBackend",
    }


def test_with_email_url_the_password_reset_pages_are_served_and_mail_goes_there():
    assert reset_pages(EMAIL_URL="consolemail://") == {
        "form": 200,
        "done": 200,
        "login_links_to_it": True,
        "backend": "django.core.mail.backends.console.EmailBackend",
    }
    smtp = settings_of(
        "EMAIL_HOST",
        "EMAIL_PORT",
        "EMAIL_HOST_USER",
        "EMAIL_USE_TLS",
        EMAIL_URL="smtp+tls://ann:pw@mail.example.com:587",
    )
    assert smtp == {
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_HOST_USER": "ann",
        "EMAIL_USE_TLS": True,
    }


def test_mongodb_uri_warns_once_and_points_to_the_decisions_page():
    result = manage("check", MONGODB_URI="mongodb://localhost/contacts")
    output = result.stdout + result.stderr
    assert output.count("syncapp.W001") == 1
    assert "docs/decisions.md" in output


def test_unknown_conflict_strategy_is_a_start_up_error():
    result = manage("check", CONFLICT_RESOLUTION_STRATEGY="app_always")
    assert result.returncode != 0 and "syncapp.E001" in result.stderr


# What the settings resolve to, printed as JSON by a fresh process (the broker is built, not connected).
SHOW_BACKENDS = (
    NO_DOTENV
    + """
import django
django.setup()
import json
from django.conf import settings
from django_q.brokers import get_broker
broker = get_broker()
kwargs = getattr(getattr(broker.connection, "connection_pool", None), "connection_kwargs", {})
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "name": str(settings.DATABASES["default"]["NAME"]),
    "orm": settings.Q_CLUSTER.get("orm"),
    "redis": settings.Q_CLUSTER.get("redis"),
    "broker": f"{type(broker).__module__}.{type(broker).__name__}",
    "redis_target": [kwargs.get("host"), kwargs.get("port"), kwargs.get("db")],
}))
"""
)


def backends(**env):
    """Load the settings with DATABASE_URL and REDIS_URL unset (plus ``env``) and return what they resolved."""
    result = run(SHOW_BACKENDS, unset={"DATABASE_URL", "REDIS_URL"}, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_database_url_or_redis_url_the_defaults_are_sqlite_and_the_orm_broker():
    resolved = backends()
    assert resolved["engine"] == "django.db.backends.sqlite3"
    assert resolved["name"] == str(ROOT / "db.sqlite3")
    assert resolved["orm"] == "default" and resolved["redis"] is None
    assert resolved["broker"] == "django_q.brokers.orm.ORM"


def test_redis_url_switches_the_broker_to_redis_and_leaves_the_database_alone():
    resolved = backends(REDIS_URL="redis://127.0.0.1:6379/0")
    assert resolved["engine"] == "django.db.backends.sqlite3"
    assert resolved["orm"] is None and resolved["redis"] == "redis://127.0.0.1:6379/0"
    assert resolved["broker"] == "django_q.brokers.redis_broker.Redis"
    assert resolved["redis_target"] == ["127.0.0.1", 6379, 0]


def test_the_development_tools_are_installed_in_development_only():
    assert "syncdev" in settings_of("INSTALLED_APPS")["INSTALLED_APPS"]
    assert "syncdev" not in settings_of("INSTALLED_APPS", **PRODUCTION)["INSTALLED_APPS"]
