"""A minimal test-only agent worker: kyutai.STT + kyutai.TTS + the stub LLM, nothing else.

Run as ``python -m tests.e2e.plugin_worker start`` with LIVEKIT_URL/API_KEY/API_SECRET,
KYUTAI_STT_URL, KYUTAI_TTS_URL, KYUTAI_API_KEY, PLUGIN_TEST_LLM_URL, PLUGIN_TEST_AGENT_NAME and
PLUGIN_TEST_HTTP_PORT set. Turns end on the STT's pause heads (turn_detection="stt"); barge-in
uses Silero VAD; nothing calls the cloud.
"""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentServer, AgentSession, AutoSubscribe, JobContext, cli
from livekit.plugins import kyutai, openai, silero


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    session: AgentSession[None] = AgentSession(
        stt=kyutai.STT(),
        tts=kyutai.TTS(),
        llm=openai.LLM(model="stub", base_url=os.environ["PLUGIN_TEST_LLM_URL"], api_key="stub"),
        vad=silero.VAD.load(),
        turn_handling={
            "turn_detection": "stt",
            # the pause heads already waited for the silence
            "endpointing": {"min_delay": 0.0, "max_delay": 3.0},
            "interruption": {"mode": "vad"},
            "preemptive_generation": {"enabled": False},
        },
    )
    await session.start(agent=Agent(instructions="You are a test assistant."), room=ctx.room)


def main() -> None:
    server = AgentServer(
        host="127.0.0.1",
        port=int(os.environ.get("PLUGIN_TEST_HTTP_PORT", "0")),
        num_idle_processes=1,
    )
    server.rtc_session(entrypoint, agent_name=os.environ["PLUGIN_TEST_AGENT_NAME"])
    cli.run_app(server)


if __name__ == "__main__":
    main()
