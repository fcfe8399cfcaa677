#!/usr/bin/env bash
# Everything the project needs, from scratch: system packages, uv, Python packages (locked),
# the pinned livekit-server, the widget bundle. Safe to run again: each step skips done work.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

step "system packages"
bash scripts/setup-system.sh

if ! command -v uv >/dev/null 2>&1; then
  step "installing uv"
  python3 -m pip install --quiet uv 2>/dev/null || python3 -m pip install --quiet --user uv \
    || curl -LsSf https://astral.sh/uv/install.sh | sh
  export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
fi
step "Python packages (uv sync --frozen)"
uv sync --frozen

step "livekit-server"
bash scripts/ensure-livekit-server.sh >/dev/null

if [[ -f web/package.json ]]; then
  step "widget (npm ci && npm run build)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build)
fi
