"""The LiveKit worker: the AgentServer, each job process's prewarm, and one room's entrypoint."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from livekit.agents import Agent, AgentServer, AutoSubscribe, JobContext, JobProcess, JobRequest

from agent.duplex.intents import IntentWatcher
from agent.duplex.session import build_duplex_agent, build_duplex_session
from agent.duplex.tools import DuplexTools
from agent.events import SessionEvents
from agent.face.affect import AffectTracker, Bias
from agent.face.publisher import FacePublisher
from agent.interruptions import Interruptions
from agent.interruptions.turn_mode import SttModel, TurnMode, choose_turn_mode, fetch_stt_model
from agent.log import logger
from agent.ops import dispatch, health
from agent.ops import metrics as agent_metrics
from agent.ops.capacity import WorkerLoad, full_load
from agent.ops.recordings import Recording
from agent.ops.waterfall import Waterfall
from agent.session import build_agent, build_session, load_vad, parse_room_metadata, room_options
from agent.settings import AgentSettings
from catalog.characters import CharacterSet
from catalog.dispatch import wants_duplex
from catalog.load import load_catalog
from catalog.prompt_data import PromptData

_background: set[asyncio.Task[object]] = set()  # held so the loop does not drop them


def build_server(settings: AgentSettings) -> AgentServer:
    """An AgentServer that registers for explicit dispatch under `settings.agent_name`."""
    # The job processes load the catalogue too (prewarm); here it says which requests need Moshi.
    characters = load_catalog(settings.characters_file).characters
    load = WorkerLoad(settings, duplex=any(c.duplex for c in characters.characters))
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=(
            settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else None
        ),
        host=settings.http_host,
        port=settings.http_port,
        prometheus_port=settings.prometheus_port,
        num_idle_processes=settings.num_idle_processes,
        load_threshold=full_load(settings),
        load_fnc=load,
        drain_timeout=settings.drain_timeout_s,
        setup_fnc=prewarm,
    )

    async def on_request(request: JobRequest) -> None:
        duplex = wants_duplex(request.job.metadata, characters)
        # Off the loop: before the poller's first snapshot, reading the slots waits for it.
        if duplex and not await asyncio.to_thread(load.admits_duplex):
            # Not terminated: LiveKit offers it to another worker. If none takes it, the
            # dispatch has no job and the room waits in the dispatcher's line (told its place)
            # until a Moshi slot frees. (A terminated job reads as taken for 15 s.)
            logger.info("room %s wants Moshi, which has no free slot", request.room.name)
            await request.reject(terminate=False)
            return
        # Counted against the load before the accept goes out: a burst of dispatches must
        # not get more conversations than there are slots (see WorkerLoad.accepting).
        load.accepting(request.id, duplex=duplex)
        try:
            await request.accept()
        except BaseException:
            load.not_accepted(request.id)
            raise

    # Job processes are spawned: the entrypoint must be a module-level (picklable) function.
    server.rtc_session(entrypoint, agent_name=settings.agent_name, on_request=on_request)

    registration: list[str] = []  # the worker id, once LiveKit has registered us

    def start_health_view() -> None:
        # On the worker's own loop, once it runs: GET /health says if STT, TTS, LLM answer,
        # GET /ready also that LiveKit can give us rooms.
        task = asyncio.get_running_loop().create_task(
            health.serve(settings, registered=lambda: bool(registration))
        )
        _background.add(task)
        task.add_done_callback(_background.discard)

    def on_started() -> None:
        start_health_view()
        load.report_freed_slots(server)

    def on_registered(worker_id: str, _server_info: object) -> None:
        registration[:] = [worker_id]
        logger.info("registered with LiveKit as %s (agent %s)", worker_id, settings.agent_name)

    server.on("worker_started", on_started)
    server.on("worker_registered", on_registered)
    return server


def prewarm(proc: JobProcess) -> None:
    """Load once per job process, before any room is assigned: settings, catalogue, VAD."""
    settings = AgentSettings()
    proc.userdata["settings"] = settings
    # The check `python -m tokens check` runs: characters file and prompt data, one against the
    # other, so a missing tutor plan or too small a question bank fails here, not mid-conversation.
    catalog = load_catalog(settings.characters_file)
    proc.userdata["characters"] = catalog.characters
    proc.userdata["prompt_data"] = catalog.prompt_data
    proc.userdata["vad"] = load_vad(settings)
    # Quick: a server still starting is asked again when the first room comes.
    model = fetch_stt_model(settings.stt_urls, timeout_s=1.0)
    if model is not None:
        proc.userdata["turn_mode"] = choose_turn_mode(settings.turn_detection, model)
        logger.info("turns: %s", proc.userdata["turn_mode"].note)


async def _turn_mode(proc: JobProcess, settings: AgentSettings) -> TurnMode:
    """The end-of-turn mode the STT model allows, asked once per job process."""
    mode: TurnMode | None = proc.userdata.get("turn_mode")
    if mode is None:
        model = await asyncio.to_thread(fetch_stt_model, settings.stt_urls)
        mode = choose_turn_mode(settings.turn_detection, model or SttModel())
        if model is not None:  # else ask again next time
            proc.userdata["turn_mode"] = mode
        logger.info("turns: %s", mode.note)
    return mode


async def entrypoint(ctx: JobContext) -> None:
    settings: AgentSettings = ctx.proc.userdata["settings"]
    characters: CharacterSet = ctx.proc.userdata["characters"]
    prompt_data: PromptData = ctx.proc.userdata["prompt_data"]
    problems: list[str] = []
    choice = parse_room_metadata(ctx.job.metadata, characters, problems)
    ctx.log_context_fields = {"room": ctx.room.name, "character": choice.character_id}
    logger.info(
        "room %s: character=%s voice=%s language=%s subject=%s level=%s",
        ctx.room.name,
        choice.character_id,
        choice.voice,
        choice.language,
        choice.subject,
        choice.level,
    )
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    other = dispatch.other_agent(ctx.room, settings.agent_name)
    if other is not None:
        logger.warning("room %s already has agent %s: leaving it to that one", ctx.room.name, other)
        ctx.shutdown(reason="another agent is in the room")
        return
    # What the agent plays, and what it replaced in the dispatch metadata: visible to the room
    # (and to the dispatcher, which logs it), not only in this worker's log.
    await ctx.room.local_participant.set_attributes(dispatch.played(choice, problems))
    # No STT/TTS slot is held before a person is there to talk to.
    if not await dispatch.wait_for_person(ctx, settings.empty_room_s):
        logger.info(
            "room %s: nobody came within %.0fs, leaving", ctx.room.name, settings.empty_room_s
        )
        ctx.shutdown(reason="nobody came")
        return

    recording = (
        Recording(settings.recordings_dir, f"{ctx.room.name}-{ctx.job.id}")
        if settings.recordings_dir
        else None
    )
    interruptions: Interruptions | None = None
    waterfall: Waterfall | None = None
    temperament = choice.character.temperament
    face = FacePublisher(
        ctx.room.local_participant.set_attributes,
        AffectTracker(Bias(temperament.valence, temperament.arousal, temperament.gain)),
    )
    ctx.add_shutdown_callback(face.close)
    if choice.character.duplex:
        session = build_duplex_session(ctx.proc, settings, choice)
        agent: Agent = build_duplex_agent(choice)
    else:
        turns = await _turn_mode(ctx.proc, settings)
        interruptions = Interruptions.from_settings(
            replace(settings.interruptions, turn_detection=turns.turn_detection)
        )
        session = await build_session(ctx.proc, settings, choice, interruptions, turns)
        waterfall = Waterfall()
        agent = build_agent(settings, choice, prompt_data, interruptions, face, waterfall)
    events = SessionEvents(
        ctx,
        session,
        choice,
        agent_name=settings.agent_name,
        max_silent_turns=settings.max_silent_turns,
        recording=recording,
        duplex=choice.character.duplex,
        waterfall=waterfall,
    )
    events.attach()
    if choice.character.duplex:
        # Moshi calls no tools: the words heard do, and the results go to the room
        DuplexTools(session, ctx.room, IntentWatcher(choice.character.intents)).attach()
    agent_metrics.SESSIONS.inc()
    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_options(),
        record=False,  # the framework's recorder would keep user audio: we never do
    )
    if interruptions is not None:
        interruptions.attach(session)
    events.follow_playout()
    # the face reads the words as they are played: the room's outputs exist from here
    face.follow(session)
