"""Start-up behaviour driven by the environment, checked in fresh processes."""

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
