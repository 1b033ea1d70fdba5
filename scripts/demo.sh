#!/usr/bin/env bash
# Install what the app needs into .venv (once) and run the demo; arguments go to `manage.py demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
exec "$venv/bin/python" manage.py demo "$@"
