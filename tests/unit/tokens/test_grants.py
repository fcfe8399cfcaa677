import datetime as dt
import json
import time

import jwt
import pytest
from livekit import api

from catalog.dispatch import Selection
from tokens.grants import build_grants, is_valid_name, mint_token, random_name

KEY = "APIabcdefgh12345"
SECRET = "s" * 40
SELECTION = Selection(character="tutor", voice="v.safetensors", language="fr", subject="maths")


@pytest.mark.parametrize("name", ["a", "room_1", "User-42", "A" * 64, "-_-"])
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)


@pytest.mark.parametrize(
    "name", ["", "A" * 65, "with space", "slash/", "dot.", "émilie", "a\n", "a;b", "*"]
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_random_names_are_valid_and_unique() -> None:
    names = {random_name("room") for _ in range(100)}
    assert len(names) == 100
    assert all(is_valid_name(n) and n.startswith("room-") for n in names)


def test_grants_allow_one_room_microphone_data_and_subscribe_only() -> None:
    grants = build_grants("r1")
    assert grants == api.VideoGrants(
        room_join=True,
        room="r1",
        can_publish=True,
        can_publish_sources=["microphone"],
        can_publish_data=True,
        can_subscribe=True,
    )
    # Nothing administrative.
    assert not (grants.room_admin or grants.room_create or grants.room_list or grants.agent)


def test_minted_token_verifies_to_exactly_the_intended_claims() -> None:
    before = int(time.time())
    issued = mint_token(
        api_key=KEY,
        api_secret=SECRET,
        room="r1",
        identity="u1",
        name="Ada",
        ttl_s=300,
        agent_name="kyutai-agent",
        selection=SELECTION,
    )
    claims = api.TokenVerifier(KEY, SECRET).verify(issued.token)
    assert claims.identity == "u1"
    assert claims.name == "Ada"
    assert claims.video == build_grants("r1")
    assert claims.room_config is not None
    [dispatch] = claims.room_config.agents
    assert dispatch.agent_name == "kyutai-agent"
    assert json.loads(dispatch.metadata) == {
        "character": "tutor",
        "voice": "v.safetensors",
        "language": "fr",
        "subject": "maths",
        "level": None,
    }

    raw = jwt.decode(issued.token, SECRET, algorithms=["HS256"], issuer=KEY)
    assert raw["exp"] - raw["nbf"] == 300
    assert before <= raw["nbf"] <= int(time.time())
    assert issued.expires_at == dt.datetime.fromtimestamp(raw["exp"], tz=dt.UTC)
    assert (issued.room, issued.identity) == ("r1", "u1")
    assert SECRET not in issued.token


def test_name_is_optional() -> None:
    issued = mint_token(
        api_key=KEY,
        api_secret=SECRET,
        room="r",
        identity="u",
        name=None,
        ttl_s=60,
        agent_name="a",
        selection=SELECTION,
    )
    assert "name" not in jwt.decode(issued.token, options={"verify_signature": False})


def test_a_token_signed_with_another_secret_does_not_verify() -> None:
    issued = mint_token(
        api_key=KEY,
        api_secret=SECRET,
        room="r",
        identity="u",
        name=None,
        ttl_s=60,
        agent_name="a",
        selection=SELECTION,
    )
    with pytest.raises(jwt.InvalidSignatureError):
        api.TokenVerifier(KEY, "x" * 40).verify(issued.token)
