#!/usr/bin/env bash
# Provides Kyutai's pinned moshi-server (the Rust server of delayed-streams-modeling and Unmute)
# and prints its absolute path on stdout (progress on stderr). Used by the interop suite
# (tests/interop/), which runs our plugins against it and Kyutai's clients against ours.
#   1. MOSHI_SERVER_BIN, if set (taken to be that version: the binary cannot tell);
#   2. else it is built from crates.io into .cache/moshi-server/<version>/ (git-ignored), CPU only.
# The build took 10 minutes on 2 cores here (25 on a busier machine); `--check` only says whether it is there.
set -euo pipefail

VERSION="${MOSHI_SERVER_VERSION:-0.6.4}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${MOSHI_SERVER_CACHE:-$ROOT/.cache/moshi-server}/v$VERSION"
TARGET="$CACHE_DIR/bin/moshi-server"

STAMP="$CACHE_DIR/BUILT"  # written after a complete build (the binary has no --version)

log() { echo "[moshi-server] $*" >&2; }

if [[ -n "${MOSHI_SERVER_BIN:-}" ]]; then
  if [[ ! -x "$MOSHI_SERVER_BIN" ]]; then
    log "MOSHI_SERVER_BIN=$MOSHI_SERVER_BIN is not an executable"
    exit 1
  fi
  echo "$MOSHI_SERVER_BIN"; exit 0
fi

if [[ -x "$TARGET" && -f "$STAMP" ]]; then
  echo "$TARGET"; exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
  log "moshi-server v$VERSION is not built; run: bash scripts/ensure-moshi-server.sh"
  exit 1
fi

if ! command -v cargo >/dev/null 2>&1; then
  cat >&2 <<MSG
[moshi-server] moshi-server v$VERSION was not found and cargo is not installed to build it.
Install Rust (https://rustup.rs), then run this script again, or point MOSHI_SERVER_BIN at a
moshi-server $VERSION binary (cargo install moshi-server --version $VERSION).
MSG
  exit 1
fi

# The server embeds Python (pyo3) for its TTS module: build against a shared libpython 3.11 on
# the loader's default path (the system one), the version of the project's virtualenv.
PYO3_PYTHON="${PYO3_PYTHON:-}"
if [[ -z "$PYO3_PYTHON" ]]; then
  for candidate in /usr/bin/python3.11 /usr/bin/python3 "$(command -v python3.11 || true)"; do
    if [[ -x "$candidate" ]] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYO3_PYTHON="$candidate"; break
    fi
  done
fi
if [[ -z "$PYO3_PYTHON" ]]; then
  log "no Python 3.11 found to embed (set PYO3_PYTHON)"
  exit 1
fi
log "building moshi-server v$VERSION from crates.io into $CACHE_DIR, CPU only (about 25 minutes on 2 cores)"
mkdir -p "$CACHE_DIR"
if ! PYO3_PYTHON="$PYO3_PYTHON" cargo install moshi-server --version "$VERSION" --locked \
    --root "$CACHE_DIR" >&2; then
  log "cargo install failed: check that crates.io is reachable and that $PYO3_PYTHON has its shared library"
  exit 1
fi
echo "$VERSION" > "$STAMP"
log "built $TARGET"
echo "$TARGET"
