"""aiohttp server speaking the Kyutai streaming protocol on top of the batched engines."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inference import chat_protocol, oneshot, protocol
from inference import device as device_policy
from inference.engine import Session
from inference.formats import Encoder, OpusInput, OutputFormat, UnknownFormat, parse_format
from inference.metrics import Metrics
from inference.moshi_engine import MoshiEngine
from inference.profiles import Profile, get_profile
from inference.settings import Settings
from inference.stt_engine import SttEngine
from inference.tts_engine import TtsEngine
from inference.voices import UnknownVoice, embedding_from_message
from inference.warmup import warm_up

log = logging.getLogger(__name__)

ENGINES: web.AppKey[dict[str, Any]] = web.AppKey("engines", dict)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
SOCKETS: web.AppKey[weakref.WeakSet[Any]] = web.AppKey("sockets", weakref.WeakSet)
BUILD: web.AppKey[dict[str, Any]] = web.AppKey("build", dict)


def pick_device(settings: Settings) -> str:
    if settings.device:
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def configure_device(settings: Settings) -> device_policy.TorchPolicy:
    """Settle torch.compile and CUDA graphs for this process, before moshi is imported."""
    policy = device_policy.decide(
        pick_device(settings),
        settings.torch_compile,
        device_policy.find_c_compiler(),
        no_compile_env=device_policy.env_flag("NO_TORCH_COMPILE"),
        no_graph_env=device_policy.env_flag("NO_CUDA_GRAPH"),
    )
    device_policy.apply(policy)
    set_torch_threads(settings, policy.device)
    return policy


def set_torch_threads(settings: Settings, device: str) -> None:
    """CPU threads per torch operation for the engines `settings` serves on `device`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = device_policy.threads_per_op(
        settings.torch_threads, device, cores or 1, len(settings.engine_set)
    )
    if threads is not None:
        torch.set_num_threads(threads)
        log.info("torch: %d CPU thread(s) per operation", threads)


ENGINE_ORDER = ("stt", "tts", "moshi")


def batch_sizes(settings: Settings, device: str) -> tuple[int, int, int]:
    gpu = device.startswith("cuda")
    stt = settings.stt_batch_size or (64 if gpu else 8)
    tts = settings.tts_batch_size or (16 if gpu else 4)
    moshi = settings.moshi_batch_size or (32 if gpu else 4)
    return stt, tts, moshi


def _authorized(request: web.Request, keys: frozenset[str]) -> bool:
    key = request.headers.get("kyutai-api-key") or request.query.get("auth_id")
    return key is not None and key in keys


def _engine_or_refusal(request: web.Request, name: str) -> Any:
    """The engine serving `name`, or the HTTP answer for a caller or route that can't have it."""
    if not _authorized(request, request.app[SETTINGS].api_key_set):
        return web.Response(status=401, text="unauthorized")
    engine = request.app[ENGINES].get(name)
    if engine is None:
        return web.Response(status=404, text=f"{name} is not served here")
    return engine


async def _open_ws(
    request: web.Request, *, heartbeat: float | None = 10.0
) -> web.WebSocketResponse:
    settings = request.app[SETTINGS]
    # aiohttp's own limit sits above ours, so an oversized message gets an Error, not a hang-up.
    ws = web.WebSocketResponse(heartbeat=heartbeat, max_msg_size=settings.max_message_bytes * 2)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    return ws


async def _send_error(
    ws: web.WebSocketResponse, engine: str, message: str, metrics: Metrics
) -> None:
    metrics.errors.labels(engine).inc()
    if not ws.closed:
        await ws.send_bytes(protocol.error(message))


async def _pump(
    session: Session,
    ws: web.WebSocketResponse,
    encode: Callable[[dict[str, Any]], bytes | None] = protocol.pack,
) -> None:
    """Forward the model thread's messages to the socket; `None` ends the session."""
    try:
        while True:
            msgs = await session.queue.get()
            if msgs is None:
                await ws.close()
                return
            for m in msgs:
                if ws.closed:
                    return
                data = encode(m)
                if data is not None:
                    await ws.send_bytes(data)
    except (ConnectionError, RuntimeError) as exc:  # client went away mid-send
        log.debug("send failed: %s", exc)


async def _reject_full(ws: web.WebSocketResponse, name: str, slots: int) -> web.WebSocketResponse:
    # an operator sizing KYUTAI_*_BATCH_SIZE needs to see this, not only the metric
    log.warning("%s: all %d slots busy, refused a session (no free channels)", name, slots)
    await ws.send_bytes(protocol.error("no free channels"))
    await ws.close()
    return ws


async def asr_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    found = _engine_or_refusal(request, "stt")
    if isinstance(found, web.Response):
        return found
    engine: SttEngine = found
    # No ping/pong heartbeat: while the backlog is full the socket is not read (backpressure),
    # so a pong would go unread; an idle timeout finds dead clients instead, as Kyutai's does.
    ws = await _open_ws(request, heartbeat=None)
    session = engine.acquire(asyncio.get_running_loop())
    if session is None:
        return await _reject_full(ws, "stt", engine.batch_size)
    pump = asyncio.create_task(_pump(session, ws))
    max_samples = int(settings.max_buffered_seconds * protocol.SAMPLE_RATE)
    opus = OpusInput()
    try:
        await ws.send_bytes(protocol.ready())
        while True:
            try:
                msg = await ws.receive(timeout=settings.stt_idle_timeout_s)
            except TimeoutError:
                log.info(
                    "stt: no message for %.0fs, closing the session", settings.stt_idle_timeout_s
                )
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle")
                break
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            if msg.type != WSMsgType.BINARY:
                if msg.type == WSMsgType.TEXT:
                    await _send_error(ws, "stt", "expected binary msgpack", engine.metrics)
                continue
            try:
                parsed = protocol.parse_stt(
                    protocol.unpack(msg.data, max_bytes=settings.max_message_bytes)
                )
            except protocol.ProtocolError as exc:
                await _send_error(ws, "stt", str(exc), engine.metrics)
                continue
            if isinstance(parsed, protocol.OggOpusIn):
                try:
                    pcm = opus.decode(parsed.data)
                except protocol.ProtocolError as exc:  # a corrupt stream must not end the server
                    await _send_error(ws, "stt", str(exc), engine.metrics)
                    continue
                if pcm.size:
                    session.push_audio(pcm)
            elif isinstance(parsed, protocol.AudioIn):
                session.push_audio(parsed.pcm)
            elif isinstance(parsed, protocol.MarkerIn):
                session.push_marker(parsed.id)
            engine.notify()
            # Backpressure instead of dropping audio: stop reading until the model has caught
            # up; the client's sends then block on TCP.
            if session.backlog_samples > max_samples:
                engine.metrics.backpressure.labels("stt").inc()
                await session.wait_for_space(max_samples)
    finally:
        engine.release(session)
        pump.cancel()
    return ws


async def _refuse(
    ws: web.WebSocketResponse, fmt: OutputFormat, engine: str, message: str, metrics: Metrics
) -> web.WebSocketResponse:
    """End a session that cannot start: an `Error` where the format has messages, else the
    close reason (the bare audio formats carry nothing else)."""
    if fmt.has_messages:
        await _send_error(ws, engine, message, metrics)
        await ws.close()
    else:
        metrics.errors.labels(engine).inc()
        code = WSCloseCode.TRY_AGAIN_LATER if "no free channels" in message else 1008
        await ws.close(code=code, message=message.encode()[:120])
    return ws


async def tts_handler(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    found = _engine_or_refusal(request, "tts")
    if isinstance(found, web.Response):
        return found
    engine: TtsEngine = found
    try:
        fmt = parse_format(request.query.get("format"))
    except UnknownFormat as exc:  # before the upgrade, as Kyutai's server
        return web.Response(status=400, text=str(exc))
    ws = await _open_ws(request)
    voice: torch.Tensor | None = None
    if request.query.get("voice"):
        name = request.query["voice"]
        try:
            # May download from the hub: keep it off the event loop.
            voice = await asyncio.get_running_loop().run_in_executor(None, engine.load_voice, name)
        except UnknownVoice as exc:
            log.warning("tts: %s", exc)
            return await _refuse(ws, fmt, "tts", str(exc), engine.metrics)
    session = engine.acquire(asyncio.get_running_loop())
    if session is None:
        log.warning("tts: all %d slots busy, refused a session", engine.batch_size)
        return await _refuse(ws, fmt, "tts", "no free channels", engine.metrics)
    session.voice = voice
    encoder = Encoder(fmt)
    pump = asyncio.create_task(_pump(session, ws, encoder.encode))
    try:
        if fmt.has_messages:
            await ws.send_bytes(protocol.ready())
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            try:
                parsed = protocol.parse_tts_frame(msg.data, max_bytes=settings.max_message_bytes)
                if isinstance(parsed, protocol.VoiceIn):
                    session.push_voice(
                        engine.check_voice(embedding_from_message(parsed.embeddings, parsed.shape))
                    )
            except (protocol.ProtocolError, UnknownVoice) as exc:
                if fmt.has_messages:
                    await _send_error(ws, "tts", str(exc), engine.metrics)
                else:
                    engine.metrics.errors.labels("tts").inc()
                    log.info("tts: bad message on a %s session: %s", fmt.value, exc)
                continue
            if isinstance(parsed, protocol.TextIn):
                session.push_text(parsed.text)
            elif isinstance(parsed, protocol.EosIn):
                session.push_eos()
            engine.notify()
        # Client closed its side: nothing more to say.
    finally:
        engine.release(session)
        if not pump.done():
            pump.cancel()
    return ws


async def chat_handler(request: web.Request) -> web.StreamResponse:
    """Moshi, full duplex: moshi.server's binary protocol, or msgpack with `format`."""
    settings = request.app[SETTINGS]
    found = _engine_or_refusal(request, "moshi")
    if isinstance(found, web.Response):
        return found
    engine: MoshiEngine = found
    try:
        fmt = chat_protocol.parse_chat_format(request.query.get("format"))
    except chat_protocol.UnknownChatFormat as exc:
        return web.Response(status=400, text=str(exc))
    binary = fmt is chat_protocol.ChatFormat.BINARY
    ws = await _open_ws(request)
    session = engine.acquire(asyncio.get_running_loop())
    if session is None:
        log.warning("moshi: all %d slots busy, refused a session", engine.batch_size)
        engine.metrics.errors.labels("moshi").inc()
        if binary:  # moshi.server would wait on its lock; a close lets the caller fail over
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"no free channels")
        else:
            await ws.send_bytes(protocol.error("no free channels"))
            await ws.close()
        return ws
    encoder = chat_protocol.ChatEncoder(fmt)
    pump = asyncio.create_task(_pump(session, ws, encoder.encode))
    opus = OpusInput()
    first_audio = True

    async def refuse(message: str) -> None:
        engine.metrics.errors.labels("moshi").inc()
        if not ws.closed:
            await ws.send_bytes(
                chat_protocol.binary_error(message) if binary else protocol.error(message)
            )

    try:
        await ws.send_bytes(
            chat_protocol.HANDSHAKE if binary else chat_protocol.ready(str(engine.repo))
        )
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await refuse("expected binary messages")
                continue
            if msg.type != WSMsgType.BINARY:
                continue
            try:
                if binary:
                    parsed: Any = chat_protocol.parse_binary(
                        msg.data, max_bytes=settings.max_message_bytes
                    )
                else:
                    parsed = chat_protocol.parse_msgpack(
                        protocol.unpack(msg.data, max_bytes=settings.max_message_bytes)
                    )
            except protocol.ProtocolError as exc:
                await refuse(str(exc))
                continue
            if isinstance(parsed, chat_protocol.OpusIn):
                try:
                    pcm = opus.decode(parsed.data)
                except protocol.ProtocolError as exc:  # a corrupt stream must not end the server
                    await refuse(str(exc))
                    continue
                if pcm.size:
                    session.push_audio(pcm)
            elif isinstance(parsed, protocol.AudioIn):
                session.push_audio(parsed.pcm)
            elif isinstance(parsed, protocol.MarkerIn):
                session.push_marker(parsed.id)
            elif isinstance(parsed, chat_protocol.ControlIn):
                session.control(parsed.action, parsed.value)
            if first_audio and session.frames_pushed:
                first_audio = False
                engine.notify()  # an idle clock starts in phase with this client
    finally:
        engine.release(session)
        if not pump.done():
            pump.cancel()
        log.info(
            "moshi: session on slot %d ended after %d steps (%d underruns, %d dropped frames)",
            session.slot,
            session.step_idx,
            session.underruns,
            session.dropped,
        )
    return ws


async def asr_post_handler(request: web.Request) -> web.StreamResponse:
    found = _engine_or_refusal(request, "stt")
    if isinstance(found, web.Response):
        return found
    return await oneshot.asr_post(request, found)


async def tts_post_handler(request: web.Request) -> web.StreamResponse:
    found = _engine_or_refusal(request, "tts")
    if isinstance(found, web.Response):
        return found
    return await oneshot.tts_post(request, found)


async def modules_info(request: web.Request) -> web.Response:
    """Slots per engine, in the shape of Kyutai's `/api/modules_info` (values are strings)."""
    engines = request.app[ENGINES]
    modules = []
    for name, kind, path in (
        ("stt", "batched_asr", "/api/asr-streaming"),
        ("tts", "py", "/api/tts_streaming"),
        ("moshi", "lm", "/api/chat"),
    ):
        engine = engines.get(name)
        if engine is not None:
            modules.append(
                {
                    "type": kind,
                    "path": path,
                    "repo": str(engine.repo),
                    "used_slots": str(engine.open_slots),
                    "total_slots": str(engine.batch_size),
                }
            )
    return web.json_response(modules)


def _git(*args: str) -> str | None:
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=2,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_fields() -> dict[str, str]:
    """The keys of Kyutai's build_info that mean something here (its Rust toolchain ones do
    not), read once at start-up."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return {
        "build_timestamp": now.isoformat(timespec="seconds"),
        "build_date": now.date().isoformat(),
        "git_hash": _git("rev-parse", "HEAD") or "unknown",
        "git_describe": _git("describe", "--always", "--dirty") or "unknown",
        "git_branch": _git("rev-parse", "--abbrev-ref", "HEAD") or "unknown",
    }


async def build_info(request: web.Request) -> web.Response:
    engines = request.app[ENGINES]
    build: dict[str, Any] = request.app[BUILD]
    info: dict[str, Any] = {
        **build,
        "name": "kyutai-inference",
        "version": "0.1.0",
        "profile": request.app[SETTINGS].models,
        "torch": torch.__version__,
        "torch_compile": device_policy.compile_enabled(),
        "warmup_s": engines.get("warmup", {}),
    }
    stt: SttEngine | None = engines.get("stt")
    if stt is not None:
        info["stt"] = {
            "repo": stt.repo,
            "batch_size": stt.batch_size,
            "delay_s": stt.delay_s,
            "pause_heads": stt.has_pause_heads,
        }
    tts: TtsEngine | None = engines.get("tts")
    if tts is not None:
        info["tts"] = {
            "repo": tts.repo,
            "batch_size": tts.batch_size,
            "n_q": tts.n_q,
            "cfg": tts.cfg,
            "default_voice": tts.default_voice_name,
        }
    moshi: MoshiEngine | None = engines.get("moshi")
    if moshi is not None:
        info["moshi"] = {
            "repo": moshi.repo,
            "batch_size": moshi.batch_size,
            "frame_s": 0.08,
            "max_queued_frames": moshi.max_queued_frames,
            "sampling": moshi.gen_config,
        }
    return web.json_response(info)


async def metrics_handler(request: web.Request) -> web.Response:
    metrics: Metrics = request.app[ENGINES]["metrics"]
    return web.Response(
        body=generate_latest(metrics.registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST},
    )


def build_engines(settings: Settings, profile: Profile) -> dict[str, Any]:
    device = pick_device(settings)
    stt_bs, tts_bs, moshi_bs = batch_sizes(settings, device)
    metrics = Metrics()
    engines: dict[str, Any] = {"metrics": metrics}
    wanted = settings.engine_set
    if "stt" in wanted:
        engines["stt"] = SttEngine(profile, batch_size=stt_bs, device=device, metrics=metrics)
    if "moshi" in wanted:
        engines["moshi"] = MoshiEngine(
            profile,
            batch_size=moshi_bs,
            device=device,
            metrics=metrics,
            max_queued_frames=settings.moshi_max_queued_frames,
        )
    if "tts" in wanted:
        engines["tts"] = TtsEngine(
            profile,
            batch_size=tts_bs,
            device=device,
            metrics=metrics,
            n_q=settings.tts_n_q,
            cfg=settings.tts_cfg,
            temp=settings.tts_temp,
            default_voice=settings.default_voice,
        )
    return engines


def load_engines(settings: Settings, profile: Profile) -> dict[str, Any]:
    """Build the engines and warm them up, one after the other; their threads are not started."""
    engines = build_engines(settings, profile)
    results = warm_up([engines[n] for n in ENGINE_ORDER if n in engines])
    engines["warmup"] = {r.engine: round(r.seconds, 3) for r in results}
    return engines


def start_threads(engines: dict[str, Any]) -> None:
    for name in ENGINE_ORDER:
        if name in engines:
            engines[name].start()


def stop_threads(engines: dict[str, Any]) -> None:
    for name in ENGINE_ORDER:
        if name in engines:
            engines[name].stop()


def make_app(settings: Settings, engines: dict[str, Any]) -> web.Application:
    app = web.Application(client_max_size=settings.max_message_bytes)
    app[SETTINGS] = settings
    app[ENGINES] = engines
    app[SOCKETS] = weakref.WeakSet()
    app[BUILD] = build_fields()
    app.router.add_get("/api/asr-streaming", asr_handler)
    app.router.add_get("/api/tts_streaming", tts_handler)
    app.router.add_get("/api/chat", chat_handler)
    app.router.add_post("/api/asr-streaming", asr_post_handler)
    app.router.add_post("/api/tts_streaming", tts_post_handler)
    app.router.add_get("/api/build_info", build_info)
    app.router.add_get("/api/modules_info", modules_info)
    app.router.add_get("/metrics", metrics_handler)

    async def close_sockets(app: web.Application) -> None:
        sockets: weakref.WeakSet[Any] = app[SOCKETS]
        for ws in list(sockets):
            await ws.close(code=1001, message=b"server shutting down")

    app.on_shutdown.append(close_sockets)
    return app


async def serve(settings: Settings) -> None:
    configure_device(settings)
    profile = get_profile(settings.models, settings.cache_dir, moshi_repo=settings.moshi_repo)
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    # The port opens only once every engine is loaded and warmed up: a health check on
    # /api/build_info passes only when the first conversation will not pay for compilation.
    engines = await loop.run_in_executor(None, load_engines, settings, profile)
    log.info("models loaded and warmed up in %.1fs", time.perf_counter() - t0)
    start_threads(engines)
    app = make_app(settings, engines)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    served = ", ".join(n for n in ENGINE_ORDER if n in engines)
    print(
        f"listening on http://{settings.host}:{settings.port} "
        f"(profile {settings.models}, engines: {served})",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
        stop_threads(engines)
