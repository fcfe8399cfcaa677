"""The worker as a module-level `server`, where LiveKit's own CLI looks for it.

`lk agent dev|start`, run from the repository root, starts
`python -m livekit.agents start src/agent.py [--dev]`: that imports src/agent.py, which
re-exports this `server`, and runs it (`python -m livekit.agents start agent/server.py` does the
same without `lk`). `python -m agent dev|start` (agent/__main__.py) builds the same worker.

Importing this module reads and checks the settings as `python -m agent` does: a problem ends
the process with one `agent: …` line. The mode (`start`, `--dev`) comes from the command line,
which the thin CLI parses only after importing this module.
"""

from __future__ import annotations

import sys

from agent.launch import checked_settings, use_multiprocess_metrics

# livekit.agents is already imported here, so only the job processes (which inherit the
# variable) record in multiprocess mode; set PROMETHEUS_MULTIPROC_DIR before `lk` to include
# livekit-agents' worker-level gauges too.
use_multiprocess_metrics()

from agent.worker import build_server  # noqa: E402

server = build_server(checked_settings(sys.argv[1:]))
