#!/usr/bin/env bash
# Install everything the tests need (system packages when run as root, the venv), check
# formatting, lint and types, then run the tests. Extra arguments go to pytest, e.g.
#   scripts/run-tests.sh -k audio          scripts/run-tests.sh --unit   (the in-process tier)
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(ffmpeg espeak-ng sox redis-server nginx chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "install: system packages ${missing[*]} (apt, a minute or two)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing system packages (install them with sudo apt-get install): ${missing[*]}" >&2
    fi
fi
scripts/install.sh requirements-test.txt
args=()
for arg in "$@"; do
    if [ "$arg" = --unit ]; then args+=(tests/unit); else args+=("$arg"); fi
done
.venv/bin/ruff format --check --quiet .
.venv/bin/ruff check --quiet .
.venv/bin/mypy
exec .venv/bin/python -m pytest "${args[@]}"
