"""Rate limits shared by every worker process, through pyrate-limiter.

With REDIS_URL the buckets live in Redis (any number of hosts); otherwise in a SQLite file guarded
by a file lock (any number of processes on one host). Each bucket is keyed by connection, so
tenants never slow each other down.
"""

import re
from functools import cache
from pathlib import Path

from django.conf import settings
from pyrate_limiter import Limiter, Rate, RedisBucket, SQLiteBucket


@cache
def _limiter(key: str, limit: int, interval_ms: int) -> Limiter:
    rates = [Rate(limit, interval_ms)]
    if settings.REDIS_URL:
        from redis import Redis

        bucket = RedisBucket.init(rates, Redis.from_url(settings.REDIS_URL), bucket_key=f"contactsync:rate:{key}")
    else:
        table = "rate_" + re.sub(r"\W", "_", key)
        Path(settings.RATE_LIMIT_DB_PATH).parent.mkdir(parents=True, exist_ok=True)
        bucket = SQLiteBucket.init_from_file(
            rates, table=table, db_path=settings.RATE_LIMIT_DB_PATH, create_new_table=True, use_file_lock=True
        )
    return Limiter(bucket)


def rate_limit_wait(*, key: str, limit: int, interval_ms: int, timeout: float = 120) -> bool:
    """Block until one request fits within ``limit`` per ``interval_ms`` for ``key``; False on timeout."""
    return _limiter(key, limit, interval_ms).try_acquire(key, blocking=True, timeout=timeout)
