"""Drop-in both ways: our plugins against Kyutai's own Rust `moshi-server` (0.6.4, CPU, on copies
of the tiny models made by `python -m inference.rust_copies`) and against our server, with the
same assertions; and Kyutai's own client scripts against our server.

Kyutai's server is built once (`bash scripts/ensure-moshi-server.sh`, about 25 minutes on two
cores, cached in .cache/moshi-server); without it the Kyutai half is reported as skipped.
Kyutai's client scripts are run from a checkout of delayed-streams-modeling named by
KYUTAI_DSM_DIR (see the README); without it those tests are reported as skipped.

On Kyutai's server the STT runs a random full-size Mimi (its Mimi is hard-coded), so its pause
heads do not follow silence: turns are ended by flushes here, the pause-head mechanics are
covered on our server and in the unit tests.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, APIStatusError, stt, tts
from livekit.agents.types import USERDATA_TIMED_TRANSCRIPT
from livekit.agents.utils import is_given
from livekit.plugins import kyutai

from harness.inference_server import (
    InferenceServer,
    kyutai_pack,
    kyutai_recv,
    speechlike,
    start_inference_server,
)
from harness.moshi_server import MoshiServerUnavailable, start_moshi_server

pytestmark = pytest.mark.timeout(600)

SR = 24000
NO_RETRY = APIConnectOptions(max_retry=0, timeout=20.0)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    with start_inference_server(
        tmp_path_factory.mktemp("kyutai-tiny"), batch_size=2, tts_batch_size=2
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def kyutai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InferenceServer]:
    try:
        srv = start_moshi_server(tmp_path_factory.mktemp("moshi-server"))
    except MoshiServerUnavailable as exc:
        pytest.skip(f"Kyutai's moshi-server is not built: {exc}")
    yield srv
    srv.stop()


async def wait_all_free(srv: InferenceServer, timeout: float = 10.0) -> None:
    """Until `/api/modules_info` (both servers have it) shows no slot in use: Kyutai's server
    frees a slot on its next model step after the client left, not at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{srv.http_url}/api/modules_info") as r:
                used = [int(m["used_slots"]) for m in await r.json()]
            if not any(used):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"slots still in use on {srv.http_url}: {used}")
            await asyncio.sleep(0.05)  # polling interval of a state endpoint, not a wait


@pytest.fixture(params=["ours", "kyutai"])
async def server(request: pytest.FixtureRequest) -> InferenceServer:
    name = "ours" if request.param == "ours" else "kyutai_server"
    srv: InferenceServer = request.getfixturevalue(name)
    await wait_all_free(srv)
    return srv


def frames(pcm: np.ndarray) -> list[rtc.AudioFrame]:
    step = SR // 50
    data = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
    return [
        rtc.AudioFrame(data[i : i + step].tobytes(), SR, 1, step)
        for i in range(0, data.size - step + 1, step)
    ]


async def until_final(stream: stt.RecognizeStream, timeout: float = 60) -> list[stt.SpeechEvent]:
    events: list[stt.SpeechEvent] = []

    async def run() -> None:
        async for ev in stream:
            events.append(ev)
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_stt_turns_flushed_on_one_connection(server: InferenceServer) -> None:
    """Two turns, each ended by a flush: the plugin counts Steps instead of sending Markers, so
    one connection serves them all (Kyutai's Python STT module ends a session after a Marker)."""
    errors: list[object] = []
    # The audio is pushed faster than real time and Kyutai's server steps at real time, so a
    # flush completes seconds after it starts: a longer flush timeout than the default 3 s.
    model = kyutai.STT(url=server.url, use_pause_heads=False, flush_timeout=30.0)
    model.on("error", errors.append)
    stream = model.stream(conn_options=NO_RETRY)
    finals: list[stt.SpeechData] = []
    for seed in (1, 2):
        for f in frames(np.asarray(speechlike(4.0, seed=seed), dtype=np.float32)):
            stream.push_frame(f)
        stream.flush()
        events = await until_final(stream)
        final = events[-1].alternatives[0]
        finals.append(final)
        # every word is timed, and the last one ends after it starts (the step clock's end
        # for a word Kyutai closes with padding, which gets no EndWord)
        assert final.words and all(w.end_time >= w.start_time for w in final.words)
        assert final.words[-1].end_time > final.words[-1].start_time
        assert final.end_time <= 4.0 * seed + 0.5
    assert len(finals) == 2 and finals[1].start_time > finals[0].end_time - 0.5
    assert errors == []
    stream.end_input()
    await stream.aclose()
    await model.aclose()


async def test_stt_bad_key_is_not_retried(server: InferenceServer) -> None:
    model = kyutai.STT(url=server.url, api_key="wrong")
    stream = model.stream(conn_options=APIConnectOptions(max_retry=2, retry_interval=0.01))
    stream.push_frame(frames(np.zeros(SR // 10, np.float32))[0])
    with pytest.raises(APIStatusError) as err:
        await until_final(stream)
    assert err.value.status_code == 401 and not err.value.retryable
    await model.aclose()


async def test_kyutai_numbers_steps_across_connections(kyutai_server: InferenceServer) -> None:
    """What the plugin's warm-up copes with: a later connection's first Step is not 0."""
    first_steps = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            await wait_all_free(kyutai_server)
            async with http.ws_connect(
                kyutai_server.stt_url, headers={"kyutai-api-key": kyutai_server.api_key}
            ) as ws:
                await ws.send_bytes(kyutai_pack({"type": "Audio", "pcm": [0.0] * 1920 * 4}))
                while (m := await kyutai_recv(ws, timeout=30)) is not None:
                    if m["type"] == "Step":
                        first_steps.append(int(m["step_idx"]))  # type: ignore[call-overload]
                        break
    assert len(first_steps) == 2 and first_steps[1] > first_steps[0] >= 0


async def collect(stream: tts.ChunkedStream | tts.SynthesizeStream) -> tuple[np.ndarray, list]:
    pcm: list[np.ndarray] = []
    timed: list[object] = []
    async for ev in stream:
        pcm.append(np.frombuffer(ev.frame.data, dtype=np.int16))
        timed += ev.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    return np.concatenate(pcm), timed


async def speak(server: InferenceServer, text: str, **kw: object) -> tuple[np.ndarray, list]:
    model = kyutai.TTS(url=server.url, preconnect=False, **kw)  # type: ignore[arg-type]
    errors: list[object] = []
    model.on("error", errors.append)
    stream = model.stream(conn_options=NO_RETRY)
    stream.push_text(text)
    stream.end_input()
    try:
        out = await asyncio.wait_for(collect(stream), 60)
    finally:
        await stream.aclose()
        await model.aclose()
    assert errors == []
    return out


async def test_tts_dashes_keep_every_word_timed(server: InferenceServer) -> None:
    pcm, timed = await speak(server, "One two – three — four five.")
    assert np.abs(pcm).max() > 100
    assert [str(t).strip() for t in timed] == ["One", "two", "three", "four", "five."]
    starts = [t.start_time for t in timed]  # type: ignore[attr-defined]
    assert all(is_given(s) for s in starts), "a word was left untimed"
    assert starts == sorted(starts) and len(set(starts)) == len(starts)


@pytest.mark.parametrize("text", ["...", "😀"])
async def test_tts_nothing_to_say_is_no_error_and_no_stall(
    server: InferenceServer, text: str
) -> None:
    pcm, timed = await speak(server, text)
    assert pcm.size > 0 and not pcm.any() and timed == []


async def test_tts_voice_change_and_synthesize(server: InferenceServer) -> None:
    model = kyutai.TTS(url=server.url, preconnect=False)
    model.update_options(voice="cml-tts/fr/2114_1656_000001-0001.wav")
    assert model.language == "fr"
    frame = await asyncio.wait_for(
        model.synthesize("Bonjour à tous.", conn_options=NO_RETRY).collect(), 60
    )
    assert frame.samples_per_channel > SR // 4
    await model.aclose()


async def test_tts_bad_key_is_not_retried(server: InferenceServer) -> None:
    model = kyutai.TTS(url=server.url, api_key="wrong", preconnect=False)
    with pytest.raises(APIStatusError) as err:
        await model.synthesize("hello", conn_options=NO_RETRY).collect()
    assert err.value.status_code == 401 and not err.value.retryable
    await model.aclose()


@pytest.fixture
async def full(server: InferenceServer) -> AsyncIterator[InferenceServer]:
    """`server` with every TTS slot (2) held by idle clients."""
    async with aiohttp.ClientSession() as http:
        held = []
        for _ in range(2):
            ws = await http.ws_connect(
                f"{server.tts_url}?format=PcmMessagePack",
                headers={"kyutai-api-key": server.api_key},
            )
            assert await kyutai_recv(ws) == {"type": "Ready"}
            held.append(ws)
        yield server
        for ws in held:
            await ws.close()
    await wait_all_free(server)


async def test_tts_full_server_fails_over(
    full: InferenceServer, ours: InferenceServer, request: pytest.FixtureRequest
) -> None:
    other = ours if full is not ours else request.getfixturevalue("kyutai_server")
    await wait_all_free(other)
    model = kyutai.TTS(url=[full.url, other.url], preconnect=False)
    frame = await asyncio.wait_for(
        model.synthesize("Over there.", conn_options=NO_RETRY).collect(), 60
    )
    assert frame.samples_per_channel > SR // 4
    await model.aclose()


# ---- Kyutai's own clients against our server ----------------------------------------------------


def _dsm_script(name: str) -> Path:
    root = os.environ.get("KYUTAI_DSM_DIR", str(REPO / ".cache" / "kyutai-clients" / "dsm"))
    path = Path(root) / "scripts" / name
    if not path.is_file():
        pytest.skip(f"Kyutai's delayed-streams-modeling checkout not found ({path}); see README")
    return path


def _run_client(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The scripts' own dependencies, in a throw-away environment (uv caches them).
    deps = ["msgpack", "numpy", "sphn", "websockets", "sounddevice", "tqdm"]
    cmd = ["uv", "run", "--no-project", "--python", "3.11"]
    for d in deps:
        cmd += ["--with", d]
    return subprocess.run(
        [*cmd, "python", str(script), *args],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=script.parent,
    )


def test_dsm_file_client_gets_every_word_of_a_long_recording(
    ours: InferenceServer, tmp_path: Path
) -> None:
    import sphn

    script = _dsm_script("stt_from_file_rust_server.py")
    wav = tmp_path / "long.wav"
    sphn.write_wav(str(wav), np.asarray(speechlike(57.0, seed=5), dtype=np.float32), SR)
    proc = _run_client(script, str(wav), "--url", ours.url, "--rtf", "1000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    times = [float(line.split()[0]) for line in proc.stdout.splitlines() if " - " in line]
    assert times and max(times) > 52.0, proc.stdout[-500:]


@pytest.mark.parametrize("voice", ["", "unmute-prod-website/default_voice.wav"])
def test_dsm_tts_client_writes_audio(ours: InferenceServer, tmp_path: Path, voice: str) -> None:
    script = _dsm_script("tts_rust_server.py")
    (tmp_path / "in.txt").write_text("Hello, this is a test – of the speech server.\n")
    out = tmp_path / "out.wav"
    args = [str(tmp_path / "in.txt"), str(out), "--url", ours.url]
    if voice:
        args += ["--voice", voice]
    proc = _run_client(script, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import sphn

    pcm, sr = sphn.read(str(out))
    assert sr == SR and pcm.shape[-1] > SR
