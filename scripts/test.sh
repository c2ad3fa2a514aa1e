#!/usr/bin/env bash
# Set everything up, then check lint, formatting and the architecture's boundaries, then run both test tiers:
# tests/unit (no models, under a minute) on its own, so its no-model guard sees every test, then tests/integration
# (real models, real and synthesized audio, virtual microphone and speaker). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test,asr-base
export HF_HUB_OFFLINE=1
echo "== ruff check, ruff format --check"
.venv/bin/ruff check assistant tests scripts
.venv/bin/ruff format --check assistant tests scripts
if [ -f ../shared/tools/arch_check.py ]; then
  echo "== architecture (import circles, imports of the CLI, private names across modules)"
  .venv/bin/python ../shared/tools/arch_check.py
fi
echo "== unit tier"
.venv/bin/python -m pytest tests/unit "$@"
echo "== integration tier"
exec .venv/bin/python -m pytest tests/integration "$@"
