#!/usr/bin/env bash
# Install the voice assistant as a service on 64-bit Raspberry Pi OS (Bookworm), Pi 5 or Pi 4.
#   hardware/install-rpi.sh [hardware/PROFILE.yaml]      (default: hardware/rpi5-usb.yaml)
# Run it as the user the assistant should run as (not root); it uses sudo for system packages.
# Safe to run again. See hardware/README.md for the steps it automates and for choosing devices.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
PROFILE="$(realpath "${1:-hardware/rpi5-usb.yaml}")"
[ -f "$PROFILE" ] || { echo "no such profile: $PROFILE" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then
  echo "Run this as the user the assistant runs as (e.g. pi), not root; it calls sudo where needed." >&2; exit 1
fi
if [ "$(uname -m)" != "aarch64" ]; then
  echo "This needs 64-bit Raspberry Pi OS (uname -m = aarch64, found $(uname -m)): onnxruntime and CTranslate2" >&2
  echo "have no 32-bit ARM wheels. Reinstall with the 64-bit image (Raspberry Pi Imager: 'Raspberry Pi OS (64-bit)')." >&2
  exit 1
fi
. /etc/os-release
[ "${VERSION_CODENAME:-}" = "bookworm" ] || echo "warning: tested on Bookworm, this is ${VERSION_CODENAME:-unknown}" >&2

# 1. System packages: PortAudio (sounddevice), ALSA tools to test devices, the ALSA->PulseAudio/PipeWire bridge,
#    pactl for the echo canceller, Python venv support.
sudo apt-get update -qq
sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  python3-venv python3-dev libportaudio2 libsndfile1 alsa-utils libasound2-plugins pulseaudio-utils espeak-ng sox

# 2. Access to sound devices without a desktop session.
if ! id -nG "$USER" | grep -qw audio; then
  sudo usermod -aG audio "$USER"
  echo "Added $USER to the 'audio' group (takes effect at the next login / reboot)."
fi

# 3. Python environment (.venv) and packages.
scripts/setup.sh test

# 4. The NLU model is trained on a bigger machine (`assistant train nlu`); copy models/nlu/ here.
[ -f models/nlu/model.onnx ] || echo "warning: models/nlu/model.onnx is missing: copy models/nlu/ from the machine that trained it." >&2

# 5. The service (a systemd user unit; lingering starts it at boot without a login).
mkdir -p "$HOME/.config/systemd/user" "$HOME/.config/voice-assistant"
sed -e "s|@REPO@|$REPO|g" -e "s|@PROFILE@|$PROFILE|g" hardware/voice-assistant.service \
  > "$HOME/.config/systemd/user/voice-assistant.service"
sudo loginctl enable-linger "$USER"
systemctl --user daemon-reload
systemctl --user enable voice-assistant.service
systemctl --user restart voice-assistant.service || true
echo
echo "Installed. Check the devices it found:   $REPO/.venv/bin/assistant devices"
echo "Follow it:                               journalctl --user -u voice-assistant -f"
echo "Change the profile: edit $PROFILE, then  systemctl --user restart voice-assistant"
