#!/usr/bin/env bash
# Install everything the tests need (system packages when run as root, the venv) and run them.
# Extra arguments go to pytest, e.g. scripts/run-tests.sh -k audio
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(ffmpeg espeak-ng sox redis-server nginx chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing system packages (install them with sudo apt-get install): ${missing[*]}" >&2
    fi
fi
scripts/install.sh requirements-test.txt
exec .venv/bin/python -m pytest "$@"
