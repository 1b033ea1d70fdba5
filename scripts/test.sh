#!/usr/bin/env bash
# Install what the tests need into .venv (once) and run the suite; arguments go to pytest.
# DATABASE_URL picks the database (SQLite by default), REDIS_URL the django-q2 broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# --fast: the quick loop while developing, without the browser, e2e, sandbox and bench tests (CI runs all).
browser=yes
if [ "${1:-}" = "--fast" ]; then
  shift
  set -- -m "not browser and not e2e and not sandbox and not bench" "$@"
  browser=no
fi
# The browser tests drive Debian's Chromium at /usr/bin/chromium (Playwright never downloads one).
if [ "$browser" = yes ] && [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null && { [ -z "$sudo" ] || command -v sudo >/dev/null; }; then
    echo "Installing Chromium for the browser tests (apt-get install chromium)" >&2
    $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium
  else
    echo "The browser tests need Chromium at /usr/bin/chromium: install Debian's or Ubuntu's 'chromium' package." >&2
    exit 1
  fi
fi
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
# pytest exits 5 when it collects no tests, so an empty run fails here too.
exec "$venv/bin/python" -m pytest "$@"
