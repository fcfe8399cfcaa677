"""Print a development join token whose RoomConfiguration dispatches the agent.

Uses LIVEKIT_API_KEY/LIVEKIT_API_SECRET (the stack's dev keys); for production tokens use the
token service (`python -m tokens serve`). The token is made by harness.join_token.make_token,
as the tests' and benches' tokens are.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

from harness.join_token import make_token

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
    token = make_token(
        key,
        secret,
        room=args.room,
        identity=args.identity,
        dispatch_agent=args.agent,
        dispatch_metadata=metadata,
        ttl_s=args.ttl_hours * 3600,
    )
    print(token)


if __name__ == "__main__":
    main()
