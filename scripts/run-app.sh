#!/usr/bin/env bash
# Install (first time only) and run the service; flags go to app_sensevoice.py.
# Example: scripts/run-app.sh --model /models/SenseVoiceSmall --vad-model /models/fsmn-vad
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh requirements.txt
exec .venv/bin/python app_sensevoice.py "$@"
