"""bench.cost: CPU accounting per process role, reaped job processes included."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.cost import WORKER, CostMeter, cost_table, peak_rss_mb, role_cpu

# A "worker" that starts one "job process", which burns 0.3 s of its own CPU and exits; the
# worker reaps it and waits for a line on stdin before it exits itself.
WORKER_SCRIPT = """
import subprocess, sys
job = "import time\\nwhile time.process_time() < 0.3: pass"
subprocess.run([sys.executable, "-c", job], check=True)
print("reaped", flush=True)
sys.stdin.readline()
"""


def test_a_reaped_job_process_counts_for_the_worker_jobs_not_its_main_process() -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        meter = CostMeter({WORKER: worker.pid, "me": os.getpid()}, interval_s=0.05)
        meter._before = {f"{WORKER} main": 0.0, f"{WORKER} jobs": 0.0, "me": 0.0}
        assert worker.stdout is not None and worker.stdout.readline().strip() == "reaped"
        used = role_cpu(meter.roles)
        # the job process is gone, its parent reaped it; the kernel counts in 10 ms ticks
        assert used[f"{WORKER} jobs"] >= 0.25
        assert used[f"{WORKER} main"] < used[f"{WORKER} jobs"]
        cost = meter.stop(conversation_s=30.0)
        assert cost["conversation_minutes"] == 0.5
        per_min = cost["cpu_s_per_conversation_minute"]
        assert isinstance(per_min, dict) and per_min[f"{WORKER} jobs"] >= 0.5
        assert "worker jobs" in cost_table(cost)
    finally:
        worker.communicate("\n", timeout=10)


def test_the_peak_memory_of_a_live_process_is_read_and_a_gone_one_is_none() -> None:
    mine = peak_rss_mb(os.getpid())
    assert mine is not None and mine > 1
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert peak_rss_mb(gone.pid) is None
    assert role_cpu({"gone": gone.pid}) == {"gone": 0.0}


def test_a_role_started_by_another_is_not_charged_to_it() -> None:
    # this test process starts the "server", as the load generator starts the stack
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nwhile time.process_time() < 0.3: pass\n"
            "print('done', flush=True)\nsys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "done"
        before_me = role_cpu({"me": os.getpid()})["me"]
        both = role_cpu({"me": os.getpid(), "server": server.pid})
        assert both["server"] >= 0.25
        # the server is still a child of this process: alone, "me" would include it
        assert before_me >= both["me"] + 0.25 - 0.05
    finally:
        server.communicate("\n", timeout=10)


def test_the_sampler_keeps_each_job_processs_memory() -> None:
    # a "worker" whose "job process" lives until stdin closes
    script = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'input()'])"
    worker = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    try:
        meter = CostMeter({WORKER: worker.pid}, interval_s=0.02)
        meter.start()
        deadline = time.monotonic() + 20
        while not meter.uss_mb and time.monotonic() < deadline:
            time.sleep(0.02)  # polling the sampler's result, bounded by the deadline
        cost = meter.stop(conversation_s=60.0)
        uss, pss, peak = (cost[f"job_process_{k}_mb"] for k in ("uss", "pss", "peak"))
        assert isinstance(uss, dict) and isinstance(pss, dict) and isinstance(peak, dict)
        assert uss["count"] == 1 and 0 < uss["max"] <= pss["max"] <= peak["max"]
        assert "largest USS" in cost_table(cost)
    finally:
        worker.communicate("\n", timeout=10)
