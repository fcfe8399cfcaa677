"""What one conversation costs the processes that serve it: CPU seconds per minute of
conversation for each process, and the peak memory of each job process.

CPU is read from the kernel's per-process accounting (psutil): a process's own user + system
time, plus that of its children once they have exited and been reaped (a job process that ends
during the run still counts). A sampler thread keeps each live process's peak resident memory
(VmHWM, Linux). Both are taken before and after a run; the load generator reports itself too
(with the stub LLM, which runs in its process), so its share is visible, not hidden in the
machine's total.

Memory of a job process is given three ways: its peak RSS (VmHWM: pages it shares with the
worker that forked it count in full), and the largest USS (pages only it holds: what one more
conversation adds) and PSS (shared pages split between their users) seen by the sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil

WORKER = "worker"


def cpu_of(proc: psutil.Process) -> float:
    """Seconds of CPU used by `proc` and its reaped children (0 when it is gone)."""
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return t.user + t.system + t.children_user + t.children_system


def tree(pid: int) -> tuple[psutil.Process | None, list[psutil.Process]]:
    """The process and its live descendants (None, [] when it is gone)."""
    try:
        root = psutil.Process(pid)
        return root, root.children(recursive=True)
    except psutil.NoSuchProcess:
        return None, []


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory so far (VmHWM), in MiB; None when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def role_cpu(roles: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far per role (root pid → its tree, less the trees of the other roles: the
    load generator that started the servers is not charged for them). The worker's tree is
    split in two: its main process alone, and its job processes (live ones and reaped ones)."""
    trees = {role: tree(pid) for role, pid in roles.items()}
    # each process belongs to the innermost role whose tree holds it: nested trees are smaller,
    # so they claim their processes first
    claimed: set[int] = set()
    mine: dict[str, list[psutil.Process]] = {}
    for role, (root, kids) in sorted(trees.items(), key=lambda item: len(item[1][1])):
        procs = [p for p in ([root] if root is not None else []) + kids if p.pid not in claimed]
        claimed |= {p.pid for p in procs}
        mine[role] = procs
    out: dict[str, float] = {}
    for role, (root, _kids) in trees.items():
        if root is None:
            out[role] = 0.0
            continue
        total = sum(cpu_of(p) for p in mine[role])
        if role == WORKER:
            try:
                own = root.cpu_times()
                main = own.user + own.system
            except psutil.NoSuchProcess:
                main = 0.0
            out[f"{WORKER} main"], out[f"{WORKER} jobs"] = main, total - main
        else:
            out[role] = total
    return out


@dataclass
class CostMeter:
    """Samples the job processes' peak memory while a run goes; CPU before and after."""

    roles: dict[str, int]
    interval_s: float = 1.0
    peaks_mb: dict[int, float] = field(default_factory=dict)  # job process pid → peak RSS
    uss_mb: dict[int, float] = field(default_factory=dict)  # → largest USS sampled
    pss_mb: dict[int, float] = field(default_factory=dict)  # → largest PSS sampled
    _before: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._before = role_cpu(self.roles)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="cost-meter", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            _root, kids = tree(self.roles[WORKER])
            for kid in kids:
                peak = peak_rss_mb(kid.pid)
                if peak is not None:
                    self.peaks_mb[kid.pid] = max(peak, self.peaks_mb.get(kid.pid, 0.0))
                try:
                    full = kid.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                for seen, value in ((self.uss_mb, full.uss), (self.pss_mb, full.pss)):
                    seen[kid.pid] = max(value / 2**20, seen.get(kid.pid, 0.0))

    def stop(self, conversation_s: float) -> dict[str, object]:
        """CPU seconds and CPU seconds per conversation-minute per role, the job processes'
        peak memory, for `conversation_s` seconds of conversation in all."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = role_cpu(self.roles)
        used = {role: max(0.0, after[role] - self._before.get(role, 0.0)) for role in after}
        minutes = conversation_s / 60

        def spread(values: dict[int, float]) -> dict[str, float | int | None]:
            ordered = sorted(values.values())
            return {
                "count": len(ordered),
                "median": round(ordered[len(ordered) // 2], 1) if ordered else None,
                "max": round(ordered[-1], 1) if ordered else None,
            }

        return {
            "conversation_minutes": round(minutes, 3),
            "cpu_s": {r: round(v, 2) for r, v in used.items()},
            "cpu_s_per_conversation_minute": {
                r: (round(v / minutes, 3) if minutes > 0 else None) for r, v in used.items()
            },
            "job_process_peak_mb": spread(self.peaks_mb),
            "job_process_uss_mb": spread(self.uss_mb),
            "job_process_pss_mb": spread(self.pss_mb),
        }


def cost_table(cost: Mapping[str, object]) -> str:
    """CPU per role (seconds, and seconds per conversation-minute), then job memory."""
    cpu = cost["cpu_s"]
    per_min = cost["cpu_s_per_conversation_minute"]
    assert isinstance(cpu, dict) and isinstance(per_min, dict)
    width = max(len(r) for r in cpu)
    lines = [f"{'process':<{width}}  cpu s  cpu s / conversation-minute"]
    for role, seconds in cpu.items():
        rate = per_min[role]
        lines.append(f"{role:<{width}}  {seconds:5.1f}  {'—' if rate is None else f'{rate:.2f}'}")
    lines.append(f"job processes ({cost['conversation_minutes']} conversation-minutes):")
    for key, label in (("peak", "peak RSS"), ("uss", "largest USS"), ("pss", "largest PSS")):
        mem = cost.get(f"job_process_{key}_mb")
        if isinstance(mem, dict):
            lines.append(
                f"  {label}: median {mem['median']} MiB, max {mem['max']} MiB "
                f"over {mem['count']} processes"
            )
    return "\n".join(lines)
