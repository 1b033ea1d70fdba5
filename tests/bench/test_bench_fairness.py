"""bench_sync's fairness part at a tiny size, on PostgreSQL and Redis: its processes start, and its figures add up."""

import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from syncapp.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)

production_like = settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and bool(settings.REDIS_URL)


@pytest.mark.skipif(production_like, reason="the refusal shows on SQLite or the ORM broker only")
def test_the_fairness_part_refuses_sqlite_and_the_orm_broker_with_what_it_needs():
    with pytest.raises(CommandError, match="needs PostgreSQL and Redis"):
        call_command("bench_sync", "--only", "fairness", "--fairness-contacts", "100", "--json")
    assert not Tenant.objects.exists()


@pytest.mark.skipif(not production_like, reason="needs DATABASE_URL=postgres://... and REDIS_URL")
def test_small_tenants_edits_are_timed_while_another_tenants_initial_sync_runs_in_slices(capsys, settings):
    settings.SYNC_SLICE_PAGES = 5
    call_command("bench_sync", "--only", "fairness", "--fairness-contacts", "1500", "--json")
    result = json.loads(capsys.readouterr().out)["fairness"]

    assert result["initial_sync_status"] == "succeeded"
    assert result["initial_sync_slices"] == 3  # 15 pages of 100 records, 5 a slice
    assert result["edits_sent"] >= 5 and result["edits_seen"] == result["edits_sent"]
    assert 0 < result["latency_p50_ms"] <= result["latency_p95_ms"] <= result["latency_max_ms"]
    assert not Tenant.objects.filter(slug__startswith="bench-").exists()
