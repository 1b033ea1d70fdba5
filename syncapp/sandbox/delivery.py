"""Webhook delivery from sandbox accounts: batched, late, duplicated or reordered on request, retried on failure.

Events are grouped per account and destination for a moment (HubSpot sends up to 100 per request,
Pipedrive one), then sent from a small pool of threads. A failed attempt (no 2xx, a timeout, a
refused connection) is retried after the account's ``retry_delays``, as the CRMs do.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

logger = logging.getLogger(__name__)

BATCH_WINDOW = 0.05  # seconds events wait for companions before their delivery is scheduled


class WebhookDispatcher:
    def __init__(self, *, seed: int | None = None, workers: int = 8):
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-webhook")
        self.condition = threading.Condition()
        self.open_batches: dict[tuple[int, str], list[dict]] = {}
        self.accounts: dict[int, object] = {}
        self.queue: list[
            tuple[float, int, object, str, list[dict], int]
        ] = []  # due, seq, account, dest, payloads, attempt
        self.sequence = itertools.count()
        self.in_flight = 0
        self.stats: Counter[str] = Counter()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self.thread.start()

    # Producing --------------------------------------------------------------------------

    def enqueue(self, account, destination: str, payload: dict) -> None:
        with self.condition:
            key = (id(account), destination)
            batch = self.open_batches.get(key)
            if batch is None:
                batch = self.open_batches[key] = []
                self.accounts[id(account)] = account
                self._push(time.monotonic() + BATCH_WINDOW, ("close", key), "", [], 0)
            batch.append(payload)
            if len(batch) >= account.webhook_batch_size:
                self._close(key)
            self.stats["events"] += 1
            self.condition.notify_all()

    def _close(self, key) -> None:
        batch = self.open_batches.pop(key, None)
        if not batch:
            return
        account, destination = self.accounts[key[0]], key[1]
        options = account.webhooks
        if options.reorder_ms:
            self.random.shuffle(batch)
        for start in range(0, len(batch), account.webhook_batch_size):
            chunk = batch[start : start + account.webhook_batch_size]
            copies = 2 if self.random.random() < options.duplicate_rate else 1
            for _ in range(copies):
                delay = options.delay_ms / 1000 + self.random.uniform(0, options.reorder_ms / 1000)
                self._push(time.monotonic() + delay, account, destination, chunk, 0)

    def _push(self, due, account, destination, payloads, attempt) -> None:
        heapq.heappush(self.queue, (due, next(self.sequence), account, destination, payloads, attempt))

    # Sending ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.condition:
                while not self.stopped and (not self.queue or self.queue[0][0] > time.monotonic()):
                    timeout = self.queue[0][0] - time.monotonic() if self.queue else None
                    self.condition.wait(timeout)
                if self.stopped:
                    return
                _, _, account, destination, payloads, attempt = heapq.heappop(self.queue)
                if isinstance(account, tuple):  # a batch window closed
                    self._close(account[1])
                    continue
                if account.webhooks.paused:
                    self._push(time.monotonic() + 0.2, account, destination, payloads, attempt)
                    continue
                self.in_flight += 1
            self.pool.submit(self._send, account, destination, payloads, attempt)

    def _send(self, account, destination: str, payloads: list[dict], attempt: int) -> None:
        ok = False
        try:
            with account.lock:
                built = account.webhook_request(destination, payloads, attempt)
            if built is None:
                self.stats["undeliverable"] += 1
                return
            url, headers, body = built
            try:
                response = self.session.post(url, data=body, headers=headers, timeout=account.webhook_timeout)
                ok = 200 <= response.status_code < 300
                status = response.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.stats["attempts"] += 1
            if ok:
                self.stats["delivered"] += 1
                return
            logger.info("sandbox %s webhook to %s failed (%s), attempt %s", account.provider, url, status, attempt + 1)
            delays = account.webhooks.retry_delays
            with self.condition:
                if attempt < len(delays):
                    self.stats["retries"] += 1
                    self._push(time.monotonic() + delays[attempt], account, destination, payloads, attempt + 1)
                else:
                    self.stats["failed"] += 1
        finally:
            with self.condition:
                self.in_flight -= 1
                self.condition.notify_all()

    # Observing ----------------------------------------------------------------------------

    def pending(self) -> int:
        with self.condition:
            waiting = sum(
                len(payloads) for _, _, account, _, payloads, _ in self.queue if not isinstance(account, tuple)
            )
            return waiting + sum(len(batch) for batch in self.open_batches.values()) + self.in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing waits to be delivered (retries included); False on timeout."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.queue or self.open_batches or self.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.condition.wait(min(left, 0.1))
        return True

    def describe(self) -> dict:
        return {**self.stats, "pending": self.pending()}

    def stop(self) -> None:
        with self.condition:
            self.stopped = True
            self.condition.notify_all()
        self.thread.join(timeout=2)
        self.pool.shutdown(wait=False, cancel_futures=True)
