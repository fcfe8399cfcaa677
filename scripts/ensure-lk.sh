#!/usr/bin/env bash
# Provides the pinned LiveKit CLI (`lk`) and prints its absolute path on stdout (progress on stderr).
#   1. LK_BIN, if set, must be that exact version;
#   2. else an `lk` on PATH is used when its version matches;
#   3. else it is built from the Go module proxy into .cache/lk/<version>/ (git-ignored),
#      unless LK_NO_BUILD is set (the tests ask that way: they skip rather than build).
# Building needs Go >= 1.26, a C/C++ compiler and PortAudio's headers
# (`apt-get install portaudio19-dev`): lk links the system PortAudio (-tags portaudio_system).
# It takes about 10 minutes on 2 cores the first time (lk compiles WebRTC's audio processing).
set -euo pipefail

VERSION="${LK_VERSION:-2.18.2}"
# lk v2.18.2 pins github.com/livekit/protocol at a pseudo-version the module proxy does not
# serve (403); it builds against the next served tag instead. Empty = build as pinned.
PROTOCOL_REPLACE="${LK_PROTOCOL_REPLACE-v1.50.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${LK_CACHE:-$ROOT/.cache/lk}/v$VERSION"
TARGET="$CACHE_DIR/lk"

log() { echo "[lk] $*" >&2; }

version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }

if [[ -n "${LK_BIN:-}" ]]; then
  have="$(version_of "$LK_BIN" || true)"
  if [[ "$have" != "$VERSION" ]]; then
    log "LK_BIN=$LK_BIN reports version '${have:-none}', need $VERSION"
    exit 1
  fi
  echo "$LK_BIN"; exit 0
fi

if on_path="$(command -v lk 2>/dev/null)"; then
  if [[ "$(version_of "$on_path" || true)" == "$VERSION" ]]; then
    echo "$on_path"; exit 0
  fi
  log "ignoring $on_path: its version is not $VERSION"
fi

if [[ -x "$TARGET" && "$(version_of "$TARGET" || true)" == "$VERSION" ]]; then
  echo "$TARGET"; exit 0
fi

if [[ -n "${LK_NO_BUILD:-}" ]]; then
  log "lk v$VERSION is not built here: run scripts/ensure-lk.sh (Go >= 1.26, portaudio19-dev) or set LK_BIN"
  exit 1
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
[lk] lk v$VERSION was not found and Go is not installed to build it.
Install one of:
  - Go >= 1.26 (https://go.dev/dl/) and PortAudio's headers (apt-get install portaudio19-dev),
    then run this script again; or
  - the official binary: curl -sSL https://get.livekit.io/cli | bash   (Linux)
                         brew install livekit-cli                      (macOS)
    or download v$VERSION from https://github.com/livekit/livekit-cli/releases
    and put it on PATH as lk (or set LK_BIN).
MSG
  exit 1
fi

if ! pkg-config --exists portaudio-2.0 2>/dev/null; then
  log "PortAudio's headers are missing: apt-get install portaudio19-dev (or set LK_BIN)"
  exit 1
fi

log "building lk v$VERSION from the Go module proxy into $CACHE_DIR (about 10 minutes the first time)"
mkdir -p "$CACHE_DIR"
build_dir="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'chmod -R u+w "$build_dir" 2>/dev/null; rm -rf "$build_dir"' EXIT
# Built from the downloaded module, not `go install …@v$VERSION`: the proxy refuses to list
# livekit-cli's versions, which `go install` asks for, and the protocol pin may need replacing.
if ! src="$(go mod download -json "github.com/livekit/livekit-cli/v2@v$VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || [[ -z "$src" ]]; then
  log "go mod download failed: check that the Go module proxy (${GOPROXY:-https://proxy.golang.org}) is reachable"
  exit 1
fi
cp -R "$src/." "$build_dir/src"
chmod -R u+w "$build_dir/src"
cd "$build_dir/src"
if [[ -n "$PROTOCOL_REPLACE" ]]; then
  log "building against github.com/livekit/protocol@$PROTOCOL_REPLACE"
  go mod edit -replace "github.com/livekit/protocol=github.com/livekit/protocol@$PROTOCOL_REPLACE"
fi
if ! go build -mod=mod -trimpath -tags portaudio_system -o "$build_dir/lk" ./cmd/lk >&2; then
  log "go build failed: Go must be >= 1.26, with a C/C++ compiler and portaudio19-dev installed"
  exit 1
fi
mv "$build_dir/lk" "$TARGET"
log "built $("$TARGET" --version)"
echo "$TARGET"
