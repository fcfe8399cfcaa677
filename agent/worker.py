"""Builds the LiveKit AgentServer for the Kyutai agent and its job entrypoint."""

from __future__ import annotations

import asyncio

from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext

from .capacity import job_load
from .log import logger
from .settings import AgentSettings

AGENT_STATE_ATTRIBUTE = "lk.agent.state"
SAMPLE_RATE = 24000


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
        load_fnc=lambda srv: job_load(len(srv.active_jobs), settings.max_jobs),
        drain_timeout=settings.drain_timeout_s,
    )

    # Job processes are spawned: the entrypoint must be a module-level (picklable) function.
    server.rtc_session(entrypoint, agent_name=settings.agent_name)
    return server


async def entrypoint(ctx: JobContext) -> None:
    """Join the room, publish the agent's voice track and state, end when the user leaves."""
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    room = ctx.room
    await room.local_participant.set_attributes({AGENT_STATE_ATTRIBUTE: "initializing"})

    source = rtc.AudioSource(SAMPLE_RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("agent-voice", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    await room.local_participant.publish_track(track, options)
    await room.local_participant.set_attributes({AGENT_STATE_ATTRIBUTE: "listening"})
    logger.info("joined room %s", room.name, extra={"room": room.name})

    user_left = asyncio.Event()

    def on_participant_disconnected(participant: rtc.RemoteParticipant) -> None:
        if not _has_users(room):
            user_left.set()

    room.on("participant_disconnected", on_participant_disconnected)
    if not _has_users(room):
        # The dispatching user may still be joining: give them a moment before leaving.
        try:
            await asyncio.wait_for(ctx.wait_for_participant(), timeout=60)
        except TimeoutError:
            user_left.set()
    await user_left.wait()
    logger.info("no user left in room %s, ending the job", room.name)
    ctx.shutdown(reason="user left")


def _has_users(room: rtc.Room) -> bool:
    return any(
        p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        for p in room.remote_participants.values()
    )
