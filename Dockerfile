# One image for the Python services (agent worker, inference server, token service);
# docker-compose.yml picks the command. The widget is built in a Node stage.
FROM node:20-bookworm-slim AS widget
WORKDIR /src
COPY web/package.json web/package-lock.json web/
RUN cd web && npm ci
COPY web web
RUN mkdir -p tokens/static && cd web && npm run build

FROM python:3.11-slim-bookworm
# build-essential: on CUDA, moshi torch.compiles its RMSNorm, RoPE and gating kernels and Triton
# builds each kernel's launcher with a C compiler (against the Python headers this image has).
# Without one the server would fail its warm-up; KYUTAI_TORCH_COMPILE=off is the other choice.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libportaudio2 curl ca-certificates build-essential \
 && rm -rf /var/lib/apt/lists/*
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1
COPY pyproject.toml uv.lock ./
COPY agent/pyproject.toml agent/
COPY inference/pyproject.toml inference/
COPY tokens/pyproject.toml tokens/
COPY catalog/pyproject.toml catalog/
COPY dispatcher/pyproject.toml dispatcher/
COPY harness/pyproject.toml harness/
COPY bench/pyproject.toml bench/
COPY plugins/livekit-plugins-kyutai/pyproject.toml plugins/livekit-plugins-kyutai/README.md plugins/livekit-plugins-kyutai/
RUN uv sync --frozen --no-dev --no-install-workspace
COPY . .
COPY --from=widget /src/tokens/static/widget.js tokens/static/widget.js
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
# Compiled kernels survive restarts when /cache is a volume (docker-compose.yml mounts one).
ENV TORCHINDUCTOR_CACHE_DIR=/cache/torchinductor TRITON_CACHE_DIR=/cache/triton
# Silero VAD and other plugin assets, so workers start without network access.
RUN python -m agent download-files || true
