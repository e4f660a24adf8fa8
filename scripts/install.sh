#!/usr/bin/env bash
# Create .venv and install the pinned requirements into it (idempotent, quiet when done).
# Usage: scripts/install.sh [requirements file, default requirements.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
stamp_of() { echo ".venv/.installed-$(cat "$1" requirements.txt | sha256sum | cut -c1-16)"; }
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=$(stamp_of "$requirements")
if [ ! -f "$stamp" ]; then
    # pip is quiet (its progress bars fill a log), so say what is happening and for how long
    echo "install: setting up .venv from $requirements (first time: a minute or two)" >&2
    .venv/bin/pip install --quiet --upgrade pip
    # torch before anything that depends on it, or pip picks a build we did not choose
    echo "install: torch (CPU build)..." >&2
    .venv/bin/pip install --quiet torch==2.13.0
    echo "install: funasr, gradio, fastapi and the rest..." >&2
    .venv/bin/pip install --quiet -r "$requirements"
    echo "install: done" >&2
    touch "$stamp"
    # requirements-test.txt includes requirements.txt: the app's own set is installed too
    if grep -q -- "-r requirements.txt" "$requirements"; then touch "$(stamp_of requirements.txt)"; fi
fi
# The package itself, editable (a link to this checkout): without it `python -m
# sensevoice_server.cli` only worked from here. (pip builds it with a current setuptools of
# its own: a fresh venv's setuptools 65 cannot build an editable wheel.)
# -P: this directory is not on the path of the check, wherever it runs from.
installed="import importlib.util, sys; sys.exit(not importlib.util.find_spec('sensevoice_server'))"
if ! .venv/bin/python -P -c "$installed"; then
    .venv/bin/pip install --quiet --no-deps --editable .
fi
