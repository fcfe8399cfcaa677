"""``python -m tokens serve --host 0.0.0.0 --port 8080`` (and ``check`` to validate config).

Configuration problems print one line each and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from catalog.characters import CharacterSet
from catalog.load import load_catalog
from catalog.validation import CatalogError, dotted, validation_problems
from tokens.settings import Settings, check_settings

EXIT_CONFIG = 2


def _load() -> tuple[Settings, CharacterSet] | list[str]:
    try:
        settings = Settings()
    except ValidationError as exc:
        # Name the variable and the rule, never echo the value (it may be a secret).
        return validation_problems(exc, lambda loc: dotted(loc).upper())
    problems = check_settings(settings)
    try:
        # The worker's start-up check (characters file and prompt data, one against the other):
        # both refuse the same characters files.
        catalog = load_catalog(settings.kyutai_characters_file)
    except CatalogError as exc:
        problems.append(str(exc))
        return problems
    return problems or (settings, catalog.characters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")
    sub.add_parser(
        "check",
        help="validate the configuration, the characters file and the prompt data, then exit",
    )
    args = parser.parse_args(argv)

    loaded = _load()
    if isinstance(loaded, list):
        print("tokens: configuration error:", file=sys.stderr)
        for problem in loaded:
            # A characters file lists its own problems, one per line: nest them.
            print("  - " + problem.replace("\n", "\n    "), file=sys.stderr)
        return EXIT_CONFIG
    settings, catalog = loaded
    if args.command == "check":
        print(f"tokens: configuration OK ({len(catalog.characters)} characters)")
        return 0

    import uvicorn

    from tokens.app import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("tokens")
    if settings.token_dev_mode:
        log.warning("TOKEN_DEV_MODE is on: dev LiveKit keys and short secrets are accepted")
    if settings.token_demo_mode:
        log.info(
            "demo mode on: %s tokens/min per client IP (burst %s); allowed origins: %s",
            settings.token_rate_limit_per_min,
            settings.token_rate_limit_burst,
            ", ".join(settings.token_allowed_origins) or "(same origin only)",
        )
    app = create_app(settings, catalog)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        proxy_headers=True,
        forwarded_allow_ips=settings.token_forwarded_allow_ips,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
