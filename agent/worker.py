"""Builds the LiveKit AgentServer for the Kyutai agent and its job entrypoint."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import (
    AgentServer,
    AgentSession,
    APIConnectOptions,
    AutoSubscribe,
    JobContext,
    JobProcess,
    MetricsCollectedEvent,
    llm,
    metrics,
    room_io,
)
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import kyutai, silero

from agent.characters import CharacterSet, load_characters
from agent.conversation.agent import ConversationOptions, KyutaiAgent
from agent.conversation.greeting import greeting_instruction
from agent.conversation.prompts import PromptData, build_system_prompt, load_prompt_data
from agent.conversation.silence import SilencePolicy, goodbye_said, silence_reply_kwargs
from agent.conversation.tools import SessionState, tools_for
from agent.interruptions.backchannel import BackchannelFilter
from agent.interruptions.barge_in import FastBargeIn, OnsetDetector, OnsetOptions
from agent.llm_client import build_llm, normalize_base_url, resolve_model
from agent.log import logger
from agent.ops import health
from agent.ops import metrics as agent_metrics
from agent.ops.capacity import make_load_fnc
from agent.ops.recordings import Recording, opted_out
from agent.room_config import RoomChoice, parse_room_metadata
from agent.settings import AgentSettings

INPUT_FRAME_MS = 20


def build_server(settings: AgentSettings) -> AgentServer:
    """An AgentServer that registers for explicit dispatch under `settings.agent_name`."""
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
        load_threshold=settings.load_threshold,
        load_fnc=make_load_fnc(settings),
        drain_timeout=settings.drain_timeout_s,
        setup_fnc=prewarm,
    )
    # Job processes are spawned: the entrypoint must be a module-level (picklable) function.
    server.rtc_session(entrypoint, agent_name=settings.agent_name)

    status: dict[str, Any] = {}

    def start_health_view() -> None:
        # On the worker's own loop, once it runs: GET /health says if STT, TTS, LLM answer.
        status["task"] = asyncio.get_running_loop().create_task(health.serve(settings))

    server.on("worker_started", start_health_view)
    return server


def prewarm(proc: JobProcess) -> None:
    """Load once per job process, before any room is assigned: settings, characters, VAD."""
    settings = AgentSettings()
    proc.userdata["settings"] = settings
    proc.userdata["characters"] = load_characters(settings.characters_file)
    proc.userdata["prompt_data"] = load_prompt_data()
    # A missing tutor plan or too small a question bank fails here, not mid-conversation.
    proc.userdata["prompt_data"].check(proc.userdata["characters"])
    # A quick onset (barge-in stops the agent sooner); the backchannel guard forgives noise.
    proc.userdata["vad"] = silero.VAD.load(
        min_speech_duration=0.03,
        activation_threshold=0.4,
        min_silence_duration=settings.vad_min_silence_s,
    )


async def entrypoint(ctx: JobContext) -> None:
    settings: AgentSettings = ctx.proc.userdata["settings"]
    characters: CharacterSet = ctx.proc.userdata["characters"]
    prompt_data: PromptData = ctx.proc.userdata["prompt_data"]
    choice = parse_room_metadata(ctx.job.metadata, characters)
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
    session = await build_session(ctx, settings, choice)
    backchannels = BackchannelFilter(settings.backchannel_max_s, settings.min_interruption_words)
    fast_barge_in = (
        FastBargeIn(
            session,
            detector=OnsetDetector(OnsetOptions(margin_db=settings.fast_barge_in_margin_db)),
        )
        if settings.fast_barge_in
        else None
    )
    agent = build_agent(
        settings,
        choice,
        prompt_data,
        backchannels,
        on_user_audio=fast_barge_in.on_frame if fast_barge_in else None,
    )
    recording = (
        Recording(settings.recordings_dir, f"{ctx.room.name}-{ctx.job.id}")
        if settings.recordings_dir
        else None
    )
    observe(ctx, session, settings, choice, recording, backchannels)
    agent_metrics.SESSIONS.inc()
    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_io.RoomOptions(
            close_on_disconnect=True,
            # WebRTC delivers 20 ms packets: the default 50 ms frames would hold a sound back
            # up to 30 ms more before the VAD (and the barge-in gate) hear it.
            audio_input=room_io.AudioInputOptions(frame_size_ms=INPUT_FRAME_MS),
        ),
        record=False,  # the framework's recorder would keep user audio: we never do
    )
    sink = room_audio_sink(session)
    if sink is not None:
        stop_queued_audio_on_pause(sink)
        if fast_barge_in is not None and session.output.audio is not None:
            fast_barge_in.attach(session.output.audio, sink)
            session.on("close", lambda _ev: fast_barge_in.close())
    else:
        logger.warning("no room audio output found: barge-in keeps LiveKit's default latency")


def room_audio_sink(session: AgentSession[Any]) -> Any | None:
    """The room output at the end of the session's audio chain (it owns the AudioSource)."""
    output = session.output.audio
    while output is not None and not hasattr(output, "_audio_source"):
        output = getattr(output, "next_in_chain", None)
    return output


def stop_queued_audio_on_pause(output: Any) -> None:
    """On barge-in the room output pauses but its forwarding loop only drops the ~200 ms
    AudioSource queue once its next frame fits in (up to 50 ms later); drop it at once so the
    listener hears the agent stop sooner. The drop is booked as LiveKit books its own
    (discarded, and a resumed run starts past it). As with LiveKit's own drop, the transcript
    synchroniser (which counts paused wall-clock time, not samples) is not told: after a pause
    that is lifted, the heard text may lag the audio by up to the dropped ~0.2 s.

    Once the whole reply is in the queue (no frame left to forward, playout awaited), the queue
    is the reply's tail: clearing it would end the reply as fully played, unheard, with no
    resume. There LiveKit's behaviour (the tail plays out) is kept."""
    source = getattr(output, "_audio_source", None)
    needed = (
        "_report_run",
        "_source_pushed_duration",
        "_source_discarded_duration",
        "_audio_buf",
        "_flush_task",
    )
    if (
        source is None
        or not hasattr(source, "clear_queue")
        or not all(hasattr(output, name) for name in needed)
    ):
        logger.warning("room audio output is not the one we know: pauses keep their queue")
        return
    original_pause = output.pause

    def pause() -> None:
        original_pause()
        flush = output._flush_task
        if flush is not None and not flush.done() and output._audio_buf.empty():
            return  # only the reply's tail is queued: see above
        queued = source.queued_duration
        if queued > 0:
            output._source_discarded_duration += queued
            pushed = output._source_pushed_duration
            output._report_run(offset=pushed - queued, ended_at=time.time(), resumes_at=pushed)
            source.clear_queue()

    output.pause = pause


async def build_session(
    ctx: JobContext, settings: AgentSettings, choice: RoomChoice
) -> AgentSession[SessionState]:
    llm_base = normalize_base_url(settings.llm_url)
    llm_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    model = ctx.proc.userdata.get("llm_model")
    if model is None:
        model = await resolve_model(llm_base, llm_key, settings.llm_model)
        ctx.proc.userdata["llm_model"] = model
    kyutai_key = settings.kyutai_api_key.get_secret_value()
    return AgentSession[SessionState](
        stt=kyutai.STT(
            url=settings.stt_urls,
            api_key=kyutai_key,
            language=choice.language,
            # With VAD turns, a pause-head end of speech would commit a turn before the VAD
            # (and the backchannel rule) has seen the user stop.
            use_pause_heads=settings.turn_detection == "stt",
        ),
        tts=kyutai.TTS(
            url=settings.tts_urls,
            api_key=kyutai_key,
            voice=choice.voice,
            language=choice.language,
        ),
        llm=build_llm(
            base_url=llm_base,
            model=model,
            api_key=llm_key,
            timeout_s=settings.llm_timeout_s,
            first_temperature=settings.llm_first_temperature,
            temperature=settings.llm_temperature,
        ),
        vad=ctx.proc.userdata["vad"],
        turn_handling={
            "turn_detection": settings.turn_detection,
            # Kyutai's pause heads already waited for the silence: don't add the default 0.5 s.
            "endpointing": {"min_delay": settings.min_endpointing_delay_s, "max_delay": 3.0},
            "interruption": {
                "mode": "vad",  # "adaptive" would call LiveKit's cloud
                "min_duration": settings.min_interruption_s,
                # Any voice pauses the agent at once; BackchannelFilter decides afterwards
                # whether it was an interruption (words) or a backchannel (resume).
                "min_words": 0,
                "resume_false_interruption": True,
                "false_interruption_timeout": settings.false_interruption_timeout_s,
            },
            "preemptive_generation": {"enabled": False},
        },
        userdata=SessionState(),
        user_away_timeout=settings.silence_timeout_s,
        # Echo cancellation happens in the user's browser/app; a server-side warm-up would
        # make the agent deaf to barge-in for its first seconds of speech.
        aec_warmup_duration=None,
        use_tts_aligned_transcript=True,
        conn_options=SessionConnectOptions(
            llm_conn_options=APIConnectOptions(
                max_retry=1, retry_interval=0.5, timeout=settings.llm_timeout_s
            ),
        ),
    )


def build_agent(
    settings: AgentSettings,
    choice: RoomChoice,
    data: PromptData,
    backchannels: BackchannelFilter | None = None,
    on_user_audio: Callable[[rtc.AudioFrame], None] | None = None,
) -> KyutaiAgent:
    tools = tools_for(choice.character.tools)
    instructions = build_system_prompt(
        choice,
        data,
        rng=random.Random(),
        tools=[t.info.name for t in tools],
        max_silent_turns=settings.max_silent_turns,
    )
    return KyutaiAgent(
        instructions=instructions,
        tools=tools,
        options=ConversationOptions(
            language=choice.language,
            greeting_instructions=greeting_instruction(choice, data),
            context_tokens=settings.context_tokens,
        ),
        backchannels=backchannels,
        on_user_audio=on_user_audio,
    )


def observe(
    ctx: JobContext,
    session: AgentSession[SessionState],
    settings: AgentSettings,
    choice: RoomChoice,
    recording: Recording | None,
    backchannels: BackchannelFilter,
) -> None:
    """Metrics, transcripts, silence handling and the end of the job, from session events."""
    tracker = agent_metrics.TurnLatencyTracker()
    silence = SilencePolicy(settings.max_silent_turns)
    usage = metrics.UsageCollector()
    tasks: set[asyncio.Task[Any]] = set()

    if recording:
        recording.write(
            "session",
            room=ctx.room.name,
            character=choice.character_id,
            language=choice.language,
            subject=choice.subject,
            level=choice.level,
        )

    @session.on("metrics_collected")
    def _on_metrics(ev: MetricsCollectedEvent) -> None:
        m = ev.metrics
        usage.collect(m)
        turn = None
        speech_id = getattr(m, "speech_id", None)
        if speech_id is None:
            return
        # Each stage is observed as it comes (a greeting has no end of turn); end_to_end
        # once a reply to the user has all three.
        if isinstance(m, metrics.EOUMetrics):
            agent_metrics.observe_stage("end_of_turn", m.end_of_utterance_delay)
            agent_metrics.observe_stage("transcript", m.transcription_delay)
            turn = tracker.on_eou(speech_id, m.end_of_utterance_delay, m.transcription_delay)
        elif isinstance(m, metrics.LLMMetrics):
            agent_metrics.observe_stage("llm_ttft", m.ttft)
            turn = tracker.on_llm(speech_id, m.ttft)
        elif isinstance(m, metrics.TTSMetrics):
            agent_metrics.observe_stage("tts_ttfb", m.ttfb)
            turn = tracker.on_tts(speech_id, m.ttfb)
        if turn is not None:
            if turn.end_to_end is not None:
                agent_metrics.observe_stage("end_to_end", turn.end_to_end)
            logger.info(
                "turn latency %s", {k: v and round(v, 3) for k, v in turn.as_dict().items()}
            )
            if recording:
                recording.write("latency", **turn.as_dict())

    @session.on("agent_state_changed")
    def _on_agent_state(ev: Any) -> None:
        logger.debug("agent state %s -> %s", ev.old_state, ev.new_state)

    @session.on("agent_false_interruption")
    def _on_false_interruption(_ev: Any) -> None:
        agent_metrics.FALSE_INTERRUPTIONS.inc()

    @session.on("error")
    def _on_error(ev: Any) -> None:
        stage = str(getattr(ev.error, "type", "unknown")).replace("_error", "")
        agent_metrics.ERRORS.labels(stage=stage).inc()

    @session.on("conversation_item_added")
    def _on_item(ev: Any) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        text = item.text_content or ""
        if item.role == "assistant" and item.interrupted:
            agent_metrics.INTERRUPTIONS.inc()
        if item.role == "user" and text.strip() and text.strip() != "...":
            silence.on_user_spoke()
        if recording and not recording.deleted:
            recording.write("message", role=item.role, text=text, interrupted=item.interrupted)
        if item.role == "user" and goodbye_said(text):
            logger.info("the user said goodbye")
        if item.role == "assistant" and goodbye_said(text) and not item.interrupted:
            logger.info("the agent said goodbye: ending the session")
            session.shutdown(drain=True)

    speech_started = [time.monotonic()]

    @session.on("user_state_changed")
    def _on_user_state(ev: Any) -> None:
        if ev.new_state == "speaking":
            speech_started[0] = time.monotonic()
            backchannels.user_started(agent_speaking=session.agent_state == "speaking")
        elif ev.old_state == "speaking":
            # The VAD reports the end of speech after vad_min_silence_s of silence.
            spoke_for = time.monotonic() - speech_started[0] - settings.vad_min_silence_s
            backchannels.user_stopped(spoke_for)
            logger.debug("user spoke %.2fs", spoke_for)
        logger.debug("user state %s -> %s", ev.old_state, ev.new_state)
        if ev.new_state == "speaking":
            silence.on_user_spoke()
        if ev.new_state != "away":
            return
        action = silence.on_silence()
        logger.info("user silent (%d): %s", silence.silent_turns, action)

        async def reply() -> None:
            handle = session.generate_reply(**silence_reply_kwargs(action, choice.language))
            await handle
            if action == "goodbye":
                session.shutdown(drain=True)
            else:
                session.reset_away_timer()

        task = asyncio.create_task(reply())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _on_attributes(changed: dict[str, str], participant: Any) -> None:
        if recording and not recording.deleted and opted_out(changed):
            recording.delete()

    ctx.room.on("participant_attributes_changed", _on_attributes)

    @session.on("close")
    def _on_close(ev: Any) -> None:
        logger.info("session closed (%s), ending the job", getattr(ev, "reason", ""))
        if recording and not recording.deleted:
            recording.write(
                "end", reason=str(getattr(ev, "reason", "")), usage=str(usage.get_summary())
            )
            recording.close()
        ctx.shutdown(reason="session closed")
