"""Join tokens for local rooms: the one helper behind the tests, the benches and
`scripts/dev_token.py` (production tokens come from the token service, `python -m tokens`)."""

from __future__ import annotations

import datetime

from livekit import api


def make_token(
    api_key: str,
    api_secret: str,
    *,
    room: str,
    identity: str,
    name: str | None = None,
    dispatch_agent: str | None = None,
    dispatch_metadata: str = "",
    ttl_s: float = 600,
    hidden: bool = False,
) -> str:
    """A token to join `room` as `identity` (publish, subscribe, data, own attributes).

    With `dispatch_agent`, its RoomConfiguration dispatches that agent with
    `dispatch_metadata` when the room is created. A `hidden` participant is seen by nobody
    (an observer: the agent does not count it as a person)."""
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name(name or identity)
        .with_ttl(datetime.timedelta(seconds=ttl_s))
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
                can_update_own_metadata=True,  # attributes: opt-outs, a fake agent's state
                hidden=hidden,
            )
        )
    )
    if dispatch_agent:
        token = token.with_room_config(
            api.RoomConfiguration(
                agents=[
                    api.RoomAgentDispatch(agent_name=dispatch_agent, metadata=dispatch_metadata)
                ]
            )
        )
    return token.to_jwt()
