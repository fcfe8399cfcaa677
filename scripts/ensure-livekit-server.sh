#!/usr/bin/env bash
# Provides the pinned livekit-server and prints its absolute path on stdout (progress on stderr).
#   1. LIVEKIT_SERVER_BIN, if set, must be that exact version;
#   2. else a `livekit-server` on PATH is used when its version matches;
#   3. else it is built from the Go module proxy into .cache/livekit/<version>/ (git-ignored).
set -euo pipefail

VERSION="${LIVEKIT_SERVER_VERSION:-1.13.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${LIVEKIT_SERVER_CACHE:-$ROOT/.cache/livekit}/v$VERSION"
TARGET="$CACHE_DIR/livekit-server"

log() { echo "[livekit-server] $*" >&2; }

version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }

if [[ -n "${LIVEKIT_SERVER_BIN:-}" ]]; then
  have="$(version_of "$LIVEKIT_SERVER_BIN" || true)"
  if [[ "$have" != "$VERSION" ]]; then
    log "LIVEKIT_SERVER_BIN=$LIVEKIT_SERVER_BIN reports version '${have:-none}', need $VERSION"
    exit 1
  fi
  echo "$LIVEKIT_SERVER_BIN"; exit 0
fi

if on_path="$(command -v livekit-server 2>/dev/null)"; then
  if [[ "$(version_of "$on_path" || true)" == "$VERSION" ]]; then
    echo "$on_path"; exit 0
  fi
  log "ignoring $on_path: its version is not $VERSION"
fi

if [[ -x "$TARGET" && "$(version_of "$TARGET" || true)" == "$VERSION" ]]; then
  echo "$TARGET"; exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
[livekit-server] livekit-server v$VERSION was not found and Go is not installed to build it.
Install one of:
  - Go >= 1.26 (https://go.dev/dl/), then run this script again; or
  - the official binary: curl -sSL https://get.livekit.io | bash   (Linux)
                         brew install livekit                        (macOS)
    or download v$VERSION from https://github.com/livekit/livekit/releases
    and put it on PATH as livekit-server (or set LIVEKIT_SERVER_BIN).
MSG
  exit 1
fi

log "building livekit-server v$VERSION from the Go module proxy into $CACHE_DIR (takes a few minutes the first time)"
mkdir -p "$CACHE_DIR"
build_dir="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'rm -rf "$build_dir"' EXIT
if ! GOBIN="$build_dir" go install "github.com/livekit/livekit-server/cmd/server@v$VERSION" >&2; then
  log "go install failed: check that the Go module proxy (${GOPROXY:-https://proxy.golang.org}) is reachable and Go is >= 1.26"
  exit 1
fi
mv "$build_dir/server" "$TARGET"
log "built $("$TARGET" --version)"
echo "$TARGET"
