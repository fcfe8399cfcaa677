"""The session of a duplex character: kyutai.Moshi listens and speaks at once, the Kyutai STT
transcribes the user beside it, Silero VAD tells when the user speaks.

What the cascade adds must stay out of Moshi's way: no greeting (Moshi greets), no silence
nudges (it fills silences), no fast barge-in, no backchannel filter, no queued-audio drop
(interruptions are Moshi's own), and turn detection is the model's.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import NOT_GIVEN, Agent, AgentSession, JobProcess, llm
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import kyutai

from agent.conversation.tools import SessionState, tools_for
from agent.session import outage_options
from agent.settings import AgentSettings
from catalog.dispatch import RoomChoice

DUPLEX_TURN_HANDLING: dict[str, Any] = {
    "turn_detection": "realtime_llm",
    # "adaptive" would call LiveKit's cloud; the framework turns VAD barge-in off anyway for a
    # model that handles overlapping speech
    "interruption": {"mode": "vad"},
    "preemptive_generation": {"enabled": False},
}


class DuplexAgent(Agent):
    """No instructions (Moshi reads no text) and no greeting: Moshi speaks first by itself."""

    def __init__(self, tools: list[llm.FunctionTool]) -> None:
        super().__init__(instructions="", tools=tools)  # type: ignore[arg-type]


def build_duplex_agent(choice: RoomChoice) -> DuplexAgent:
    return DuplexAgent(tools_for(choice.character.tools))


def build_duplex_session(
    proc: JobProcess, settings: AgentSettings, choice: RoomChoice
) -> AgentSession[SessionState]:
    models = settings.models
    spoken = any(rule.spoken for rule in choice.character.intents)
    user_stt = kyutai.STT(url=models.stt_urls, api_key=models.kyutai_api_key, language="en")
    return AgentSession[SessionState](
        llm=kyutai.Moshi(
            urls=models.moshi_urls,
            api_key=models.kyutai_api_key,
            user_stt=user_stt,
            # captions ride out an STT server restart as the cascade's STT does
            user_stt_conn_options=outage_options(models.model_outage_s),
        ),
        # a TTS only to read out the results of spoken intents
        tts=(
            kyutai.TTS(
                url=models.tts_urls,
                api_key=models.kyutai_api_key,
                voice=choice.voice,
                language="en",
            )
            if spoken
            else NOT_GIVEN
        ),
        vad=proc.userdata["vad"],  # user state and latency metrics only
        turn_handling=DUPLEX_TURN_HANDLING,  # type: ignore[arg-type]
        userdata=SessionState(),
        user_away_timeout=None,  # Moshi fills silences itself
        aec_warmup_duration=None,  # the framework would feed Moshi silence meanwhile
        use_tts_aligned_transcript=True,
        conn_options=SessionConnectOptions(tts_conn_options=outage_options(models.model_outage_s)),
    )
