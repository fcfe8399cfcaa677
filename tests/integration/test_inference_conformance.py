"""Protocol conformance: the server driven by a client written from the Kyutai protocol document
(docs: /api/asr-streaming and /api/tts_streaming, msgpack maps tagged by `type`).

Nothing from `inference` is imported: the messages are built and checked here, so a change that
drifts from the documented wire format fails these tests.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
import pytest

from harness.inference_server import (
    FRAME,
    InferenceServer,
    kyutai_pack,
    kyutai_recv,
    speechlike,
    start_inference_server,
)

pytestmark = pytest.mark.timeout(180)

DELAY_FRAMES = 6  # stt-1b-en_fr (and the tiny profile): 0.5 s delay = 6 frames of 80 ms
VOICE_DIM = 512  # speaker embedding width of the TTS voices ([1, 512, T])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(tmp_path_factory.mktemp("kyutai-tiny"), batch_size=2) as srv:
        yield srv


def auth(srv: InferenceServer) -> dict[str, str]:
    return {"kyutai-api-key": srv.api_key}


async def test_build_info(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{server.http_url}/api/build_info") as r:
        assert r.status == 200
        assert isinstance(await r.json(), dict)


async def stt_transcribe(
    srv: InferenceServer, audio: list[float], chunk: int, marker_id: int
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Send audio in `chunk`-sample Audio messages, a Marker, then silence until the marker
    comes back. Returns every message up to and including the marker, and their raw bytes."""
    msgs: list[dict[str, Any]] = []
    raws: list[bytes] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(srv.stt_url, headers=auth(srv)) as ws,
    ):
        first = await ws.receive()
        assert first.type == aiohttp.WSMsgType.BINARY
        assert msgpack.unpackb(first.data, raw=False) == {"type": "Ready"}
        for i in range(0, len(audio), chunk):
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": audio[i : i + chunk]}))
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": marker_id}))
        silence = [0.0] * FRAME
        # The protocol: keep sending silence until the marker returns. One frame per Step
        # received keeps the server fed without flooding it.
        for _ in range(2):
            await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": silence}))
        while True:
            raw = await ws.receive(timeout=30)
            assert raw.type == aiohttp.WSMsgType.BINARY, raw
            m = msgpack.unpackb(raw.data, raw=False)
            msgs.append(m)
            raws.append(raw.data)
            if m["type"] == "Marker":
                break
            if m["type"] == "Step":
                await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": silence}))
    return msgs, raws


async def test_stt_ready_steps_words_marker(server: InferenceServer) -> None:
    audio = speechlike(2.5, seed=3)
    msgs, raws = await stt_transcribe(server, audio, chunk=1000, marker_id=77)
    types = {m["type"] for m in msgs}
    assert types <= {"Word", "EndWord", "Step", "Marker"}, types
    assert msgs[-1] == {"type": "Marker", "id": 77}
    steps = [m for m in msgs if m["type"] == "Step"]
    # One Step per processed 80 ms frame: the audio before the marker plus the model delay.
    n_frames = math.ceil(len(audio) / FRAME)
    assert len(steps) == n_frames + DELAY_FRAMES
    assert [s["step_idx"] for s in steps] == list(range(len(steps)))
    for s in steps:
        assert set(s) == {"type", "step_idx", "prs", "buffered_pcm"}
        assert len(s["prs"]) == 4
        assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in s["prs"])
        assert isinstance(s["buffered_pcm"], int) and s["buffered_pcm"] >= 0
    # Probabilities travel as single floats (msgpack float32, 0xca), as clients pack them.
    step_raw = next(r for r, m in zip(raws, msgs, strict=True) if m["type"] == "Step")
    assert b"\xca" in step_raw and b"\xcb" not in step_raw
    # Speech gives words, with Kyutai's semantics (moshi asr.rs): a word starts where the
    # previous one ended, an EndWord closes the latest Word and comes only when the next word
    # starts (a word that padding follows has none until then), and a Step comes before the
    # words of its own step.
    words = [m for m in msgs if m["type"] == "Word"]
    assert words, msgs
    last_word: dict[str, Any] | None = None
    ended = True
    for i, m in enumerate(msgs):
        if m["type"] == "Word":
            assert isinstance(m["text"], str) and m["text"]
            assert isinstance(m["start_time"], float) and m["start_time"] >= 0.0
            assert msgs[i - 1]["type"] in ("Step", "Word", "EndWord")
            last_word, ended = m, False
        elif m["type"] == "EndWord":
            assert last_word is not None and not ended, "an EndWord without a Word to close"
            assert m["stop_time"] >= last_word["start_time"]
            ended = True
    starts = [w["start_time"] for w in words]
    assert starts == sorted(starts)
    # Word times are on the audio timeline: nothing after the audio sent before the marker.
    assert starts[-1] <= n_frames * 0.08


async def test_stt_pause_probability_follows_silence(server: InferenceServer) -> None:
    """Silence after speech reads as a pause (prs high), speech as no pause (prs low)."""
    audio = speechlike(2.0, seed=1) + [0.0] * (FRAME * 15)
    msgs, _ = await stt_transcribe(server, audio, chunk=FRAME * 3, marker_id=1)
    prs = [m["prs"] for m in msgs if m["type"] == "Step"]
    speech = [p[2] for p in prs[:25]]
    silence = [p[2] for p in prs[-10:]]
    # Like Kyutai's heads, the tiny model's rise over a sustained pause (0.48 s, see
    # tests/unit/inference/test_tiny_pause_curve.py): the last 10 steps of silence are a pause,
    # speech is not.
    assert min(speech) < 0.5 < min(silence), (speech, silence)


async def test_stt_marker_order_and_query_auth(server: InferenceServer) -> None:
    """Markers come back in order, each after the audio sent before it; `?auth_id=` works."""
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.stt_url}?auth_id={server.api_key}") as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": 1}))
        await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * (FRAME * 2)}))
        await ws.send_bytes(kyutai_pack({"type": "Marker", "id": 2}))
        await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * (FRAME * 12)}))
        seen: list[tuple[int, int]] = []
        steps = 0
        while len(seen) < 2:
            m = await kyutai_recv(ws)
            assert m is not None
            if m["type"] == "Step":
                steps += 1
            elif m["type"] == "Marker":
                seen.append((int(m["id"]), steps))  # type: ignore[call-overload]
        assert [i for i, _ in seen] == [1, 2]
        assert seen[0][1] >= DELAY_FRAMES
        assert seen[1][1] >= 2 + DELAY_FRAMES


async def tts_speak(
    srv: InferenceServer,
    first: list[bytes | str],
    words: list[str],
    *,
    query: str = "",
    eos: bytes | None = None,
) -> tuple[list[dict[str, Any]], list[int], bool]:
    """Messages until close, the byte size of each Audio message, and whether it closed."""
    if "format=" not in query:  # the msgpack format, as every Kyutai client asks
        query += ("&" if query else "?") + "format=PcmMessagePack"
    msgs: list[dict[str, Any]] = []
    sizes: list[int] = []
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{srv.tts_url}{query}", headers=auth(srv)) as ws,
    ):
        assert await kyutai_recv(ws) == {"type": "Ready"}
        for payload in first:
            if isinstance(payload, str):
                await ws.send_str(payload)
            else:
                await ws.send_bytes(payload)
        for w in words:
            await ws.send_bytes(kyutai_pack({"type": "Text", "text": w}))
        await ws.send_bytes(eos if eos is not None else kyutai_pack({"type": "Eos"}))
        while True:
            raw = await ws.receive(timeout=30)
            if raw.type != aiohttp.WSMsgType.BINARY:
                closed = raw.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                break
            m = msgpack.unpackb(raw.data, raw=False)
            msgs.append(m)
            if m["type"] == "Audio":
                sizes.append(len(raw.data))
    return msgs, sizes, closed


async def test_tts_audio_frames_text_and_eos(server: InferenceServer) -> None:
    words = "hello world this is a test".split()
    msgs, sizes, closed = await tts_speak(
        server, [], words, query="?voice=vctk/p225_023.wav&format=PcmMessagePack"
    )
    assert closed, "Eos must end the stream and close the socket"
    assert {m["type"] for m in msgs} <= {"Audio", "Text"}, msgs
    audio = [m for m in msgs if m["type"] == "Audio"]
    assert len(audio) > 10
    for m in audio:
        assert set(m) == {"type", "pcm"}
        assert len(m["pcm"]) == FRAME
        assert all(isinstance(x, float) and -1.0 <= x <= 1.0 for x in m["pcm"])
    # float32 on the wire: 5 bytes a sample (float64 would need 9).
    assert all(s < FRAME * 5 + 64 for s in sizes)
    texts = [m for m in msgs if m["type"] == "Text"]
    assert [t["text"] for t in texts if t["text"]] == words
    for t in texts:
        assert set(t) == {"type", "text", "start_s", "stop_s"}
        assert t["stop_s"] >= t["start_s"] >= 0.0
    starts = [t["start_s"] for t in texts if t["text"]]
    assert all(a < b for a, b in itertools.pairwise(starts)), starts
    # Word times lie on the audio that was sent.
    assert texts[-1]["stop_s"] <= len(audio) * 0.08 + 0.5


async def test_tts_plain_text_frame_and_binary_eos(server: InferenceServer) -> None:
    """A websocket text frame is text; a single zero byte is Eos."""
    msgs, _, closed = await tts_speak(server, ["hello", "brave new"], ["world"], eos=b"\0")
    assert closed
    assert [m["text"] for m in msgs if m["type"] == "Text" and m["text"]] == [
        "hello",
        "brave",
        "new",
        "world",
    ]
    assert sum(1 for m in msgs if m["type"] == "Audio") > 5


async def test_tts_custom_voice_message(server: InferenceServer) -> None:
    rng = random.Random(5)
    frames = 40
    voice = kyutai_pack(
        {
            "type": "Voice",
            "embeddings": [rng.gauss(0.0, 1.0) for _ in range(VOICE_DIM * frames)],
            "shape": [1, VOICE_DIM, frames],
        }
    )
    msgs, _, closed = await tts_speak(server, [voice], "one two three four".split())
    assert closed
    assert all(m["type"] != "Error" for m in msgs), msgs
    assert [m["text"] for m in msgs if m["type"] == "Text" and m["text"]] == [
        "one",
        "two",
        "three",
        "four",
    ]
    assert all(len(m["pcm"]) == FRAME for m in msgs if m["type"] == "Audio")


async def test_errors_are_error_messages(server: InferenceServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{server.tts_url}?voice=no/such-voice.wav&format=PcmMessagePack", headers=auth(server)
        ) as ws,
    ):
        m = await kyutai_recv(ws)
        assert m is not None and m["type"] == "Error" and isinstance(m["message"], str)
        assert await kyutai_recv(ws) is None
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(server.stt_url, headers={"kyutai-api-key": "nope"})
        assert err.value.status == 401
