"""Names, grants and the signed LiveKit token: pure functions (signing is CPU only)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

import jwt
from livekit import api

from catalog.characters import ID_PATTERN
from catalog.dispatch import Selection

# Room names and identities share the character ids' charset.
NAME_PATTERN = ID_PATTERN
_NAME_RE = re.compile(NAME_PATTERN)
# Browsers may publish only their microphone: no camera, no screen share.
PUBLISH_SOURCES = ("microphone",)


def is_valid_name(value: str) -> bool:
    """Room names and identities: a charset safe in URLs, logs and LiveKit's own APIs."""
    return _NAME_RE.fullmatch(value) is not None


def random_name(prefix: str) -> str:
    # 16 random bytes: a room name nobody can guess, so nobody else can join it.
    return f"{prefix}-{secrets.token_hex(16)}"


def build_grants(room: str) -> api.VideoGrants:
    """Join one room; publish the microphone and data; subscribe. Nothing else."""
    return api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=list(PUBLISH_SOURCES),
        can_publish_data=True,
        can_subscribe=True,
    )


def build_room_config(agent_name: str, selection: Selection) -> api.RoomConfiguration:
    """The room a token creates dispatches the agent with the chosen character as metadata."""
    return api.RoomConfiguration(
        agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=selection.to_metadata())]
    )


@dataclass(frozen=True)
class IssuedToken:
    token: str
    room: str
    identity: str
    expires_at: dt.datetime


def mint_token(
    *,
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    name: str | None,
    ttl_s: int,
    agent_name: str,
    selection: Selection,
) -> IssuedToken:
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_ttl(dt.timedelta(seconds=ttl_s))
        .with_grants(build_grants(room))
        .with_room_config(build_room_config(agent_name, selection))
    )
    if name:
        token = token.with_name(name)
    jwt_text = token.to_jwt()
    # Report the exact expiry the library wrote rather than recomputing it.
    exp = jwt.decode(jwt_text, options={"verify_signature": False})["exp"]
    return IssuedToken(
        token=jwt_text,
        room=room,
        identity=identity,
        expires_at=dt.datetime.fromtimestamp(exp, tz=dt.UTC),
    )
