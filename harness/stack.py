"""The local stack's settings, written once for everything that runs it.

`scripts/dev-stack.sh` (README command 1), the end-to-end fixtures (`tests/e2e/conftest.py`),
`python -m bench.loadtest --spawn-stack` and `python -m bench.barge_in` all run livekit-server,
the inference server with the `tiny` models, the stub LLM (`harness.stub_llm`) and the worker.
With the tiny models the worker needs `TINY_MODELS_ENV`: their pause heads are random and carry
no meaning, so a turn ends on Silero VAD silence, shortened to 0.35 s.

    python -m harness.stack tiny-env   # the same, as shell exports (scripts/dev-stack.sh)

prints an `export` line for each of these variables that is not set yet: a value already in
the environment wins.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping

TINY_MODELS_ENV: dict[str, str] = {
    "KYUTAI_TURN_DETECTION": "vad",
    "KYUTAI_VAD_MIN_SILENCE_S": "0.35",
}


def shell_exports(env: Mapping[str, str], current: Mapping[str, str]) -> str:
    """`export NAME=value` lines for the variables of `env` that `current` does not set."""
    return "".join(
        f"export {name}={shlex.quote(value)}\n"
        for name, value in env.items()
        if not current.get(name)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m harness.stack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("what", choices=["tiny-env"], help="tiny-env: the worker's variables")
    parser.parse_args(argv)
    print(shell_exports(TINY_MODELS_ENV, os.environ), end="")


if __name__ == "__main__":
    main()
