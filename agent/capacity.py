"""How loaded this worker is, as LiveKit's dispatcher sees it (0 = idle, 1 = full).

A Kyutai agent's job is cheap on the worker's CPU: the expensive work happens on the inference
server's GPU. LiveKit's default load (CPU usage) would turn new rooms away from a host whose
CPU is busy with something else while its GPU has room, so we count conversations instead.
"""

from __future__ import annotations


def job_load(active_jobs: int, max_jobs: int) -> float:
    """Fraction of this worker's conversation budget in use."""
    if max_jobs <= 0:
        return 1.0
    return min(1.0, max(0.0, active_jobs / max_jobs))
