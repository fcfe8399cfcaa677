from __future__ import annotations

import pytest

from inference.device import DeviceConfigError, decide, env_flag, threads_per_op


def test_cpu_never_compiles_or_graphs_unless_asked() -> None:
    for policy in ("auto", "off"):
        p = decide("cpu", policy, "gcc")
        assert (p.compile, p.cuda_graphs) == (False, False)
    p = decide("cpu", "on", "gcc")
    assert (p.compile, p.cuda_graphs) == (True, False)
    with pytest.raises(DeviceConfigError, match="C compiler"):
        decide("cpu", "on", None)


def test_cuda_compiles_when_a_compiler_is_there() -> None:
    p = decide("cuda", "auto", "cc")
    assert (p.compile, p.cuda_graphs) == (True, True)
    assert "cc" in p.reason
    # No compiler: auto falls back to graphs only and says why; `on` refuses clearly.
    p = decide("cuda:1", "auto", None)
    assert (p.compile, p.cuda_graphs) == (False, True)
    assert "build-essential" in p.reason
    with pytest.raises(DeviceConfigError, match="build-essential"):
        decide("cuda", "on", None)
    p = decide("cuda", "off", "gcc")
    assert (p.compile, p.cuda_graphs) == (False, True)


def test_moshi_switches_set_by_the_operator_win() -> None:
    p = decide("cuda", "on", "gcc", no_compile_env=True, no_graph_env=True)
    assert (p.compile, p.cuda_graphs) == (False, False)
    assert decide("cpu", "on", "gcc", no_compile_env=True).compile is False


def test_env_flag_reads_like_moshi(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("", False), ("0", False), ("no", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("NO_CUDA_GRAPH", value)
        assert env_flag("NO_CUDA_GRAPH") is expected
    monkeypatch.delenv("NO_CUDA_GRAPH")
    assert env_flag("NO_CUDA_GRAPH") is False


def test_model_lock_serves_the_clocked_engine_first() -> None:
    """STT/TTS re-take the lock back to back; Moshi (urgent) must not wait behind them."""
    import threading
    import time

    from inference.device import ModelLock

    lock = ModelLock()
    order: list[str] = []

    def ordinary() -> None:
        with lock:
            order.append("tts")

    def urgent() -> None:
        with lock.urgent():
            order.append("moshi")

    with lock:  # a step in progress
        threads = [threading.Thread(target=ordinary), threading.Thread(target=urgent)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while lock.waiting < 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # polling the waiter count, not a wait for an outcome
        assert lock.waiting == 2
    for t in threads:
        t.join(10)
    assert order == ["moshi", "tts"]


def test_cpu_cores_are_shared_out_among_the_engines() -> None:
    # each engine steps on a thread of its own: three on 2 cores get one thread per operation
    assert threads_per_op(0, "cpu", cores=2, engines=3) == 1
    assert threads_per_op(0, "cpu", cores=16, engines=1) == 16
    assert threads_per_op(0, "cpu", cores=16, engines=3) == 5
    # the operator's KYUTAI_TORCH_THREADS wins; a GPU keeps torch's default
    assert threads_per_op(4, "cpu", cores=2, engines=3) == 4
    assert threads_per_op(0, "cuda:0", cores=16, engines=3) is None
    assert threads_per_op(2, "cuda", cores=16, engines=3) == 2
