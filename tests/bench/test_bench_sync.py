"""bench_sync at a tiny size: it runs every sync part against the sandbox and reports figures that add up.

The speed targets themselves are read from the figures the full benchmark prints (docs/benchmarks.md);
what is asserted here are counts, which do not depend on the machine.
"""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from syncapp.models import Tenant
from syncapp.sandbox.bench import Bench, Dataset
from syncapp.sandbox.client import SandboxClient

pytestmark = pytest.mark.django_db(transaction=True)


def test_bench_sync_reports_calls_against_the_minimum_and_a_naive_baseline(capsys):
    call_command(
        "bench_sync",
        "--contacts", "60", "--linked", "50", "--changes", "4", "--only", "initial,naive,incremental", "--json",
    )  # fmt: skip
    results = json.loads(capsys.readouterr().out)

    initial = {item["provider"]: item for item in results["initial"]}
    for item in initial.values():
        assert item["status"] == "succeeded", item["error"]
        # 60 per side, 30 shared: the 30 app-only contacts go to the CRM, the 30 CRM-only ones to the app.
        assert item["created"] == 60
        assert sum(item["api_calls_by_endpoint"].values()) == item["api_calls"]
    # HubSpot: one page of 60, one create batch of 30, one update batch (3 shared contacts lack a phone).
    # The update batch is held across pages, so it is read once more before it is written.
    assert initial["hubspot"]["minimum_calls"] == 3
    assert initial["hubspot"]["api_calls_by_endpoint"] == {
        "GET /crm/v3/objects/contacts": 1,
        "POST /crm/v3/objects/contacts/batch/create": 1,
        "POST /crm/v3/objects/contacts/batch/read": 1,
        "POST /crm/v3/objects/contacts/batch/update": 1,
    }
    # Pipedrive writes one person per call: one page, 30 creates, 3 updates.
    assert initial["pipedrive"]["minimum_calls"] == 34
    assert 34 <= initial["pipedrive"]["api_calls"] <= 1.1 * 34

    naive = {item["provider"]: item for item in results["naive"]}
    for item in naive.values():
        assert item["contacts_run"] == 60
        # At least one call per app contact: the baseline the batched sync is compared with.
        assert item["api_calls"] >= 60
    assert naive["hubspot"]["api_calls"] > 10 * initial["hubspot"]["api_calls"]

    for item in results["incremental"]:
        assert item["link_sync"]["status"] == "succeeded"
        assert item["pull"]["updated"] == 4 and item["push"]["updated"] == 4
    pulls = {item["provider"]: item["pull"]["api_calls_by_endpoint"] for item in results["incremental"]}
    # HubSpot: one search, then its (empty) recycling bin for deletions; Pipedrive: one updated_since page.
    assert pulls == {
        "hubspot": {"POST /crm/v3/objects/contacts/search": 1, "GET /crm/v3/objects/contacts": 1},
        "pipedrive": {"GET /api/v2/persons": 1},
    }
    hubspot = next(item for item in results["incremental"] if item["provider"] == "hubspot")
    assert hubspot["push"]["api_calls"] == 2  # a batch read and a batch update
    # The benchmark removes the tenants it made.
    assert not Tenant.objects.filter(slug__startswith="bench-").exists()


@pytest.mark.parametrize("provider", ["hubspot", "pipedrive"])
def test_bench_connections_pace_at_the_accounts_own_burst_limit(crm_sandbox, provider):
    bench = Bench(SandboxClient(crm_sandbox.url), progress=lambda line: None)
    try:
        connection, _ = bench.setup(provider, Dataset(app=range(0), crm=range(0)), label="limit")
    finally:
        bench.cleanup()

    # HubSpot Free: 100 per 10 s (the client's RATE_LIMIT_WINDOW); Pipedrive Premium: 100 per 2 s.
    assert connection.rate_limit == 100


def test_bench_sync_refuses_to_run_in_production(settings):
    settings.IS_PRODUCTION = True

    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        call_command("bench_sync", "--contacts", "60", "--only", "initial", "--json")

    assert not Tenant.objects.exists()
