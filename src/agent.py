"""Where LiveKit's CLI looks for the worker: `lk agent dev` and `lk agent start`, run from the
repository root, find this file (lk probes `agent.py`, then `src/agent.py`) and run
`uv run --no-sync python -m livekit.agents start src/agent.py`, which imports it as `src.agent`
and runs its module-level `server`. The worker itself is the `agent` package (agent/server.py).
"""

from __future__ import annotations

from agent.server import server

__all__ = ["server"]
