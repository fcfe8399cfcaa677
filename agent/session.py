"""The session a room talks to: kyutai.STT + any OpenAI-compatible LLM + kyutai.TTS + Silero
VAD in one AgentSession, and the agent that speaks in it."""

from __future__ import annotations

import math
import random

from livekit.agents import AgentSession, APIConnectOptions, JobProcess, room_io, vad
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import kyutai, silero

from agent.conversation.agent import ConversationOptions, KyutaiAgent
from agent.conversation.prompt import build_system_prompt, greeting_instruction
from agent.conversation.tools import SessionState, tools_for
from agent.face.publisher import FacePublisher
from agent.interruptions import Interruptions
from agent.interruptions.turn_mode import FRAME_S, TurnMode
from agent.llm_client import build_llm, normalize_base_url, resolve_model
from agent.log import logger
from agent.ops.waterfall import Waterfall
from agent.settings import AgentSettings
from catalog.characters import CharacterSet
from catalog.dispatch import Problem, RoomChoice, Selection, lenient, warning
from catalog.prompt_data import PromptData

INPUT_FRAME_MS = 20
CLOSE_MARGIN_S = 0.3
# Between two connection attempts to an unreachable Kyutai server (LiveKit's default interval).
RECONNECT_INTERVAL_S = 2.0


def outage_options(outage_s: float) -> APIConnectOptions:
    """Retries that ride out `outage_s` of an unreachable STT/TTS server (an inference server
    restarting takes tens of seconds on CPU, minutes with real models on a GPU); LiveKit's
    default of 3 retries gives up after about 4 s and closes the session."""
    return APIConnectOptions(
        max_retry=math.ceil(outage_s / RECONNECT_INTERVAL_S), retry_interval=RECONNECT_INTERVAL_S
    )


def parse_room_metadata(
    metadata: str | bytes | None, characters: CharacterSet, problems: list[str] | None = None
) -> RoomChoice:
    """What the room plays, from its dispatch metadata. Never raises.

    The token service's rule (``catalog.dispatch.resolve``), read leniently: a bad value is
    logged (logger ``kyutai.agent``) with the valid choices, and that field's default is used.
    Each warning is also appended to `problems`, for the agent to publish.
    """
    if metadata is None or not metadata.strip():
        logger.info("no dispatch metadata; using the default character")
    log = lenient(logger)

    def on_problem(problem: Problem) -> None:
        log(problem)
        if problems is not None:
            problems.append(warning(problem))

    selection = Selection.from_metadata(metadata, characters, on_problem)
    return RoomChoice.of(selection, characters)


def close_transcript_s(turns: TurnMode) -> float:
    """Time for the STT to flush the last words out at the end of a session (its frames at
    12.5 per second, plus a margin), at most LiveKit's 2 s."""
    return min(2.0, turns.flush_frames * FRAME_S + CLOSE_MARGIN_S)


def load_vad(settings: AgentSettings) -> vad.VAD:
    # A quick onset (barge-in stops the agent sooner); the backchannel guard forgives noise.
    return silero.VAD.load(
        min_speech_duration=0.03,
        activation_threshold=0.4,
        min_silence_duration=settings.vad_min_silence_s,
    )


async def build_session(
    proc: JobProcess,
    settings: AgentSettings,
    choice: RoomChoice,
    interruptions: Interruptions,
    turns: TurnMode,
) -> AgentSession[SessionState]:
    models = settings.models
    llm_base = normalize_base_url(models.llm_url)
    model = proc.userdata.get("llm_model")
    if model is None:  # asked once per job process
        model = await resolve_model(llm_base, models.llm_api_key, models.llm_model)
        proc.userdata["llm_model"] = model
    return AgentSession[SessionState](
        stt=kyutai.STT(
            url=models.stt_urls,
            api_key=models.kyutai_api_key,
            language=choice.language,
            # With VAD turns, a pause-head end of speech would commit a turn before the VAD
            # (and the backchannel rule) has seen the user stop.
            use_pause_heads=turns.turn_detection == "stt",
            flush_frames=turns.flush_frames,
            flush_timeout=turns.flush_timeout_s,
            flush_to_voice=settings.stt_flush == "voice",
        ),
        tts=kyutai.TTS(
            url=models.tts_urls,
            api_key=models.kyutai_api_key,
            voice=choice.voice,
            language=choice.language,
        ),
        llm=build_llm(
            base_url=llm_base,
            model=model,
            api_key=models.llm_api_key,
            timeout_s=models.llm_timeout_s,
            first_temperature=models.llm_first_temperature,
            temperature=models.llm_temperature,
        ),
        vad=proc.userdata["vad"],
        turn_handling=interruptions.turn_handling(),  # type: ignore[arg-type]
        userdata=SessionState(),
        user_away_timeout=settings.silence_timeout_s,
        # Echo cancellation happens in the user's browser/app; a server-side warm-up would
        # make the agent deaf to barge-in for its first seconds of speech.
        aec_warmup_duration=None,
        use_tts_aligned_transcript=True,
        # On close (the user left), wait for the last words only as long as the STT takes to
        # bring them out (its delay): LiveKit's 2 s would hold the slots, and keep the next
        # room in line waiting, for nothing.
        session_close_transcript_timeout=close_transcript_s(turns),
        conn_options=SessionConnectOptions(
            stt_conn_options=outage_options(models.model_outage_s),
            tts_conn_options=outage_options(models.model_outage_s),
            llm_conn_options=APIConnectOptions(
                max_retry=1, retry_interval=0.5, timeout=models.llm_timeout_s
            ),
        ),
    )


def build_agent(
    settings: AgentSettings,
    choice: RoomChoice,
    data: PromptData,
    interruptions: Interruptions | None = None,
    face: FacePublisher | None = None,
    waterfall: Waterfall | None = None,
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
        interruptions=interruptions,
        face=face,
        waterfall=waterfall,
    )


def room_options() -> room_io.RoomOptions:
    return room_io.RoomOptions(
        close_on_disconnect=True,
        # WebRTC delivers 20 ms packets: the default 50 ms frames would hold a sound back
        # up to 30 ms more before the VAD (and the barge-in gate) hear it.
        audio_input=room_io.AudioInputOptions(frame_size_ms=INPUT_FRAME_MS),
    )
