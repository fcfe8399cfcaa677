"""Entry points for LiveKit's CLI (`lk agent dev|start`): see src/agent.py.

A package, so that src/agent.py is imported as `src.agent` and does not hide the worker's
own `agent` package."""
