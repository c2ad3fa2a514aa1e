#!/usr/bin/env bash
# Set everything up, then run the whole test suite on the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
