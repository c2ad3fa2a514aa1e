#!/usr/bin/env bash
# Set everything up, then let the assistant answer the bundled recordings (no microphone needed).
# Response audio lands in out/demo/; traces in var/ (see `assistant traces list`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export HF_HUB_OFFLINE=1 ASSISTANT_DATA_DIR="${ASSISTANT_DATA_DIR:-$PWD/var}"
.venv/bin/assistant replay assistant/data/demo/*.flac --out out/demo "$@"
echo
.venv/bin/assistant traces list -n 10
