"""python -m dispatcher: every room with a person and no agent gets one, first come first served.

python -m dispatcher --port 8083    # LIVEKIT_* as for the worker; DISPATCHER_* for the line
# optional, to react at once rather than at the next look (DISPATCHER_POLL_S):
# livekit.yaml:  webhook: {api_key: <LIVEKIT_API_KEY>, urls: [http://dispatcher:8083/webhook]}
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from catalog.characters import CharactersError, load_characters
from dispatcher.app import build_app
from dispatcher.settings import DispatcherSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 to take webhooks from other hosts"
    )
    parser.add_argument("--port", type=int, default=8083)
    args = parser.parse_args(argv)
    try:
        settings = DispatcherSettings()
    except ValidationError as exc:
        # pydantic-settings reports each problem under the variable's name (LIVEKIT_API_KEY, …)
        for err in exc.errors():
            what = "not set" if err["type"] == "missing" else err["msg"]
            print(f"dispatcher: {err['loc'][0]}: {what}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        characters = load_characters(settings.characters_file)
    except CharactersError as exc:
        print(f"dispatcher: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(
        build_app(settings, characters),
        host=args.host,
        port=args.port,
        print=None,
        loop=asyncio.new_event_loop(),
    )


if __name__ == "__main__":
    main()
