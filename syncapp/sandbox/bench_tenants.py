"""bench_sync's part for many tenants: several django-q2 clusters sync them on PostgreSQL and Redis.

Every tenant holds app contacts and two sandbox accounts (HubSpot and Pipedrive), half of each side
shared, as in the initial-sync part. For each number of workers the part seeds fresh tenants (not
measured), starts that many clusters of one worker each, queues every connection's poll (a full
listing the first time, as the schedule would), waits until every run has finished and every side
agrees, then edits every side and polls again. Measured per phase: wall time, records per second,
API calls (the sandbox's counters), database queries inside the tasks (counted by the workers, see
``task_queries_count``) and CPU time of the workers, the sandbox and the rest of the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.status import Stat
from django_q.tasks import async_task

from syncapp.models import Contact, CrmConnection, OutboxEntry, SyncRun, Tenant
from syncapp.sandbox.bench import Bench, Dataset, contact_values, half_overlapping, worker_environ
from syncapp.sandbox.client import SandboxClient
from syncapp.services.contacts import contact_update
from syncapp.services.schedules import POLL_TASK
from syncapp.services.tenants import tenant_create

PROVIDERS = ("hubspot", "pipedrive")
FIELDS = ("first_name", "last_name", "phone", "job_title", "pronouns")
# Set in the workers' environment only: the Redis key their task queries are added to.
QUERY_COUNTER_ENV = "BENCH_TASK_QUERIES_KEY"


def tenants_bench_refusal() -> str:
    """Why the part cannot run with these settings, or "" when it can."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return (
            "The tenants part needs PostgreSQL (DATABASE_URL=postgres://...): it measures worker processes "
            "writing at the same time, which SQLite serialises."
        )
    if not settings.REDIS_URL:
        return (
            "The tenants part needs Redis (REDIS_URL=redis://...): its clusters share the Redis broker and "
            "rate-limit buckets, as on several machines; the ORM broker is not what it measures."
        )
    return ""


def task_queries_count(key: str) -> None:
    """In a worker process: add each task's database queries to the Redis counter ``key``.

    Installed by AppConfig.ready() only when the benchmark sets QUERY_COUNTER_ENV for its workers.
    """
    import redis
    from django.db.backends.signals import connection_created
    from django_q.signals import post_execute_in_worker, pre_execute

    count = [0]

    def counter(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    def install(sender, connection, **kwargs):
        if counter not in connection.execute_wrappers:
            connection.execute_wrappers.append(counter)

    def reset(sender, **kwargs):
        count[0] = 0

    def flush(sender, **kwargs):
        redis.Redis.from_url(settings.REDIS_URL).incrby(key, count[0])

    connection_created.connect(install, weak=False)
    pre_execute.connect(reset, weak=False)
    post_execute_in_worker.connect(flush, weak=False)


# CPU time from /proc -----------------------------------------------------------------------------


def _proc_stats() -> dict[int, tuple[int, float]]:
    """Each live process: its parent and its CPU seconds, with those of its children it has waited for."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        # After the command name: state, ppid, ... utime (11), stime, cutime, cstime.
        found[int(name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / ticks)
    return found


def _tree_cpu(stats: dict[int, tuple[int, float]], roots: list[int]) -> float:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, [pid for pid in roots if pid in stats]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo += children.get(pid, [])
    return total


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling, since boot."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSample:
    workers: float
    sandbox: float
    machine: float

    @classmethod
    def take(cls, clusters: list[int], sandbox_pid: int | None) -> CpuSample:
        stats = _proc_stats()
        sandbox = _tree_cpu(stats, [sandbox_pid]) if sandbox_pid else 0.0
        return cls(workers=_tree_cpu(stats, clusters), sandbox=sandbox, machine=_machine_busy_seconds())


class DatabaseCpu:
    """CPU of the PostgreSQL backends serving this database (on this machine), sampled while they live.

    A backend ends with its connection, so what one spends after its last sample is not counted.
    """

    def __init__(self):
        self.start = self._sample()
        self.last = dict(self.start)

    def _sample(self) -> dict[int, float]:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            pids = [row[0] for row in cursor.fetchall()]
        stats = _proc_stats()
        return {pid: stats[pid][1] for pid in pids if pid in stats}

    def sample(self) -> None:
        self.last.update(self._sample())

    @property
    def seconds(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.last.items())


# The part -------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    tenant: Tenant
    connections: list[CrmConnection]
    accounts: list[dict]


class TenantsBench:
    def __init__(self, sandbox: SandboxClient, *, sandbox_pid: int | None, progress=print):
        self.sandbox = sandbox
        self.sandbox_pid = sandbox_pid
        self.progress = progress

    def run(self, *, tenants: int, contacts: int, changes: int, workers: list[int], timeout: float) -> dict:
        rounds = [self.round(count, tenants=tenants, contacts=contacts, changes=changes, timeout=timeout)
                  for count in workers]  # fmt: skip
        return {
            "tenants": tenants,
            "contacts_per_side": contacts,
            "changes": changes,
            "cores": os.cpu_count(),
            "rounds": rounds,
        }

    def round(self, workers: int, *, tenants: int, contacts: int, changes: int, timeout: float) -> dict:
        bench = Bench(self.sandbox, progress=lambda line: None)
        try:
            self.progress(f"  {workers} worker(s): seeding {tenants} tenants x 2 CRMs x {contacts} contacts/side")
            seeded = [self._seed(bench, n, contacts) for n in range(tenants)]
            bound = _rate_limit_bound(seeded, half_overlapping(contacts), workers)
            clusters = self._clusters(workers)
            try:
                self.progress(f"  {workers} worker(s): initial sync of {2 * tenants} connections")
                initial = self._phase(seeded, clusters, timeout=timeout)
                self.progress(f"  {workers} worker(s): {changes} edits per side and tenant, then a poll of each")
                incremental = self._phase(seeded, clusters, timeout=timeout, changes=changes)
            finally:
                for process in clusters:
                    process.terminate()
                for process in clusters:
                    process.wait(timeout=60)
        finally:
            bench.cleanup()
        data = half_overlapping(contacts)
        initial["records"] = tenants * 2 * len(set(data.app) | set(data.crm))
        initial["rate_limit_bound_seconds"] = round(bound, 1)
        incremental["records"] = tenants * 3 * changes
        for phase in (initial, incremental):
            seconds = phase["seconds"]
            phase["records_per_second"] = round(phase["records"] / seconds, 1) if seconds else None
            phase["api_calls_per_record"] = round(phase["api_calls"] / phase["records"], 3)
            phase["queries_per_record"] = round(phase["queries"] / phase["records"], 3)
        return {"workers": workers, "initial": initial, "incremental": incremental}

    def _seed(self, bench: Bench, number: int, contacts: int) -> Seeded:
        data = half_overlapping(contacts)
        tenant = tenant_create(slug=f"bench-tenants-{number}-{os.urandom(3).hex()}")
        bench.tenants.append(tenant)
        pairs = [bench.connect(tenant, provider, data.crm) for provider in PROVIDERS]
        Contact.objects.bulk_create([Contact(tenant=tenant, **contact_values(i, side="app")) for i in data.app])
        return Seeded(tenant, [connection for connection, _ in pairs], [account for _, account in pairs])

    def _clusters(self, workers: int) -> list[subprocess.Popen]:
        """``workers`` clusters of one worker each, as on that many machines: they share Redis and PostgreSQL only."""
        get_broker().purge_queue()
        env = worker_environ(MAX_CONCURRENT_SYNCS="1", **{QUERY_COUNTER_ENV: self._counter_key()})
        connections.close_all()
        clusters = [
            subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for _ in range(workers)
        ]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = {stat.pid for stat in Stat.get_all() if stat.status == Conf.IDLE}
            if ready >= {process.pid for process in clusters}:
                return clusters
            time.sleep(0.2)
        for process in clusters:
            process.kill()
        raise RuntimeError(f"{workers} django-q2 clusters did not start within 120 s.")

    def _counter_key(self) -> str:
        return f"{Conf.PREFIX}:bench:task-queries"

    def _phase(self, seeded: list[Seeded], clusters: list[subprocess.Popen], *, timeout: float, changes: int = 0):
        """Queue every connection's poll (after ``changes`` edits per side), wait until all settled; measure."""
        redis = get_broker().connection
        redis.set(self._counter_key(), 0)
        accounts = [account for item in seeded for account in item.accounts]
        calls_before = self._api_calls(accounts)
        pids = [process.pid for process in clusters]
        cpu_before = CpuSample.take(pids, self.sandbox_pid)
        database_cpu = DatabaseCpu()
        since = timezone.now()
        started = time.perf_counter()
        if changes:
            self._edit(seeded, changes)
        for item in seeded:
            for connection in item.connections:
                async_task(POLL_TASK, connection.pk, group=f"poll-{connection.pk}")
        connection_ids = [connection.pk for item in seeded for connection in item.connections]
        settled = self._wait(connection_ids, since, timeout, database_cpu)
        seconds = time.perf_counter() - started
        cpu = CpuSample.take(pids, self.sandbox_pid)
        database_cpu.sample()
        workers_cpu, sandbox_cpu = cpu.workers - cpu_before.workers, cpu.sandbox - cpu_before.sandbox
        machine_cpu = cpu.machine - cpu_before.machine
        runs = SyncRun.objects.filter(connection_id__in=connection_ids, started_at__gte=since)
        return {
            "seconds": round(seconds, 2),
            "settled": settled,
            "runs": runs.count(),
            "failed_runs": runs.filter(status=SyncRun.Status.FAILED).count(),
            "api_calls": self._api_calls(accounts) - calls_before,
            "queries": int(redis.get(self._counter_key()) or 0),
            "cpu_seconds": {
                "workers": round(workers_cpu, 1),
                "database": round(database_cpu.seconds, 1),
                "sandbox": round(sandbox_cpu, 1),
                "rest": round(machine_cpu - workers_cpu - database_cpu.seconds - sandbox_cpu, 1),
            },
            "disagreements": self._disagreements(seeded),
        }

    def _wait(self, connection_ids: list[int], since, timeout: float, database_cpu: DatabaseCpu) -> bool:
        """Until the queue is empty, no run is running, no outbox row waits and every connection was polled."""
        broker = get_broker()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = SyncRun.objects.filter(connection_id__in=connection_ids)
            if (
                not broker.queue_size()
                and not runs.filter(status=SyncRun.Status.RUNNING).exists()
                and not OutboxEntry.objects.filter(connection_id__in=connection_ids).exists()
                and runs.filter(started_at__gte=since, trigger=SyncRun.Trigger.SCHEDULED)
                .values("connection_id")
                .distinct()
                .count()
                == len(connection_ids)
            ):
                return True
            database_cpu.sample()
            time.sleep(0.5)
        return False

    def _api_calls(self, accounts: list[dict]) -> int:
        ours = {(account["provider"], account["account_id"]) for account in accounts}
        return sum(
            sum(item["calls"].values())
            for item in self.sandbox.accounts()
            if (item["provider"], item["account_id"]) in ours
        )

    def _sides(self, item: Seeded) -> list[dict[str, tuple]]:
        """The tenant's contacts by email on each side: the app, then each CRM (None for an email held twice)."""
        app = {
            contact.email: tuple(getattr(contact, name) for name in FIELDS)
            for contact in Contact.objects.filter(tenant=item.tenant, deleted_at__isnull=True)
        }
        sides = [app]
        for account in item.accounts:
            records = self.sandbox.records(account["provider"], account["account_id"])
            side: dict = {}
            for record in records:
                side[record["email"]] = None if record["email"] in side else tuple(record[name] for name in FIELDS)
            sides.append(side)
        return sides

    def _disagreements(self, seeded: list[Seeded]) -> int:
        """Contacts missing on a side, held twice on a side, or with a field that differs from the app's."""
        found = 0
        for item in seeded:
            app, *crms = self._sides(item)
            for crm in crms:
                found += len(app.keys() ^ crm.keys())
                found += sum(1 for email in app.keys() & crm.keys() if crm[email] != app[email])
        return found

    def _edit(self, seeded: list[Seeded], changes: int) -> None:
        """``changes`` edits in each CRM and in the app per tenant, each to a different contact."""
        for item in seeded:
            emails = sorted(Contact.objects.filter(tenant=item.tenant).values_list("email", flat=True))
            for offset, account in enumerate(item.accounts):
                chosen = set(emails[offset::3][:changes])
                records = self.sandbox.records(account["provider"], account["account_id"])
                for n, record in enumerate(r for r in records if r["email"] in chosen):
                    self.sandbox.record_update(
                        account["provider"], account["account_id"], record["id"], {"job_title": f"CRM edit {n}"}
                    )
            for n, contact in enumerate(Contact.objects.filter(tenant=item.tenant, email__in=emails[2::3][:changes])):
                contact_update(contact=contact, values={"last_name": f"App edit {n}"})


def _rate_limit_bound(seeded: list[Seeded], data: Dataset, workers: int) -> float:
    """The fewest seconds the initial syncs can take at the accounts' rate limits, one connection per worker."""
    bounds = [
        data.minimum_calls(account["api_profile"]) / account["api_profile"]["requests_per_second"]
        for item in seeded
        for account in item.accounts
    ]
    return max(sum(bounds) / workers, max(bounds))


# The report ---------------------------------------------------------------------------------------


def render_tenants(results: dict | None) -> str:
    if not results:
        return ""
    lines = [
        f"Many tenants: {results['tenants']} tenants x 2 connections x {results['contacts_per_side']} contacts "
        f"per side, then {results['changes']} edits per side and tenant; clusters of one worker each, "
        f"{results['cores']} cores:",
        "",
        "| workers | phase | records | seconds | rate-limit bound s | records/s | vs 1 worker | API calls/record "
        "| queries/record | CPU s workers | CPU s PostgreSQL | CPU s sandbox | CPU s rest | runs (failed) "
        "| disagreements |",
        "| " + " | ".join(["---"] * 15) + " |",
    ]
    first = {}
    for item in results["rounds"]:
        for name in ("initial", "incremental"):
            phase = item[name]
            first.setdefault(name, phase["records_per_second"])
            scale = round(phase["records_per_second"] / first[name], 2) if first[name] else ""
            cpu = phase["cpu_seconds"]
            cells = [
                item["workers"], name, phase["records"], phase["seconds"], phase.get("rate_limit_bound_seconds", ""),
                phase["records_per_second"], scale, phase["api_calls_per_record"], phase["queries_per_record"],
                cpu["workers"], cpu["database"], cpu["sandbox"], cpu["rest"],
                f"{phase['runs']} ({phase['failed_runs']})",
                phase["disagreements"] if phase["settled"] else f"{phase['disagreements']} (timed out)",
            ]  # fmt: skip
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines.append("")
    return "\n".join(lines)
