"""`/api/chat` through the real server (tiny keyed Moshi, 80 ms clock), with clients written
from the protocol (`harness/moshi_client.py`): both encodings, the keyed conversation, controls,
the clock under a silent or a bursting client, capacity, and bad input next to a live session."""

from __future__ import annotations

import asyncio
import math
import re
import urllib.request
from collections.abc import Iterator

import aiohttp
import msgpack
import numpy as np
import pytest

from harness.inference_server import InferenceServer, start_inference_server, wait_slots_free
from harness.moshi_client import (
    BinaryChat,
    Conversation,
    MsgpackChat,
    auth_headers,
    frames_of,
    pack,
)
from harness.speech import read_wav, speech_wav

pytestmark = pytest.mark.timeout(240)

SLOTS = 4
MAX_BYTES = 256 * 1024
LOUD = 0.03  # decoded RMS of a speaking frame of the tiny Moshi (~0.1; its silence ~0.005)
SILENT = np.zeros(1920, np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(
        tmp_path_factory.mktemp("kyutai-tiny"),
        extra_args=["--engines", "moshi", "--moshi-batch-size", str(SLOTS)],
        env={"KYUTAI_MAX_MESSAGE_BYTES": str(MAX_BYTES)},
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def voice() -> list[np.ndarray]:
    pcm, _ = read_wav(speech_wav("could you tell me the time please", lead_silence_s=0.0))
    return frames_of(pcm)


def counter(srv: InferenceServer, name: str) -> float:
    with urllib.request.urlopen(f"{srv.http_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(rf'^{name}_total{{engine="moshi"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def voiced(frames: list[np.ndarray]) -> list[bool]:
    return [float(np.sqrt(np.mean(f**2))) > 0.02 for f in frames]


def loud_steps(conv: Conversation) -> list[int]:
    return [s.index for s in conv.steps if s.rms > LOUD]


async def test_msgpack_keyed_conversation(server: InferenceServer, voice: list[np.ndarray]) -> None:
    """Greets at once; silent within 2 steps of the user's voice; answers within 2 steps of
    the user's silence. Steps are counted from the step that consumed each input frame."""
    script = [SILENT] * 16 + voice + [SILENT] * 24
    conv = await MsgpackChat(server.chat_url, server.api_key).run(script)
    assert [s.index for s in conv.steps] == list(range(len(conv.steps)))
    assert len(conv.consumed) == len(script) and not conv.errors
    # greeting: speech and text from the first steps after the lead frame
    assert conv.steps[0].rms > LOUD or conv.steps[1].rms > LOUD
    assert conv.text(0, 14).strip()
    onset = 16 + voiced(voice).index(True)
    last_voiced = 16 + len(voice) - 1 - voiced(voice)[::-1].index(True)
    on_step, off_step = conv.consumed[onset], conv.consumed[last_voiced]
    # yields: silent from 2 steps after the onset until the user stops
    # At most a blip: a late frame (silence stepped in its place) can widen a gap between
    # words into a pause Moshi starts answering for a frame or two.
    spoken = [
        s.index for s in conv.steps[on_step + 2 : off_step + 1] if s.rms > LOUD or s.text.strip()
    ]
    assert len(spoken) <= 2, (spoken, loud_steps(conv))
    # answers: speech within 2 steps of the first silent step after the user's last word
    answer = [s for s in conv.steps[off_step + 1 :] if s.rms > LOUD]
    assert answer and answer[0].index <= off_step + 1 + 2, loud_steps(conv)
    assert conv.text(off_step + 1).strip()


async def test_binary_protocol_like_moshi_client(
    server: InferenceServer, voice: list[np.ndarray]
) -> None:
    """moshi.server's protocol: 0x00 first, one 0x01 Ogg/Opus message out per 80 ms in, 0x02
    text pieces; the conversation holds (greeting, then an answer after the user's turn)."""
    script = [SILENT] * 16 + voice + [SILENT] * 24
    conv = await BinaryChat(server.chat_url, server.api_key).run(script)
    assert len(conv.steps) == len(script) and not conv.errors
    greeting = conv.text(0, 16)
    assert greeting.strip(), "greets with text"
    # Opus-decoded output: loud while greeting, quiet in the user's turn, loud again after
    last_voiced = 16 + len(voice) - 1 - voiced(voice)[::-1].index(True)
    loud = loud_steps(conv)
    assert max(s.rms for s in conv.steps[1:8]) > LOUD, loud
    assert conv.text(last_voiced + 1).strip(), (conv.text(), loud)
    assert max(s.rms for s in conv.steps[last_voiced + 1 :]) > LOUD, loud
    # Quiet through the user's turn. Without markers a late frame (the server steps silence
    # in its place) cannot be told apart here: it can stretch a gap between two words into a
    # pause Moshi starts answering (a frame or two) before it yields again.
    during = [s for s in loud if 16 + 6 <= s < last_voiced]
    assert len(during) <= 2, (during, loud)


async def test_four_sessions_share_the_batch(
    server: InferenceServer, voice: list[np.ndarray]
) -> None:
    """All slots at once, joining at different points of the others' conversations: each
    greets, yields and answers; then a fifth is refused in both encodings."""
    await wait_slots_free(server)
    script = [SILENT] * 12 + voice + [SILENT] * 16

    async def one(delay_frames: int) -> Conversation:
        return await MsgpackChat(server.chat_url, server.api_key).run(
            [SILENT] * delay_frames + script
        )

    convs = await asyncio.gather(*(one(3 * i) for i in range(SLOTS)))
    greetings = {c.text(0, 10) for c in convs}
    assert len(greetings) == 1 and greetings.pop().strip()
    last_voiced = len(voice) - 1 - voiced(voice)[::-1].index(True)
    for i, c in enumerate(convs):
        off = c.consumed[3 * i + 12 + last_voiced]
        answer = [s.index for s in c.steps[off + 1 :] if s.rms > LOUD]
        assert answer and answer[0] <= off + 3, (i, off, loud_steps(c), c.consumed)


async def test_capacity_error_both_encodings(server: InferenceServer) -> None:
    await wait_slots_free(server)
    headers = auth_headers(server.api_key)
    async with aiohttp.ClientSession() as http:
        held = [
            await http.ws_connect(server.chat_url + "?format=PcmMessagePack", headers=headers)
            for _ in range(SLOTS)
        ]
        for ws in held:
            assert msgpack.unpackb((await ws.receive()).data)["type"] == "Ready"
        async with http.ws_connect(
            server.chat_url + "?format=PcmMessagePack", headers=headers
        ) as ws:
            msg = msgpack.unpackb((await ws.receive(timeout=30)).data)
            assert msg == {"type": "Error", "message": "no free channels"}
            assert (await ws.receive(timeout=30)).type == aiohttp.WSMsgType.CLOSE
        async with http.ws_connect(server.chat_url, headers=headers) as ws:
            closing = await ws.receive(timeout=30)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == 1013 and closing.extra == "no free channels"
        for ws in held:
            await ws.close()
    assert counter(server, "kyutai_rejected") >= 2


async def test_hold_and_release(server: InferenceServer, voice: list[np.ndarray]) -> None:
    """Held from the first frame: no greeting and no answer, though Moshi still hears the
    user; released: the next turn is answered."""
    await wait_slots_free(server)  # the clock then starts with this client: held from step 0
    turn = [SILENT] * 6 + voice + [SILENT] * 14
    hold = {0: [{"type": "Control", "action": "hold"}]}
    release = {len(turn): [{"type": "Control", "action": "release"}]}
    conv = await MsgpackChat(server.chat_url, server.api_key).run(
        turn + turn, before={**hold, **release}
    )
    first = conv.consumed[len(turn) - 1]
    assert all(s > first for s in loud_steps(conv)), loud_steps(conv)
    assert not conv.text(0, first + 1).strip()
    last_voiced = len(voice) - 1 - voiced(voice)[::-1].index(True)
    second_off = conv.consumed[len(turn) + 6 + last_voiced]
    answer = [s for s in loud_steps(conv) if s > second_off]
    assert answer and answer[0] <= second_off + 3, (second_off, loud_steps(conv))
    assert conv.text(second_off + 1).strip()


async def test_clock_keeps_stepping_when_the_client_goes_quiet(server: InferenceServer) -> None:
    """A client that stops sending: Moshi keeps stepping on its clock (underruns counted)."""
    before = counter(server, "kyutai_underruns")
    chat = MsgpackChat(server.chat_url, server.api_key)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(chat.url, headers=auth_headers(server.api_key)) as ws,
    ):
        assert (await chat.recv(ws) or {}).get("type") == "Ready"
        await ws.send_bytes(pack({"type": "Audio", "pcm": [0.0] * 1920}))
        steps = []
        while len(steps) < 14:  # > 1 s of output with nothing more sent
            m = await chat.recv(ws)
            assert m is not None
            if m["type"] == "Audio":
                steps.append(m["step_idx"])
    assert steps == list(range(14))
    assert counter(server, "kyutai_underruns") - before >= 12


async def test_burst_is_dropped_and_latency_stays_bounded(server: InferenceServer) -> None:
    """2 s sent at once: all but the newest few frames are dropped (counted), and a marker
    sent after the burst comes back within a few steps, not 25."""
    before = counter(server, "kyutai_dropped_frames")
    chat = MsgpackChat(server.chat_url, server.api_key)
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(chat.url, headers=auth_headers(server.api_key)) as ws,
    ):
        assert (await chat.recv(ws) or {}).get("type") == "Ready"
        await ws.send_bytes(pack({"type": "Audio", "pcm": [0.01] * (1920 * 25)}))
        await ws.send_bytes(pack({"type": "Marker", "id": 7}))
        audio_after = 0
        while True:
            m = await chat.recv(ws)
            assert m is not None
            if m["type"] == "Audio":
                audio_after += 1
            elif m["type"] == "Marker":
                assert m["id"] == 7
                break
    assert audio_after <= 6, "the marker waited behind the burst"
    assert counter(server, "kyutai_dropped_frames") - before >= 20


BAD_MSGPACK: list[tuple[str, bytes | str]] = [
    ("not msgpack", b"\xc1\xff\x00 garbage"),
    ("msgpack array", msgpack.packb([1, 2])),
    ("unknown type", pack({"type": "Teleport"})),
    ("pcm is a string", pack({"type": "Audio", "pcm": "loud"})),
    ("NaN audio", pack({"type": "Audio", "pcm": [0.1, math.nan]})),
    ("bad control", pack({"type": "Control", "action": "explode"})),
    ("pad bias out of range", pack({"type": "Control", "action": "pad_bias", "value": 1e9})),
    ("oversized", pack({"type": "Audio", "pcm": [0.0] * (MAX_BYTES // 5 + 100)})),
    ("text frame", "hello"),
]
BAD_BINARY: list[tuple[str, bytes | str]] = [
    ("empty", b""),
    ("unknown kind", b"\x09abc"),
    ("client text kind", b"\x02hello"),
    ("audio without data", b"\x01"),
    ("corrupt ogg", b"\x01" + bytes(64)),
    ("oversized", b"\x01" + b"\x00" * (MAX_BYTES + 10)),
    ("text frame", "hello"),
]


async def _bad_input_while_neighbour_talks(
    server: InferenceServer, url: str, bad: list[tuple[str, bytes | str]], binary: bool
) -> None:
    neighbour = asyncio.create_task(MsgpackChat(server.chat_url, server.api_key).run([SILENT] * 60))
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=auth_headers(server.api_key)) as ws,
    ):
        hello = await ws.receive(timeout=30)
        assert (
            hello.data[:1] == b"\x00" if binary else msgpack.unpackb(hello.data)["type"] == "Ready"
        )
        for name, data in bad:
            if isinstance(data, str):
                await ws.send_str(data)
            else:
                await ws.send_bytes(data)
            while True:  # skip the session's own audio until the error
                msg = await ws.receive(timeout=30)
                assert msg.type == aiohttp.WSMsgType.BINARY, f"{name}: {msg}"
                if binary and msg.data[:1] == b"\x05":
                    break
                if not binary and msgpack.unpackb(msg.data)["type"] == "Error":
                    break
        # the session itself is still served: more output steps arrive
        got = 0
        while got < 3:
            msg = await ws.receive(timeout=30)
            assert msg.type == aiohttp.WSMsgType.BINARY
            got += (
                msg.data[:1] == b"\x01" if binary else msgpack.unpackb(msg.data)["type"] == "Audio"
            )
    conv = await neighbour
    assert len(conv.consumed) == 60 and not conv.errors


async def test_bad_msgpack_input_is_refused_others_continue(server: InferenceServer) -> None:
    await _bad_input_while_neighbour_talks(
        server, server.chat_url + "?format=PcmMessagePack", BAD_MSGPACK, binary=False
    )


async def test_bad_binary_input_is_refused_others_continue(server: InferenceServer) -> None:
    await _bad_input_while_neighbour_talks(server, server.chat_url, BAD_BINARY, binary=True)


async def test_route_refusals(server: InferenceServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http_url + "/api/chat") as resp:
            assert resp.status == 401
        async with http.get(
            server.http_url + "/api/chat?format=OggOpus", headers=auth_headers(server.api_key)
        ) as resp:
            assert resp.status == 400 and "PcmMessagePack" in await resp.text()
        async with http.get(
            server.http_url + "/api/asr-streaming", headers=auth_headers(server.api_key)
        ) as resp:
            assert resp.status == 404  # this process serves Moshi only
        async with http.get(server.http_url + "/api/modules_info") as resp:
            modules = await resp.json()
        assert [m["path"] for m in modules] == ["/api/chat"]
        assert modules[0]["total_slots"] == str(SLOTS)
        async with http.get(server.http_url + "/api/build_info") as resp:
            info = await resp.json()
        assert info["moshi"]["batch_size"] == SLOTS and "stt" not in info
