"""Start-up behaviour driven by the environment, checked in fresh processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "SYNC_ENCRYPTION_KEY", "MONGODB_URI"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, "DATABASE_URL": "sqlite:///:memory:", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_defaults_start_with_nothing_configured():
    result = manage("check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_default_secret_key():
    result = manage("check", DJANGO_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DJANGO_ENV=production" in result.stderr


def test_production_refuses_to_start_without_an_encryption_key():
    result = manage("check", DJANGO_ENV="production", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "SYNC_ENCRYPTION_KEY must be set" in result.stderr


def test_mongodb_uri_warns_once_and_points_to_the_decisions_page():
    result = manage("check", MONGODB_URI="mongodb://localhost/contacts")
    output = result.stdout + result.stderr
    assert output.count("syncapp.W001") == 1
    assert "docs/decisions.md" in output


def test_unknown_conflict_strategy_is_a_start_up_error():
    result = manage("check", CONFLICT_RESOLUTION_STRATEGY="app_always")
    assert result.returncode != 0 and "syncapp.E001" in result.stderr


# What the settings resolve to, printed as JSON by a fresh process (the broker is built, not connected).
SHOW_BACKENDS = """
import environ
environ.Env.read_env = lambda *args, **kwargs: None  # a developer's .env must not decide the defaults under test
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


def backends(**env):
    """Load the settings with DATABASE_URL and REDIS_URL unset (plus ``env``) and return what they resolved."""
    unset = {"SECRET_KEY", "SYNC_ENCRYPTION_KEY", "MONGODB_URI", "DATABASE_URL", "REDIS_URL"}
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    result = subprocess.run(
        [sys.executable, "-c", SHOW_BACKENDS],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "contactsync.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
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
