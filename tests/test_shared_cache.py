"""The cache is one for every process: what a worker stores, another reads (Redis, else files on one host)."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.cache import cache


def test_a_value_one_process_caches_is_read_by_another():
    env = {**os.environ}
    if not settings.REDIS_URL:
        # This run's cache directory (tests use a temporary one) is DATA_DIR/cache for the other process.
        env["DATA_DIR"] = str(Path(settings.CACHES["default"]["LOCATION"]).parent)
    store = "from django.core.cache import cache; cache.set('shared-cache-probe', 'spent', 60)"

    subprocess.run([sys.executable, "manage.py", "shell", "-c", store], cwd=settings.BASE_DIR, env=env, check=True)

    assert cache.get("shared-cache-probe") == "spent"


def test_without_redis_the_cache_is_a_file_cache_under_the_data_directory():
    command = "from django.conf import settings; print(*settings.CACHES['default'].values())"
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"} | {
        "DATA_DIR": "/srv/contactsync-data"
    }

    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", command], cwd=settings.BASE_DIR, env=env, check=True,
        capture_output=True, text=True,
    ).stdout  # fmt: skip

    assert out.splitlines()[-1].split() == [
        "django.core.cache.backends.filebased.FileBasedCache",
        "/srv/contactsync-data/cache",
    ]
