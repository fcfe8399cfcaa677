"""The agent's side of dispatch: one agent per room, no slot held for nobody, and a room given
back or let go on purpose.

The dispatcher (`python -m dispatcher`) dispatches our agent into every room that has a person,
a dispatch of our agent and no agent of ours. So:
- an agent that finds another of ours already in the room leaves at once, before it holds a
  model slot or says anything (two dispatchers, or a retry racing a slow join);
- an agent dispatched into an empty room waits for a person without opening its STT/TTS
  streams, and leaves if nobody comes;
- a conversation that ends on purpose (a goodbye) deletes the room's dispatches of our agent,
  so the dispatcher leaves the room alone; one that ends on an error keeps them, and the room
  goes back in line for another agent.
"""

from __future__ import annotations

import asyncio

from livekit import api, rtc
from livekit.agents import JobContext

from agent.log import logger
from catalog.dispatch import RoomChoice

AGENT_NAME_ATTRIBUTE = "lk.agent.name"
CHARACTER_ATTRIBUTE = "kyutai.character"
WARNING_ATTRIBUTE = "kyutai.dispatch_warning"
ERROR_ATTRIBUTE = "kyutai.error"  # why the agent is about to leave (a model it cannot reach)
MAX_WARNING_CHARS = 1000  # attributes travel with every participant update: keep them short


def played(choice: RoomChoice, problems: list[str]) -> dict[str, str]:
    """The agent's attributes: the character it plays and, when the dispatch metadata had
    problems, what was replaced (the agent's log line, for whoever created the dispatch)."""
    attributes = {CHARACTER_ATTRIBUTE: choice.character_id}
    if problems:
        attributes[WARNING_ATTRIBUTE] = "; ".join(problems)[:MAX_WARNING_CHARS]
    return attributes


def other_agent(room: rtc.Room, agent_name: str) -> str | None:
    """The identity of another agent of ours already in `room`, if any.

    The server adds participants one at a time: of two agents joining together, only the
    second finds the first, so exactly one of them stays."""
    for p in room.remote_participants.values():
        if (
            p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            and p.attributes.get(AGENT_NAME_ATTRIBUTE, agent_name) == agent_name
        ):
            return p.identity
    return None


PEOPLE = (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, rtc.ParticipantKind.PARTICIPANT_KIND_SIP)


def has_person(room: rtc.Room) -> bool:
    """Someone to talk to: a participant from a browser or app, or a phone caller (not an
    agent, a recorder or an ingress)."""
    return any(p.kind in PEOPLE for p in room.remote_participants.values())


async def wait_for_person(ctx: JobContext, timeout_s: float) -> bool:
    """True once a person is in the room; False after `timeout_s` of an empty room."""
    if has_person(ctx.room):
        return True
    logger.info("room %s is empty: waiting up to %.0fs for a person", ctx.room.name, timeout_s)
    try:
        await asyncio.wait_for(ctx.wait_for_participant(), timeout_s)
    except TimeoutError:
        return False
    return True


async def release_room(ctx: JobContext, agent_name: str) -> None:
    """Delete the room's dispatches of our agent: the conversation is over, no other agent."""
    try:
        dispatches = await ctx.api.agent_dispatch.list_dispatch(room_name=ctx.room.name)
        for d in dispatches:
            if d.agent_name == agent_name:
                await ctx.api.agent_dispatch.delete_dispatch(d.id, ctx.room.name)
    except (api.TwirpError, OSError, RuntimeError) as exc:
        logger.warning("room %s: could not delete its dispatches: %s", ctx.room.name, exc)
