"""Kyutai's one-shot HTTP routes, on the same engines as the websockets.

- `POST /api/asr-streaming`: an audio file in the body (wav, mp3, ogg, flac; any rate, mixed to
  mono) → the JSON list of `Word` / `EndWord` messages of the whole recording.
- `POST /api/tts_streaming`: `{"text": ..., "voice": ...}` → a wav (16-bit, 24 kHz) streamed as
  it is spoken, with an open-ended header as Kyutai's server writes it.
"""

from __future__ import annotations

import asyncio
import json
import struct
import tempfile
from typing import Any

import numpy as np
from aiohttp import web

from inference import protocol
from inference.stt_engine import SttEngine
from inference.tts_engine import TtsEngine
from inference.voices import UnknownVoice

MAX_SECONDS = 600.0  # one request holds a slot for this much audio at most


class BadRequest(ValueError):
    pass


def decode_audio(data: bytes) -> np.ndarray:
    """Mono float32 at 24 kHz from an audio file's bytes."""
    import sphn

    if not data:
        raise BadRequest("the body is empty: send an audio file")
    with tempfile.NamedTemporaryFile(suffix=_suffix(data)) as f:
        f.write(data)
        f.flush()
        try:
            pcm, sample_rate = sphn.read(f.name)
        except Exception as exc:
            raise BadRequest(f"could not decode the audio file ({exc})") from exc
    pcm = np.asarray(pcm, dtype=np.float32)
    mono = pcm.mean(axis=0) if pcm.ndim == 2 else pcm
    if sample_rate != protocol.SAMPLE_RATE:
        mono = np.asarray(sphn.resample(mono, sample_rate, protocol.SAMPLE_RATE), np.float32)
    if mono.size > MAX_SECONDS * protocol.SAMPLE_RATE:
        raise BadRequest(f"the recording is longer than {MAX_SECONDS:.0f} s: stream it instead")
    return np.clip(np.nan_to_num(mono), -1.0, 1.0)


def _suffix(data: bytes) -> str:
    # The decoder picks its demuxer from the extension.
    if data[:4] == b"RIFF":
        return ".wav"
    if data[:4] == b"OggS":
        return ".ogg"
    if data[:4] == b"fLaC":
        return ".flac"
    return ".mp3"


def wav_header(sample_rate: int) -> bytes:
    """A 16-bit mono wav header with unknown sizes (0xFFFFFFFF), for a stream."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", unknown)
    )


def pcm16(pcm: Any) -> bytes:
    arr = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    return (arr * 32767.0).astype("<i2").tobytes()


async def transcribe(engine: SttEngine, audio: np.ndarray) -> list[dict[str, Any]]:
    session = engine.acquire(asyncio.get_running_loop())
    if session is None:
        raise web.HTTPServiceUnavailable(text="no free channels", headers={"Retry-After": "1"})
    out: list[dict[str, Any]] = []
    try:
        session.push_audio(audio)
        session.push_marker(0)
        session.push_audio(np.zeros((engine.delay_steps + 1) * protocol.FRAME_SIZE, np.float32))
        engine.notify()
        while True:
            msgs = await session.queue.get()
            if msgs is None:
                raise web.HTTPInternalServerError(text="the model step failed")
            for m in msgs:
                if m["type"] == "Marker":
                    return out
                if m["type"] in ("Word", "EndWord", "Error"):
                    out.append(m)
    finally:
        engine.release(session)


async def asr_post(request: web.Request, engine: SttEngine) -> web.Response:
    try:
        audio = await asyncio.get_running_loop().run_in_executor(
            None, decode_audio, await request.read()
        )
    except BadRequest as exc:
        return web.Response(status=400, text=str(exc))
    return web.json_response(await transcribe(engine, audio))


async def tts_post(request: web.Request, engine: TtsEngine) -> web.StreamResponse:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return web.Response(status=400, text='the body must be JSON: {"text": ..., "voice": ...}')
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        return web.Response(status=400, text='the body must be JSON: {"text": ..., "voice": ...}')
    voice_name = body.get("voice")
    voice = None
    if voice_name:
        if not isinstance(voice_name, str):
            return web.Response(status=400, text="voice must be a string")
        try:
            loop = asyncio.get_running_loop()
            voice = await loop.run_in_executor(None, engine.load_voice, voice_name)
        except UnknownVoice as exc:
            return web.Response(status=404, text=str(exc))
    session = engine.acquire(asyncio.get_running_loop())
    if session is None:
        raise web.HTTPServiceUnavailable(text="no free channels", headers={"Retry-After": "1"})
    try:
        session.voice = voice
        for word in body["text"].split():
            session.push_text(word)
        session.push_eos()
        engine.notify()
        resp = web.StreamResponse(headers={"Content-Type": "audio/wav"})
        await resp.prepare(request)
        await resp.write(wav_header(protocol.SAMPLE_RATE))
        while (msgs := await session.queue.get()) is not None:
            for m in msgs:
                if m["type"] == "Audio":
                    await resp.write(pcm16(m["pcm"]))
        await resp.write_eof()
        return resp
    finally:
        engine.release(session)
