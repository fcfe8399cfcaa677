#!/usr/bin/env bash
# README command (2): set up everything, then lint, type-check and run the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k dispatch`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh

step() { printf '\033[1m[test]\033[0m %s\n' "$*" >&2; }
step "ruff"
uv run ruff check .
uv run ruff format --check .
step "mypy"
uv run mypy
step "compose schema"
uv run check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
if [[ -f web/package.json ]]; then
  step "widget unit tests"
  (cd web && npm test)
fi
step "pytest"
export NO_TORCH_COMPILE=1
uv run pytest "$@"
