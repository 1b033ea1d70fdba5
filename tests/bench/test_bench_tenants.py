"""bench_sync's tenants part at a tiny size: separate django-q2 clusters sync several tenants to agreement.

Throughput itself is read from the figures the full run prints (docs/benchmarks.md); what is asserted
here is that every side converged and that the figures were counted across the worker processes.
"""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from syncapp.models import Tenant
from syncapp.sandbox.bench_tenants import tenants_bench_refusal

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(bool(tenants_bench_refusal()), reason=tenants_bench_refusal() or "runs")
def test_tenants_part_converges_every_tenant_with_one_and_two_worker_processes(capsys):
    call_command(
        "bench_sync", "--only", "tenants", "--tenants", "3", "--tenant-contacts", "20", "--tenant-changes", "3",
        "--workers", "1,2", "--tenant-timeout", "60", "--json",
    )  # fmt: skip
    results = json.loads(capsys.readouterr().out)["tenants"]

    assert [item["workers"] for item in results["rounds"]] == [1, 2]
    for item in results["rounds"]:
        initial, incremental = item["initial"], item["incremental"]
        # 20 per side, 10 shared: each of the 6 connections links 30 contacts; 3 edits on each of 3 sides.
        assert (initial["records"], incremental["records"]) == (180, 27)
        for phase in (initial, incremental):
            assert phase["settled"] and phase["disagreements"] == 0
            assert phase["failed_runs"] == 0
            # Calls come from the sandbox's counters, queries from the worker processes' own count.
            assert phase["api_calls"] > 0 and phase["queries"] > 0
            assert phase["records_per_second"] > 0 and phase["cpu_seconds"]["workers"] > 0
        # Every connection's poll ran once per phase, besides the pushes the edits queued.
        assert initial["runs"] >= 6 and incremental["runs"] >= 6
    assert not Tenant.objects.filter(slug__startswith="bench-").exists()


def test_tenants_part_refuses_to_run_without_redis(settings):
    settings.REDIS_URL = ""

    with pytest.raises(CommandError, match="needs (PostgreSQL|Redis)"):
        call_command("bench_sync", "--only", "tenants", "--tenants", "1", "--json")

    assert not Tenant.objects.exists()
