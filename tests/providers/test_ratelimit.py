"""The shared rate limit: a bucket spent by one process is spent for every process."""

import uuid

from syncapp.providers.base import ratelimit


def test_a_bucket_is_shared_beyond_the_process_that_spent_it():
    key = f"test:{uuid.uuid4().hex}"
    assert ratelimit.rate_limit_wait(key=key, limit=2, interval_ms=60_000, timeout=1)
    assert ratelimit.rate_limit_wait(key=key, limit=2, interval_ms=60_000, timeout=1)
    assert not ratelimit.rate_limit_wait(key=key, limit=2, interval_ms=60_000, timeout=0.2)

    ratelimit._limiter.cache_clear()  # what a second worker process starts with: no limiter of its own yet

    assert not ratelimit.rate_limit_wait(key=key, limit=2, interval_ms=60_000, timeout=0.2)
    assert ratelimit.rate_limit_wait(key=f"{key}:other-connection", limit=2, interval_ms=60_000, timeout=1)
