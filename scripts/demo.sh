#!/usr/bin/env bash
# Set everything up, then let the assistant answer the bundled recordings (no microphone needed).
# Response audio lands in out/demo/; traces go to the same data dir every other command reads
# ($ASSISTANT_DATA_DIR, else ~/.local/share/voice-assistant), so `assistant traces list` finds the demo's turns.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
export HF_HUB_OFFLINE=1
.venv/bin/assistant replay assistant/data/demo/*.flac --out out/demo "$@"
echo
.venv/bin/assistant traces list -n 10
data_dir="$(.venv/bin/python -c 'from assistant.config import default_data_dir; print(default_data_dir())')"
echo "Traces are in $data_dir: \`assistant traces list\` and \`assistant traces show ID\` read them from there."
