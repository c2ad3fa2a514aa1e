#!/usr/bin/env bash
# Installs everything the assistant needs on Debian / Raspberry Pi OS (64-bit): system packages, then a virtual
# environment in .venv with this package and its Python dependencies. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test}"
case "$EXTRAS" in -*|*[!a-z0-9,-]*)
  echo "usage: scripts/setup.sh [EXTRAS]   (a comma list of pyproject extras, e.g. test,asr-base; default: test)" >&2
  exit 2 ;;
esac

# 1. Debian packages: PortAudio for sounddevice, espeak-ng and sox for synthesized test speech.
DEBS="libportaudio2 espeak-ng sox libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins"
# The browser tests of `assistant ui` drive Debian's Chromium through its chromedriver (nothing downloads a browser).
case "$EXTRAS" in *test*) DEBS="$DEBS chromium chromium-driver" ;; esac
# Java 17 for Apache Spark (`assistant learn ... --engine spark`; the test extra runs every learning job on it too)
case "$EXTRAS" in *test*|*spark*) DEBS="$DEBS openjdk-17-jre-headless" ;; esac
missing=""
for d in $DEBS; do dpkg -s "$d" >/dev/null 2>&1 || missing="$missing $d"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "Installing Debian packages:$missing"
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# 2. Python environment. Reinstall only when pyproject.toml changed.
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-$EXTRAS"
if [ ! -f "$stamp" ]; then
  echo "Installing Python packages into .venv (first run takes a few minutes)..."
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import assistant, faster_whisper, piper, pyopen_wakeword, pymicro_wakeword, onnxruntime, sounddevice" \
    || { echo "setup: the Python packages did not install; see the messages above." >&2; exit 1; }
  rm -f .venv/.installed-*; touch "$stamp"
fi

# 3. Tests only: wyoming-satellite (the Raspberry Pi satellite program) in its own venv, because it pins wyoming
# 1.4.1 and the assistant's server uses 1.10.2; tests/integration/test_wyoming_satellite.py runs it as a subprocess.
case "$EXTRAS" in *test*)
  if [ ! -x .venv-satellite/bin/wyoming-satellite ]; then
    echo "Installing wyoming-satellite into .venv-satellite (for the satellite test)..."
    "$PY" -m venv .venv-satellite
    .venv-satellite/bin/python -m pip install -q "wyoming-satellite==1.0.0" 2>&1 | grep -v "^WARNING: Location" || true
    [ -x .venv-satellite/bin/wyoming-satellite ] \
      || { echo "setup: wyoming-satellite did not install; see the messages above." >&2; exit 1; }
  fi ;;
esac
