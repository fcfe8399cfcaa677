"""`python -m inference serve|selftest|download`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from inference.settings import Settings


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the websocket server")
    serve.add_argument(
        "--models", help="profile: default, tiny, tiny-noheads, stt-2.6b-en, full-random"
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--engines", help="comma separated: stt, tts, moshi (default stt,tts)")
    serve.add_argument("--only", choices=["stt", "tts", "both"], help="older form of --engines")
    serve.add_argument("--device")
    serve.add_argument("--torch-threads", type=int, help="CPU threads per torch op (0: auto)")
    serve.add_argument("--torch-compile", choices=["auto", "on", "off"])
    serve.add_argument("--stt-batch-size", type=int)
    serve.add_argument("--tts-batch-size", type=int)
    serve.add_argument("--moshi-batch-size", type=int)
    serve.add_argument("--moshi-repo", help="Moshi checkpoint (default: the profile's moshiko)")
    serve.add_argument("--tts-n-q", type=int)
    serve.add_argument("--tts-cfg", type=float)
    serve.add_argument("--tts-temp", type=float, help="TTS sampling temperature; 0 = greedy")
    serve.add_argument("--cache-dir")
    serve.add_argument("--log-level", default="INFO")
    st = sub.add_parser(
        "selftest",
        help="start the engines as `serve` does and check the slots run in real time",
    )
    st.add_argument(
        "--models", help="profile: default, tiny, tiny-noheads, stt-2.6b-en, full-random"
    )
    st.add_argument(
        "--slots", type=int, help="STT and TTS slots to test (default: the configured batches)"
    )
    st.add_argument("--device")
    st.add_argument("--engines", help="comma separated: stt, tts, moshi (default stt,tts)")
    st.add_argument("--moshi-repo")
    st.add_argument("--torch-compile", choices=["auto", "on", "off"])
    st.add_argument("--tts-n-q", type=int)
    st.add_argument("--seconds", type=float, default=3.0, help="audio per STT session")
    st.add_argument("--json", dest="as_json", action="store_true", help="JSON on stdout")
    st.add_argument("--out", default="", help="also write the JSON report to this file")
    st.add_argument(
        "--skip-warmup",
        action="store_true",
        help="diagnosis only: start without the warm-up, to see what it saves",
    )
    st.add_argument("--cache-dir")
    st.add_argument("--log-level", default="WARNING")
    dl = sub.add_parser("download", help="prefetch the weights and voices of a profile")
    dl.add_argument("--models")
    dl.add_argument("--engines", help="comma separated: stt, tts, moshi (default stt,tts)")
    dl.add_argument("--moshi-repo")
    dl.add_argument("--cache-dir")
    dl.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if v is not None and k in Settings.model_fields
    }
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = _settings(args)
    from inference.device import DeviceConfigError
    from inference.profiles import WeightsUnavailable, configure_hf, download, get_profile

    needs_hub = settings.models not in ("tiny", "tiny-noheads", "full-random")
    configure_hf(settings.hf_timeout_s, probe=needs_hub)
    try:
        if args.command == "download":
            from inference.tiny import TINY_VOICES

            profile = get_profile(
                settings.models, settings.cache_dir, moshi_repo=settings.moshi_repo
            )
            download(profile, sorted({settings.default_voice, *TINY_VOICES}), settings.engine_set)
            print(f"profile {settings.models}: all files are available")
            return 0
        if args.command == "selftest":
            from inference import selftest

            return selftest.main(
                settings,
                slots=args.slots,
                seconds=args.seconds,
                as_json=args.as_json,
                out=args.out,
                warmup=not args.skip_warmup,
            )
        from inference.server import serve

        asyncio.run(serve(settings))
        return 0
    except (WeightsUnavailable, DeviceConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
