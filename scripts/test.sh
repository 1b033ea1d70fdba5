#!/usr/bin/env bash
# Install what the tests need into .venv (once) and run the suite; arguments go to pytest.
# DATABASE_URL picks the database (SQLite by default), REDIS_URL the django-q2 broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
# pytest exits 5 when it collects no tests, so an empty run fails here too.
exec "$venv/bin/python" -m pytest "$@"
