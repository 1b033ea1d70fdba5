# Sourced by the scripts here: make sure .venv (or $VENV) exists and has requirements.txt installed.
venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet -r requirements.txt
