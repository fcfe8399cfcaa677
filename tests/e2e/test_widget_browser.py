"""The embeddable widget in a real Chromium: demo page, token service, livekit-server, an agent.

Two tests share the browser driver `web/tests/browser.mjs` (Node + playwright-core, the
system Chromium with a fake microphone playing an espeak WAV):

- `test_widget_with_fake_agent`: a Python participant plays the agent (`lk.agent.state`,
  `kyutai.emotion`, a spoken WAV, `lk.transcription` streams for both sides): captions of
  both sides, the emotion and the mouth moving are checked without any model.
- `test_widget_with_agent_worker`: the real worker joins through the token's dispatch. With
  today's skeleton it checks the join and `lk.agent.state`; set FULL_AGENT_PIPELINE (or
  KYUTAI_WIDGET_FULL_AGENT=1) once the Kyutai STT/TTS pipeline is in to also require captions
  of both sides and a moving mouth.

Both check the page at 375x667 (no horizontal overflow) and drive the widget by keyboard.
The screenshot lands in test-artifacts/widget.png.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc

from harness.characters import write_duplex_characters
from harness.dispatcher import start_dispatcher
from harness.inference_server import start_inference_server
from harness.join_token import make_token
from harness.livekit_server import ROOT, LiveKitServer
from harness.participant import TestParticipant
from harness.ports import free_port
from harness.procs import ManagedProcess, http_ok, spawn, wait_until
from harness.speech import speech_wav
from harness.stub_llm import StubLLM
from harness.worker import WorkerHandle, start_worker, tiny_stack_env

# >>> The one-line switch: True once the agent runs the full STT -> LLM -> TTS pipeline. <<<
FULL_AGENT_PIPELINE = True

CHROMIUM = os.environ.get("KYUTAI_CHROMIUM", "/usr/bin/chromium")
WEB = ROOT / "web"
BUNDLE = ROOT / "tokens" / "static" / "widget.js"
DRIVER = WEB / "tests" / "browser.mjs"
BROWSER_TIMEOUT_S = 90


def _missing_prerequisite() -> str | None:
    if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set KYUTAI_CHROMIUM)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not BUNDLE.exists():
        return f"{BUNDLE.relative_to(ROOT)} is not built (cd web && npm ci && npm run build)"
    if not (WEB / "node_modules" / "playwright-core").exists():
        return "web/node_modules is missing (cd web && npm ci)"
    return None


_MISSING = _missing_prerequisite()
# A mark, not a fixture: it skips before any server (livekit, inference) is started.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(_MISSING is not None, reason=f"widget browser test needs: {_MISSING}"),
]


@dataclass
class TokenService:
    url: str
    process: ManagedProcess


@pytest.fixture(scope="module")
def duplex_characters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_duplex_characters(tmp_path_factory.mktemp("widget") / "characters.yaml")


@pytest.fixture(scope="module")
def token_service(
    livekit_server: LiveKitServer, artifacts_dir: Path, duplex_characters: Path
) -> Iterator[TokenService]:
    port = free_port()
    env = {
        "LIVEKIT_URL": livekit_server.url,
        "LIVEKIT_API_KEY": livekit_server.api_key,
        "LIVEKIT_API_SECRET": livekit_server.api_secret,
        "TOKEN_DEMO_MODE": "1",
        "TOKEN_DEV_MODE": "1",
        "TOKEN_RATE_LIMIT_BURST": "50",
        "TOKEN_RATE_LIMIT_PER_MIN": "600",
        # the shipped characters, plus duplex ones the tiny Moshi's words trigger tools for
        "KYUTAI_CHARACTERS_FILE": str(duplex_characters),
        "PYTHONUNBUFFERED": "1",
    }
    process = spawn(
        "token-service-widget",
        [sys.executable, "-m", "tokens", "serve", "--host", "127.0.0.1", "--port", str(port)],
        artifacts_dir / "logs",
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_ok(f"{url}/healthz"), timeout=30, what="the token service", process=process
        )
        yield TokenService(url=url, process=process)
    finally:
        process.stop()


def test_bundle_served_without_secrets(
    token_service: TokenService, livekit_server: LiveKitServer
) -> None:
    """What browsers download carries neither this server's secret nor any LiveKit key name."""
    for path in ("/widget/widget.js", "/widget/demo.html", "/widget/demo.js"):
        with urllib.request.urlopen(token_service.url + path, timeout=10) as resp:
            body = resp.read().decode()
        assert livekit_server.api_secret not in body, path
        assert "LIVEKIT_API_SECRET" not in body, path
        assert "devkey" not in body, path


class BrowserRun:
    """`node web/tests/browser.mjs` as a child process, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, **config: Any) -> BrowserRun:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(DRIVER),
            json.dumps(config),
            cwd=WEB,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # stderr: pytest's capture
        )
        return cls(proc)

    async def next_event(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
            if not line:
                raise AssertionError(f"browser driver exited ({await self.proc.wait()}) early")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # stray output from a library
            self.events.append(event)
            return event

    async def until(self, name: str, timeout: float) -> dict[str, Any]:
        while True:
            event = await self.next_event(timeout)
            if event.get("event") == name:
                return event
            if event.get("event") == "result":
                raise AssertionError(f"browser run ended before {name!r}: {_describe(event)}")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def _describe(result: dict[str, Any]) -> str:
    return json.dumps({k: result.get(k) for k in ("error", "checks", "states", "final")}, indent=1)[
        :6000
    ]


def _base_config(token_service: TokenService, artifacts_dir: Path, **extra: Any) -> dict[str, Any]:
    user_wav = speech_wav("What is two plus two?", lead_silence_s=1.0, trail_silence_s=2.0)
    return {
        "url": f"{token_service.url}/widget/demo.html",
        "chromium": CHROMIUM,
        "wav": str(user_wav),
        "screenshot": str(artifacts_dir / "widget.png"),
        "character": "tutor",
        "subject": "maths",
        "level": "beginner",
        "timeoutMs": (BROWSER_TIMEOUT_S - 10) * 1000,
        **extra,
    }


async def test_widget_explains_a_refused_microphone(
    token_service: TokenService, artifacts_dir: Path
) -> None:
    """Without the permission the widget says what to do, and asks for no token."""
    run = await BrowserRun.start(
        **_base_config(
            token_service,
            artifacts_dir,
            denyMicrophone=True,
            screenshot=str(artifacts_dir / "widget-mic-denied.png"),
        )
    )
    try:
        result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
    finally:
        await run.kill()
    assert result.get("ok"), _describe(result)
    refusal = result["checks"]["refusal"]
    assert "Microphone access was blocked" in refusal["message"], refusal
    assert refusal["room"] is None
    assert result["checks"]["overflow"]["scrollWidth"] <= 375


def _check_common(result: dict[str, Any]) -> None:
    assert result.get("ok"), _describe(result)
    checks = result["checks"]
    assert checks["overflow"]["scrollWidth"] <= 375, checks["overflow"]
    assert checks["keyboard"]["focused"]["tag"] == "BUTTON"
    assert checks.get("disconnected") is True


# --- the face alone: presets, a valence–arousal glide, listening, visemes ---------------------


def _images(files: list[str]) -> list[bytes]:
    return [Path(f).read_bytes() for f in files]


async def test_face_gallery_glide_listening_and_visemes(
    token_service: TokenService, artifacts_dir: Path
) -> None:
    """The idle widget's face, driven as an agent drives it (no room): a screenshot per preset
    and per step of a happy → calm glide (artifacts/face/), nods only while the user speaks and
    never with reduced motion, visemes that follow the words and close in a silence."""
    gallery = artifacts_dir / "face"
    run = await BrowserRun.start(**_base_config(token_service, artifacts_dir, gallery=str(gallery)))
    try:
        result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
    finally:
        await run.kill()
    assert result.get("ok"), _describe(result)
    checks = result["checks"]

    # every preset its own picture
    shots = _images([p["file"] for p in checks["presets"]])
    assert len(shots) == 8 and len(set(shots)) == 8, checks["presets"]
    assert all(p["expression"].endswith(p["emotion"]) for p in checks["presets"])
    # the glide: the face's smile eases down with the point, each step its own picture
    smiles = [g["smile"] for g in checks["glide"]]
    assert all(a > b for a, b in itertools.pairwise(smiles)), smiles
    assert len(set(_images([g["file"] for g in checks["glide"]]))) == 5
    # one jump across the plane is shown as a glide: several steps, none of them most of the way
    jump = checks["jump"]
    steps = [abs(b - a) for a, b in itertools.pairwise(jump)]
    assert jump[0] - jump[-1] > 0.8 and max(steps) < 0.5 * (jump[0] - jump[-1]), jump

    # listening: the user is loud, the face nods (and says mm-hm with its brows)
    listening = checks["listening"]
    assert all(s["user"] for s in listening[5:])
    assert max(s["dy"] for s in listening) > 1.5, listening
    # reduced motion: no nods, no sway
    assert all(s["dy"] == 0 and s["rot"] == 0 for s in checks["listeningReduced"])
    # idle: it sways (no nods)
    idle = checks["idle"]
    assert max(s["rot"] for s in idle) - min(s["rot"] for s in idle) > 0.05
    assert not any(s["user"] for s in idle)

    # visemes follow the words: several distinct shapes while the voice is loud
    speech = checks["speech"]
    voiced = [s for s in speech if s["t"] < 650]
    assert len({s["viseme"] for s in voiced} - {"none"}) >= 3, voiced
    assert len({round(s["width"], 2) for s in voiced}) >= 3
    # and a 300 ms silence inside the speech closes the mouth, words or not: it is shut for
    # the gap's second half (it eases shut over the first: no snap)
    gap = [s for s in speech if 850 <= s["t"] < 1000]
    assert gap and gap[-1]["open"] < 0.05 and min(s["open"] for s in gap) < 0.04, gap


# --- the fake agent: a Python participant with the attributes and streams of an agent ---------


async def _wait_for_track(fake: TestParticipant, identity: str) -> str:
    """The sid of the widget user's microphone track, as the agent would see it."""

    def sid() -> str | None:
        user = fake.room.remote_participants.get(identity)
        pubs = list(user.track_publications.values()) if user else []
        return pubs[0].sid if pubs else None

    await fake.wait_for(lambda: sid() is not None, timeout=15, what="the widget's microphone")
    return str(sid())


async def _play_fake_agent(fake: TestParticipant, user_identity: str, stop: asyncio.Event) -> None:
    lp = fake.room.local_participant
    await lp.set_attributes({"lk.agent.state": "listening", "kyutai.emotion": "neutral"})
    mic_sid = await _wait_for_track(fake, user_identity)

    # The user's words, as the agent publishes them: full text per interim, same segment.
    user_attrs = {"lk.segment_id": "SG_user_1", "lk.transcribed_track_id": mic_sid}
    for text, final in (
        ("what is", False),
        ("what is two plus", False),
        ("What is two plus two?", True),
    ):
        await lp.send_text(
            text,
            topic="lk.transcription",
            attributes={**user_attrs, "lk.transcription_final": str(final).lower()},
        )
        await asyncio.sleep(0.2)

    await lp.set_attributes({"lk.agent.state": "thinking", "kyutai.emotion": "thinking"})
    await asyncio.sleep(0.5)
    await lp.set_attributes({"lk.agent.state": "speaking", "kyutai.emotion": "happy"})

    # The agent's words: one delta stream, the final flag in the trailer.
    answer = "Two plus two is four. Well done, that is exactly right!"
    writer = await lp.stream_text(
        topic="lk.transcription",
        attributes={"lk.segment_id": "SG_agent_1", "lk.transcription_final": "false"},
    )
    voice = speech_wav(answer, lead_silence_s=0.2, trail_silence_s=0.6)

    async def speak() -> None:
        while not stop.is_set():  # keep talking until the browser has seen enough
            await fake.say(voice)

    speaking = asyncio.create_task(speak())
    try:
        for word in answer.split():
            await writer.write(word + " ")
            await asyncio.sleep(0.15)
        await writer.aclose(attributes={"lk.transcription_final": "true"})
        await stop.wait()
    finally:
        speaking.cancel()
        await asyncio.gather(speaking, return_exceptions=True)


@pytest.fixture
async def fake_agent_factory(livekit_server: LiveKitServer) -> AsyncIterator[Any]:
    joined: list[TestParticipant] = []

    async def join(room: str) -> TestParticipant:
        fake = TestParticipant(identity="agent-fake")
        # A normal participant (not kind AGENT) that sets its own attributes as an agent does.
        token = make_token(
            livekit_server.api_key,
            livekit_server.api_secret,
            room=room,
            identity="agent-fake",
            name="Fake tutor",
        )
        await fake.join(livekit_server.url, token)
        joined.append(fake)
        return fake

    yield join
    for fake in joined:
        if fake.room.isconnected():
            await fake.leave()


async def test_widget_with_fake_agent(
    token_service: TokenService, artifacts_dir: Path, fake_agent_factory: Any
) -> None:
    run = await BrowserRun.start(
        **_base_config(
            token_service,
            artifacts_dir,
            expectAgent=True,
            expectCaptions=True,
            expectMouth=True,
            expectEmotion="happy",
            camera=True,
        )
    )
    stop = asyncio.Event()
    agent_task: asyncio.Task[None] | None = None
    try:
        connected = await run.until("connected", timeout=60)
        assert connected["room"].startswith("room-"), connected
        fake = await fake_agent_factory(connected["room"])
        agent_task = asyncio.create_task(_play_fake_agent(fake, connected["identity"], stop))
        # the eyes follow the camera, and no frame of it reaches the room
        camera = await run.until("camera", timeout=BROWSER_TIMEOUT_S)
        assert camera["pressed"] == "true" and camera["gaze"] != "0.00 0.00", camera
        widget_user = fake.room.remote_participants[connected["identity"]]
        kinds = {p.kind for p in widget_user.track_publications.values()}
        assert kinds == {rtc.TrackKind.KIND_AUDIO}, kinds
        result_wait = asyncio.create_task(run.until("result", timeout=BROWSER_TIMEOUT_S))
        done, _ = await asyncio.wait(
            {result_wait, agent_task},
            timeout=BROWSER_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if agent_task in done and agent_task.exception():
            result_wait.cancel()
            raise agent_task.exception()  # type: ignore[misc]
        result = await result_wait
    finally:
        stop.set()
        if agent_task is not None:
            await asyncio.gather(agent_task, return_exceptions=True)
        await run.kill()

    _check_common(result)
    checks = result["checks"]
    captions = checks["captions"]
    user_lines = [c for c in captions if c["speaker"] == "user"]
    agent_lines = [c for c in captions if c["speaker"] == "agent"]
    assert [c["text"] for c in user_lines] == ["What is two plus two?"], captions  # merged
    assert user_lines[0]["who"] == "You"
    assert agent_lines[0]["text"] == "Two plus two is four. Well done, that is exactly right!"
    assert agent_lines[0]["who"] == "Fake tutor"
    assert checks["mouth"]["max"] >= 0.3, checks["mouth"]
    # the agent's words, as they arrived, shaped the mouth (visemes from the caption stream)
    assert len(set(checks["mouth"]["visemes"]) - {"none"}) >= 3, checks["mouth"]
    assert checks["expression"].endswith("happy")
    assert "speaking" in result["states"], result["states"]
    assert (artifacts_dir / "widget.png").stat().st_size > 10_000


async def test_the_face_nods_while_the_user_speaks_to_a_listening_agent(
    token_service: TokenService, artifacts_dir: Path, fake_agent_factory: Any
) -> None:
    """Chromium's fake microphone speaks (after 3 s of silence, time for the fake agent to
    listen); the widget measures it in the page and the face nods."""
    wav = speech_wav("Let me tell you about my weekend, it was great.", lead_silence_s=3.0)
    run = await BrowserRun.start(
        **_base_config(
            token_service,
            artifacts_dir,
            wav=str(wav),
            screenshot=str(artifacts_dir / "widget-listening.png"),
            expectListening=True,
        )
    )
    try:
        connected = await run.until("connected", timeout=60)
        fake = await fake_agent_factory(connected["room"])
        await fake.room.local_participant.set_attributes({"lk.agent.state": "listening"})
        result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
    finally:
        await run.kill()
    _check_common(result)
    listening = result["checks"]["listening"]
    assert listening["userSpeaking"] > 0 and listening["maxNod"] > 1.5, listening


# --- the real agent worker ----------------------------------------------------------------------


@pytest.mark.usefixtures("stub_llm")  # a fresh stub LLM: scripted state from other tests gone
async def test_widget_with_agent_worker(
    token_service: TokenService,
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    agent_env: dict[str, str],
) -> None:
    """The token's dispatch brings the real worker (tiny Kyutai models, stub LLM) to the widget."""
    worker = start_worker(
        livekit_server, artifacts_dir / "logs", name="worker-widget", env=agent_env
    )
    screenshot = artifacts_dir / ("widget.png" if FULL_AGENT_PIPELINE else "widget-agent.png")
    run = await BrowserRun.start(
        **_base_config(
            token_service,
            artifacts_dir,
            screenshot=str(screenshot),
            expectAgent=True,
            expectCaptions=FULL_AGENT_PIPELINE,
            expectMouth=FULL_AGENT_PIPELINE,
        )
    )
    try:
        connected = await run.until("connected", timeout=60)
        result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
    finally:
        await run.kill()
        code = worker.stop()
    _check_common(result)
    assert connected["room"].startswith("room-")
    assert result["checks"]["agentState"] in ("initializing", "listening", "thinking", "speaking")
    if FULL_AGENT_PIPELINE:
        captions = result["checks"]["captions"]
        assert any(c["speaker"] == "user" and c["final"] for c in captions), captions
        # Tiny random models: the user's words come out as noise, the agent's are the stub's.
        assert any(c["speaker"] == "agent" and c["final"] and c["who"] != "You" for c in captions)
        assert result["checks"]["mouth"]["max"] >= 0.3
    assert code == 0, worker.process.log_tail()


# --- Moshi, full duplex ---------------------------------------------------------------------------


@pytest.mark.usefixtures("stub_llm")
async def test_widget_with_moshi_in_duplex_mode(
    token_service: TokenService,
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    stub_llm_server: StubLLM,
    duplex_characters: Path,
) -> None:
    """The demo page with a duplex character: Moshi (tiny, keyed) greets, the Kyutai STT
    captions the user, Moshi's words are captioned, and the tool its greeting triggers
    ("howdy" → look_up_definition) shows as a card. Screenshot: widget-moshi.png."""
    server = start_inference_server(
        ROOT / ".cache" / "kyutai-tiny",
        batch_size=4,
        extra_args=["--engines", "stt,tts,moshi", "--moshi-batch-size", "4"],
        log_dir=artifacts_dir / "logs",
    )
    worker: WorkerHandle | None = None
    try:
        env = tiny_stack_env(
            server.url,
            server.api_key,
            stub_llm_server.base_url,
            KYUTAI_MOSHI_URL=server.url,
            KYUTAI_CHARACTERS_FILE=str(duplex_characters),
        )
        worker = start_worker(
            livekit_server, artifacts_dir / "logs", name="worker-widget-moshi", env=env
        )
        run = await BrowserRun.start(
            **_base_config(
                token_service,
                artifacts_dir,
                character="moshi-lookup",
                # the user speaks once Moshi's greeting (which triggers the tool) is over:
                # talked over, Moshi would stop before "howdy"
                wav=str(
                    speech_wav("What is two plus two?", lead_silence_s=4.0, trail_silence_s=2.0)
                ),
                subject=None,
                level=None,
                screenshot=str(artifacts_dir / "widget-moshi.png"),
                expectAgent=True,
                expectCaptions=True,
                expectCard=True,
            )
        )
        try:
            result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
        finally:
            await run.kill()
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
    _check_common(result)
    captions = result["checks"]["captions"]
    assert any(c["speaker"] == "user" and c["final"] for c in captions), captions
    assert any(c["speaker"] == "agent" and "howdy" in c["text"].lower() for c in captions), captions
    cards = result["checks"]["cards"]
    assert cards[0]["title"] == "Course notes: text", cards
    assert "text" in cards[0]["body"]


# --- every tutor busy: the line -------------------------------------------------------------------


@pytest.mark.usefixtures("stub_llm")
async def test_widget_shows_its_place_in_line_then_starts_by_itself(
    token_service: TokenService,
    livekit_server: LiveKitServer,
    artifacts_dir: Path,
    agent_env: dict[str, str],
    make_participant: Any,
) -> None:
    """One worker with one conversation slot, taken by someone else: the page says it is next
    in line (screenshot), and the conversation starts when that slot frees (screenshot)."""
    logs = artifacts_dir / "logs"
    worker = start_worker(
        livekit_server, logs, name="worker-widget-line", env={**agent_env, "AGENT_MAX_JOBS": "1"}
    )
    dispatcher = start_dispatcher(livekit_server, logs, "dispatcher-widget", free_port(), poll_s=1)
    run: BrowserRun | None = None
    try:
        busy = await make_participant(
            f"busy-{free_port()}", "someone-else", dispatch_agent="kyutai-agent"
        )
        await busy.wait_for_greeting(agent_timeout=20)
        run = await BrowserRun.start(
            **_base_config(
                token_service,
                artifacts_dir,
                screenshot=str(artifacts_dir / "widget-line-served.png"),
                lineScreenshot=str(artifacts_dir / "widget-line-waiting.png"),
                expectLine=True,
                expectAgent=True,
            )
        )
        waiting = await run.until("waiting", timeout=BROWSER_TIMEOUT_S)
        assert "next in line" in waiting["message"], waiting
        await busy.leave()  # the slot frees: the page's room is next
        result = await run.until("result", timeout=BROWSER_TIMEOUT_S)
    finally:
        if run is not None:
            await run.kill()
        dispatcher.stop()
        code = worker.stop()
    _check_common(result)
    assert "next in line" in result["checks"]["line"]
    assert result["checks"]["agentState"] in ("initializing", "listening", "thinking", "speaking")
    assert (artifacts_dir / "widget-line-waiting.png").stat().st_size > 10_000
    assert (artifacts_dir / "widget-line-served.png").stat().st_size > 10_000
    assert code == 0, worker.process.log_tail()
