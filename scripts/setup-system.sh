#!/usr/bin/env bash
# System packages the project needs (Debian/Ubuntu): installs what is missing, or says what to do.
#   espeak-ng, sox   speech fixtures for tests      libportaudio2   imported by moshi/livekit-agents
#   redis-server     multi-node LiveKit tests       chromium        real-browser widget tests
#   curl             readiness checks
set -euo pipefail
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v sox >/dev/null || need+=(sox)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need+=(libportaudio2)
[[ ${#need[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "[setup] missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || { echo "[setup] run as root or install: ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "[setup] installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
