"""The benches' local stack: livekit-server, the tiny inference server, the stub LLM and one
agent worker per compared condition, on free loopback ports (`bench.barge_in`,
`bench.loadtest --spawn-stack`).

Each worker has its own `LIVEKIT_AGENT_NAME`, so a room's token picks the condition it runs
under (its dispatch), while all of them share one livekit-server, one inference server and one
stub LLM: the conditions see the same load.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.inference_server import InferenceServer, start_inference_server
from harness.livekit_server import ROOT, LiveKitServer, start_livekit_server
from harness.stub_llm import StubLLM
from harness.worker import WorkerHandle, start_worker, tiny_stack_env

TINY_MODELS_DIR = ROOT / ".cache" / "kyutai-tiny"


@dataclass
class BenchWorker:
    handle: WorkerHandle
    env: dict[str, str]  # what it was started with, over worker_env's defaults

    @property
    def agent_name(self) -> str:
        return self.handle.agent_name

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['AGENT_PROMETHEUS_PORT']}/metrics"


@dataclass
class LocalStack:
    livekit: LiveKitServer
    inference: InferenceServer
    llm: StubLLM
    workers: dict[str, BenchWorker]  # by agent name, in the order they were asked for


@contextmanager
def local_stack(
    log_dir: Path,
    workers: Mapping[str, Mapping[str, str]],
    *,
    slots: int = 8,
    prefix: str = "bench",
    inference_args: Sequence[str] = (),
) -> Iterator[LocalStack]:
    """Start the stack with one worker per entry of `workers` (agent name → the variables it
    adds to or overrides in `tiny_stack_env`), `slots` STT and `slots` TTS slots on the
    inference server; logs in `log_dir` named after `prefix`; everything stopped on exit."""
    with ExitStack() as stack:
        lk = start_livekit_server(log_dir, name=f"{prefix}-livekit")
        stack.callback(lk.stop)
        inference = start_inference_server(
            TINY_MODELS_DIR,
            batch_size=slots,
            tts_batch_size=slots,
            extra_args=inference_args,
            log_dir=log_dir,
        )
        stack.callback(inference.stop)
        llm = stack.enter_context(StubLLM())
        started: dict[str, BenchWorker] = {}
        for agent_name, extra in workers.items():
            env = tiny_stack_env(inference.url, inference.api_key, llm.base_url, **extra)
            handle = start_worker(
                lk, log_dir, name=f"{prefix}-{agent_name}", agent_name=agent_name, env=env
            )
            stack.callback(handle.stop)
            started[agent_name] = BenchWorker(handle, env)
        yield LocalStack(lk, inference, llm, started)
