"""Print a development join token whose RoomConfiguration dispatches the agent.

Uses LIVEKIT_API_KEY/LIVEKIT_API_SECRET (the stack's dev keys); for production tokens use the
token service (`python -m tokens serve`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import warnings

from livekit import api

# LiveKit's dev secret ("secret") is short by design; this script is for dev mode only.
warnings.filterwarnings("ignore", message="The HMAC key is")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--room", default="demo")
    parser.add_argument("--identity", default="you")
    parser.add_argument("--agent", default=os.environ.get("LIVEKIT_AGENT_NAME", "kyutai-agent"))
    parser.add_argument("--character", default=None)
    parser.add_argument("--ttl-hours", type=float, default=6)
    args = parser.parse_args()
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if not key or not secret:
        raise SystemExit("dev_token: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET")
    metadata = json.dumps({"character": args.character} if args.character else {})
    token = (
        api.AccessToken(key, secret)
        .with_identity(args.identity)
        .with_ttl(datetime.timedelta(hours=args.ttl_hours))
        .with_grants(api.VideoGrants(room_join=True, room=args.room))
        .with_room_config(
            api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name=args.agent, metadata=metadata)]
            )
        )
    )
    print(token.to_jwt())


if __name__ == "__main__":
    main()
