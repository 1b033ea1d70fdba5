"""The soak: the Procfile's processes against the CRM sandbox, random edits everywhere, killed workers, a verdict.

Phases: start the sandbox (its own process, request log to a file), seed the tenants, start the web
process and the worker clusters from the Procfile, turn the faults on, edit for the run's duration
while killing a cluster with SIGKILL mid-sync now and then, turn the faults off, settle, and check
what every side holds with ``syncdev.checker``.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.tasks import async_task

from syncapp.models import Contact, ContactLink, CrmConnection, ExcludedRecord, OutboxEntry, SyncRun, WebhookEvent
from syncapp.sandbox.bench import wait_for_port
from syncapp.sandbox.client import SandboxClient, sandbox_api_environ
from syncapp.services.schedules import schedules_sync
from syncapp.services.sync import SYNC_TASK, connection_sync_queue
from syncdev import checker
from syncdev.processes import Process, procfile_read
from syncdev.workload import Workload

FAULT_KINDS = ["429", "500", "503", "slow", "drop"]
CUT_SHORT = "The worker running this sync stopped"


def environment_problem(*, engine: str, redis_url: str) -> str | None:
    """Why the soak cannot run here: it stands for several machines, which share PostgreSQL and Redis."""
    if engine != "django.db.backends.postgresql":
        return "The soak needs PostgreSQL: set DATABASE_URL=postgres://... (a SQLite file serves one machine)."
    if not redis_url:
        return "The soak needs Redis as the broker: set REDIS_URL (the ORM broker is not what several machines use)."
    return None


@dataclass
class Options:
    tenants: int
    min_contacts: int
    max_contacts: int
    duration: float  # seconds of edits
    fault_rate: float
    kills: int
    workers: int
    seed: int
    port: int  # the sandbox listens here, the web process on the next port
    edits_per_second: float
    spacing: float
    conflict_window: float
    settle_timeout: float
    poll_seconds: int
    out: Path


class Soak:
    def __init__(self, options: Options, *, progress=print):
        self.options = options
        self.progress = progress
        self.rng = random.Random(options.seed)
        self.figures: dict = {"options": {k: str(v) for k, v in vars(options).items()}}
        self.processes: list[Process] = []
        self.workers: list[Process] = []
        self.sandbox_process: Process | None = None

    # Processes ----------------------------------------------------------------------------------------

    def _env(self, web_port: int) -> dict[str, str]:
        return {
            **os.environ,
            **sandbox_api_environ(),
            "DJANGO_ENV": "development",
            "HUBSPOT_WEBHOOK_SECRET": self.webhook_secret,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            # Polls every poll_seconds (schedules count in minutes), and a killed worker's lease ends soon.
            "DEFAULT_SYNC_INTERVAL": str(self.options.poll_seconds * 1000),
            "HUBSPOT_POLL_INTERVAL": str(self.options.poll_seconds * 1000),
            "SYNC_LOCK_TTL": "60",
            "MAX_CONCURRENT_SYNCS": "2",
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            "PORT": str(web_port),
        }

    def _start_sandbox(self) -> SandboxClient:
        port = self.options.port
        self.request_log = self.options.out / "requests.jsonl"
        self.request_log.unlink(missing_ok=True)
        command = (
            f"python manage.py crm_sandbox --port {port} --seed {self.options.seed} --request-log {self.request_log}"
            f" --webhook-secret {self.webhook_secret}"
        )
        self.sandbox_process = Process(
            "sandbox", command, cwd=settings.BASE_DIR, env={**os.environ}, log=self.options.out / "sandbox.log"
        )
        self.sandbox_process.start()
        wait_for_port(port)
        return SandboxClient(f"http://127.0.0.1:{port}")

    def _start_app(self, web_port: int) -> None:
        types = procfile_read(Path(settings.BASE_DIR) / "Procfile")
        env, out = self._env(web_port), self.options.out
        web = Process("web", types["web"], cwd=settings.BASE_DIR, env=env, log=out / "web.log")
        self.workers = [
            Process(f"worker.{n}", types["worker"], cwd=settings.BASE_DIR, env=env, log=out / f"worker.{n}.log")
            for n in range(1, self.options.workers + 1)
        ] + [  # the Procfile's further clusters (the bulk one), once each: a kill may take one too
            Process(name, command, cwd=settings.BASE_DIR, env=env, log=out / f"{name}.log")
            for name, command in types.items()
            if name not in ("web", "worker")
        ]  # fmt: skip
        self.processes = [web, *self.workers]
        connections.close_all()  # no connection inherited across processes
        for process in self.processes:
            process.start()
        wait_for_port(web_port)

    def stop(self) -> None:
        for process in [*self.processes, self.sandbox_process]:
            if process is not None:
                process.stop()

    def _kill_one(self) -> dict:
        """SIGKILL a cluster while syncs run (waiting up to 30 s for one), then start it again."""
        deadline = time.monotonic() + 30
        while not self._running_syncs() and time.monotonic() < deadline:
            time.sleep(0.2)
        running = self._running_syncs()
        victim = self.rng.choice(self.workers)
        victim.kill()
        time.sleep(self.rng.uniform(1, 4))
        victim.start()
        self.progress(f"  killed {victim.name} with {running} sync(s) running; restarted")
        return {"worker": victim.name, "running_syncs": running, "at": round(time.time() - self.started, 1)}

    def _running_syncs(self) -> int:
        return CrmConnection.objects.filter(lock_expires_at__gt=timezone.now()).count()

    # The run ------------------------------------------------------------------------------------------

    def run(self) -> checker.Verdict:
        options = self.options
        options.out.mkdir(parents=True, exist_ok=True)
        self.webhook_secret = secrets.token_urlsafe(16)
        web_port = options.port + 1
        settings.HUBSPOT_WEBHOOK_SECRET = self.webhook_secret
        try:
            sandbox = self._start_sandbox()
            self._reset()
            workload = Workload(sandbox, f"http://127.0.0.1:{web_port}", self.rng, options.spacing)
            began = time.monotonic()
            self.progress(f"Seeding {options.tenants} tenants, {options.min_contacts} to {options.max_contacts} people")
            workload.seed(
                count=options.tenants,
                smallest=options.min_contacts,
                largest=options.max_contacts,
                webhook_secret=self.webhook_secret,
                progress=self.progress,
            )
            self.figures["seed_seconds"] = round(time.monotonic() - began, 1)
            # Each connection's poll schedule, and its initial full sync at once.
            schedules_sync()
            self.progress(f"Starting the Procfile's web process, {options.workers} workers and its other clusters")
            self._start_app(web_port)
            for connection in CrmConnection.objects.all():
                async_task(SYNC_TASK, connection.pk, trigger=SyncRun.Trigger.FULL, full=True)
            sandbox.faults_set(rate=options.fault_rate, kinds=FAULT_KINDS)
            self.started = time.time()
            kills = self._edit(workload)
            sandbox.faults_set(rate=0)
            self.progress("Faults off; settling")
            workload.wait()
            for worker in self.workers:
                if not worker.running:
                    worker.start()
            rounds = self._settle(sandbox)
            verdict = self._check(sandbox, workload)
            self.figures.update(self._figures(workload, kills, rounds))
            return verdict
        finally:
            self.stop()

    def _reset(self) -> None:
        """Leave nothing of an earlier soak in the queue or the schedules (the tenants go with the seeding)."""
        get_broker().purge_queue()
        Schedule.objects.filter(name__startswith="contactsync-").delete()

    def _edit(self, workload: Workload) -> list[dict]:
        options = self.options
        self.progress(f"Editing every side for {options.duration:g} s, faults on {options.fault_rate:.0%} of requests")
        kill_at = [self.started + options.duration * (n + 1) / (options.kills + 1) for n in range(options.kills)]
        kills = []
        interval = 1 / options.edits_per_second
        next_step = time.time()
        while time.time() < self.started + options.duration:
            if kill_at and time.time() >= kill_at[0]:
                kill_at.pop(0)
                kills.append(self._kill_one())
            workload.step()
            next_step += interval
            time.sleep(max(0.0, next_step - time.time()))
        for _ in kill_at:  # a run too short for its kills still makes them
            kills.append(self._kill_one())
        return kills

    def _settle(self, sandbox: SandboxClient) -> int:
        """Sync rounds until one writes nothing and nothing waits (queue, outbox, inbox); returns the rounds."""
        deadline = time.monotonic() + self.options.settle_timeout
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            sandbox.webhooks_wait(timeout=60)
            self._idle(deadline)
            since = timezone.now()
            for connection in CrmConnection.objects.all():
                connection_sync_queue(connection=connection)
            time.sleep(1)
            self._idle(deadline)
            runs = SyncRun.objects.filter(started_at__gte=since)
            wrote = sum(run.created + run.updated + run.deleted for run in runs)
            outbox, inbox = OutboxEntry.objects.count(), WebhookEvent.objects.filter(status="pending").count()
            self.progress(
                f"  round {rounds}: {runs.count()} runs wrote {wrote}; outbox {outbox}, webhook inbox {inbox}"
            )
            if not wrote and not outbox and not inbox:
                return rounds
        self.progress("  not quiet before --settle-timeout; checking as it stands")
        return rounds

    def _idle(self, deadline: float) -> None:
        """Until the queue is empty and no connection is locked, twice in a row a second apart."""
        quiet = 0
        broker = get_broker()
        while quiet < 2 and time.monotonic() < deadline:
            busy = broker.queue_size() or self._running_syncs()
            quiet = 0 if busy else quiet + 1
            time.sleep(1)

    # The verdict --------------------------------------------------------------------------------------

    def _check(self, sandbox: SandboxClient, workload: Workload) -> checker.Verdict:
        verdict = checker.Verdict()
        final = {}
        emails = {}
        for soak in workload.tenants:
            slug = soak.tenant.slug
            app = [
                checker.Record(str(c.pk), c.to_record().as_dict(), deleted=c.is_deleted)
                for c in Contact.objects.filter(tenant=soak.tenant)
            ]
            crms = {}
            for account in soak.accounts:
                records = sandbox.records(account.provider, account.account_id, include_deleted=True)
                crms[account.key] = [
                    checker.Record(r["id"], {n: r.get(n) or "" for n in checker.FIELDS}, deleted=r["deleted"])
                    for r in records
                    if not r.get("merged_into")
                ]
                emails.update({(account.key, r["id"]): (r["email"] or "").lower() for r in records})
                side = f"{slug} {account.key}"
                verdict.duplicate_emails += checker.duplicate_emails(side=side, records=crms[account.key])
            verdict.field_mismatches += checker.field_mismatches(tenant=slug, app=app, crms=crms)
            verdict.duplicate_emails += checker.duplicate_emails(side=f"{slug} app", records=app)
            final.update({(slug, r.email): None if r.deleted else r.values for r in app if r.email})
        with open(self.request_log) as log:
            entries = [json.loads(line) for line in log]
        self.figures["api_requests"] = len(entries)
        self.figures["faults_injected"] = sum(1 for e in entries if e.get("endpoint") == "fault")
        writes = checker.log_writes(entries, emails=emails)
        self.figures["crm_writes_by_the_sync"] = dict(Counter(w.kind for w in writes))
        verdict.created_twice = checker.created_twice([*workload.writes, *writes])
        verdict.lost_edits = checker.lost_edits(workload.edits, final, window=self.options.conflict_window)
        verdict.pending = self._pending()
        return verdict

    def _pending(self) -> list[str]:
        """What the app itself still owes once the faults have stopped and the syncs settled."""
        pending = [
            f"link {link.pk} ({link.connection}) {link.status}: {link.last_error}"
            for link in ContactLink.objects.filter(status__in=[ContactLink.Status.PENDING, ContactLink.Status.ERROR])
        ]
        pending += [
            f"outbox entry {e.pk} (connection {e.connection_id}): {e.last_error}" for e in OutboxEntry.objects.all()
        ]  # noqa: E501
        pending += [f"webhook event {e.pk} pending" for e in WebhookEvent.objects.filter(status="pending")]
        pending += [
            f"excluded {e.side} record {e.record_id} ({e.email}): {e.code}" for e in ExcludedRecord.objects.all()
        ]  # noqa: E501
        return pending

    def _figures(self, workload: Workload, kills: list[dict], rounds: int) -> dict:
        runs = SyncRun.objects.filter(connection__tenant__slug__startswith="soak-")
        return {
            "tenants": len(workload.tenants),
            "people": sum(len(soak.people) for soak in workload.tenants),
            "app_contacts_live": Contact.objects.filter(
                tenant__slug__startswith="soak-", deleted_at__isnull=True
            ).count(),
            "edits_seconds": self.options.duration,
            "actions": dict(sorted(workload.done.items())),
            "kills": kills,
            "runs": dict(Counter(runs.values_list("status", flat=True))),
            "runs_cut_short_by_a_kill": runs.filter(error__startswith=CUT_SHORT).count(),
            "runs_by_trigger": dict(Counter(runs.values_list("trigger", flat=True))),
            "webhook_events": dict(Counter(WebhookEvent.objects.values_list("status", flat=True))),
            "settle_rounds": rounds,
            "python": sys.version.split()[0],
        }
