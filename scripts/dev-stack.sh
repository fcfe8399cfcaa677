#!/usr/bin/env bash
# README command (1): set up and run the whole local stack on this machine.
#   livekit-server (dev mode) · Kyutai inference server · LLM · token service + widget ·
#   agent worker · dispatcher (every room with a person and no agent gets one, in order)
# Ctrl-C stops everything cleanly. Logs: .cache/stack-logs/<service>.log
#
#   KYUTAI_MODELS=tiny|default   models of the inference server (default: tiny, CPU-friendly babble;
#                                `default` needs a GPU and the Hugging Face weights)
#   KYUTAI_ENGINES=stt,tts,moshi engines of the inference server (default: all three; moshi
#                                serves the duplex `moshi` character)
#   KYUTAI_LLM_URL=http://...    an OpenAI-compatible LLM; unset = a local scripted stub LLM
#   SKIP_SETUP=1                 do not run scripts/setup.sh first
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOG_DIR="$ROOT/.cache/stack-logs"
mkdir -p "$LOG_DIR"

say() { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[stack] %s\033[0m\n' "$*" >&2; exit 1; }

# --- setup: what is missing (system packages, uv, Python packages, livekit-server, widget) ---
if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
  say "setting up (scripts/setup.sh; done work is skipped)"
  bash scripts/setup.sh || die "setup failed (see above)"
fi
LIVEKIT_SERVER="$(bash scripts/ensure-livekit-server.sh)" || die "no livekit-server (see above)"
PY="$ROOT/.venv/bin/python"

# --- process management -------------------------------------------------------------------
PIDS=()
NAMES=()
stop_all() {
  trap - INT TERM EXIT
  say "stopping ${NAMES[*]:-nothing}"
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill -TERM "${PIDS[$i]}" 2>/dev/null || true; done
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    for _ in $(seq 1 100); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  say "stopped"
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

start() {  # start NAME CMD...: run in the background, log to $LOG_DIR/NAME.log
  local name="$1"; shift
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  PIDS+=("$!"); NAMES+=("$name")
}

wait_http() {  # wait_http NAME URL TIMEOUT
  local name="$1" url="$2" timeout="$3" pid="${PIDS[-1]}"
  for _ in $(seq 1 $((timeout * 10))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then say "$name is up ($url)"; return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited; last lines of $LOG_DIR/$name.log:
$(tail -n 20 "$LOG_DIR/$name.log")"
    sleep 0.1
  done
  die "$name did not answer $url within ${timeout}s; see $LOG_DIR/$name.log"
}

# Dev-mode credentials: LiveKit's documented development keys, accepted only in dev mode.
export LIVEKIT_URL="ws://127.0.0.1:7880" LIVEKIT_API_KEY="devkey" LIVEKIT_API_SECRET="secret"
export KYUTAI_DEV_MODE=1 NO_TORCH_COMPILE="${NO_TORCH_COMPILE:-1}"
INFERENCE_PORT="${INFERENCE_PORT:-8089}" TOKENS_PORT="${TOKENS_PORT:-8090}"
export AGENT_HTTP_PORT="${AGENT_HTTP_PORT:-8081}" AGENT_HTTP_HOST="${AGENT_HTTP_HOST:-127.0.0.1}"

start livekit-server "$LIVEKIT_SERVER" --dev --config livekit.yaml
wait_http livekit-server "http://127.0.0.1:7880" 30

if [[ -f inference/__main__.py ]]; then
  export KYUTAI_MODELS="${KYUTAI_MODELS:-tiny}"
  # Moshi too, for the duplex `moshi` character (one process, one GPU)
  export KYUTAI_ENGINES="${KYUTAI_ENGINES:-stt,tts,moshi}"
  start inference "$PY" -m inference serve --models "$KYUTAI_MODELS" --host 127.0.0.1 --port "$INFERENCE_PORT"
  wait_http inference "http://127.0.0.1:$INFERENCE_PORT/api/build_info" 300
  export KYUTAI_STT_URL="ws://127.0.0.1:$INFERENCE_PORT" KYUTAI_TTS_URL="ws://127.0.0.1:$INFERENCE_PORT"
  export KYUTAI_MOSHI_URL="ws://127.0.0.1:$INFERENCE_PORT"
fi

if [[ -z "${KYUTAI_LLM_URL:-}" ]]; then
  say "KYUTAI_LLM_URL is not set: using the local scripted stub LLM (set it to a real LLM, e.g. vLLM)"
  start stub-llm "$PY" -m harness.stub_llm --port 8000
  wait_http stub-llm "http://127.0.0.1:8000/v1/models" 30
  export KYUTAI_LLM_URL="http://127.0.0.1:8000"
fi

if [[ -f tokens/__main__.py ]]; then
  export TOKEN_DEV_MODE=1 TOKEN_DEMO_MODE="${TOKEN_DEMO_MODE:-1}"
  export TOKEN_ALLOWED_ORIGINS="${TOKEN_ALLOWED_ORIGINS:-http://127.0.0.1:$TOKENS_PORT,http://localhost:$TOKENS_PORT}"
  start tokens "$PY" -m tokens serve --host 127.0.0.1 --port "$TOKENS_PORT"
  wait_http tokens "http://127.0.0.1:$TOKENS_PORT/healthz" 30
fi

start dispatcher "$PY" -m dispatcher --host 127.0.0.1 --port 8083
wait_http dispatcher "http://127.0.0.1:8083/" 30
start agent "$PY" -m agent dev
wait_http agent "http://127.0.0.1:$AGENT_HTTP_PORT/" 60
for _ in $(seq 1 300); do grep -q "registered worker" "$LOG_DIR/agent.log" && break; sleep 0.1; done
grep -q "registered worker" "$LOG_DIR/agent.log" || die "the agent did not register; see $LOG_DIR/agent.log"

JOIN_TOKEN="$("$PY" scripts/dev_token.py --room demo --identity you)"
cat <<MSG

  The stack is running.
    LiveKit server   ws://127.0.0.1:7880        (dev keys devkey / secret)
    Agent worker     http://127.0.0.1:$AGENT_HTTP_PORT/        (health), agent name ${LIVEKIT_AGENT_NAME:-kyutai-agent}
                     http://127.0.0.1:${AGENT_STATUS_PORT:-8082}/health  (are STT, TTS and LLM reachable?)
$( [[ -f inference/__main__.py ]] && echo "    Inference        ws://127.0.0.1:$INFERENCE_PORT         (models: $KYUTAI_MODELS)" )
    LLM              $KYUTAI_LLM_URL
    Dispatcher       http://127.0.0.1:8083/        (dispatches the agent again if its worker dies)
$( [[ -f tokens/__main__.py ]] && echo "    Demo page        http://127.0.0.1:$TOKENS_PORT/        <- open this in a browser" )

  Join room "demo" with the agent from any LiveKit client (e.g. https://meet.livekit.io/custom):
    URL    ws://127.0.0.1:7880
    token  $JOIN_TOKEN

  Logs in $LOG_DIR. Press Ctrl-C to stop.
MSG

# Stay in the foreground until Ctrl-C, or until a service dies.
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      die "${NAMES[$i]} exited unexpectedly; last lines of $LOG_DIR/${NAMES[$i]}.log:
$(tail -n 20 "$LOG_DIR/${NAMES[$i]}.log")"
    fi
  done
  sleep 1
done
