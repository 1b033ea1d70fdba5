"""The soak's parts that need no processes: the Procfile it starts, tenant sizes, where it refuses to run."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from syncdev.processes import procfile_read
from syncdev.soak import environment_problem
from syncdev.workload import sizes

ROOT = Path(__file__).resolve().parents[2]


def test_the_procfile_defines_the_web_process_and_the_worker_the_soak_starts():
    types = procfile_read(ROOT / "Procfile")
    assert types["web"].startswith("env BULK_CLUSTER=bulk gunicorn contactsync.wsgi ") and "$PORT" in types["web"]
    assert types["worker"] == "env BULK_CLUSTER=bulk python manage.py qcluster"
    assert types["bulk"] == "env BULK_CLUSTER=bulk Q_CLUSTER_NAME=bulk python manage.py qcluster"


def test_a_procfile_line_without_a_name_is_refused(tmp_path):
    (tmp_path / "Procfile").write_text("# comment\n\nweb: gunicorn x\nnot a process line\n")
    with pytest.raises(ValueError, match="Procfile:4"):
        procfile_read(tmp_path / "Procfile")


def test_tenant_sizes_spread_from_the_smallest_to_the_largest():
    assert sizes(5, 10, 20_000) == [10, 67, 447, 2991, 20000]
    assert sizes(1, 10, 50) == [50]


def test_the_soak_refuses_sqlite_and_the_orm_broker():
    assert "PostgreSQL" in environment_problem(engine="django.db.backends.sqlite3", redis_url="redis://x")
    assert "REDIS_URL" in environment_problem(engine="django.db.backends.postgresql", redis_url="")
    assert environment_problem(engine="django.db.backends.postgresql", redis_url="redis://x") is None


def test_the_command_stops_before_starting_anything_without_redis(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="The soak needs"):
        call_command("soak", "--reduced")
