"""Size a GPU node in one command: `python -m inference.gpu_bench`.

Runs the selftest (STT and TTS served together, the real start-up path), the engine
benchmark at a GPU's slot counts (STT 1/16/64/128, TTS 1/16/32/64 with 24 and 32 codebooks)
and the Moshi benchmark (full-batch step at B = 1/8/16/32, alone and with STT and TTS busy;
`--moshi-batch-sizes ""` skips it), each in its own process, and writes one JSON and one
markdown report (`docs/gpu-bench.*`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def merge(
    selftest: dict[str, Any] | None,
    benches: list[dict[str, Any]],
    moshi: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for bench in benches:
        meta.setdefault("models", bench.get("models"))
        meta.setdefault("device", bench.get("device"))
        meta.setdefault("torch", bench.get("torch"))
        rows.extend(bench.get("rows", []))
    rows.sort(key=lambda r: (r.get("engine", ""), r.get("n_q") or 0, r.get("batch_size", 0)))
    return {**meta, "selftest": selftest, "bench": rows, "moshi": moshi}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    out = [
        f"# Inference on {report.get('device') or '?'} ({report.get('models') or '?'})",
        "",
        f"torch {report.get('torch') or '?'}. Written by `python -m inference.gpu_bench`; "
        "RTF = audio seconds per slot per wall second (> 1 is faster than real time).",
        "",
    ]
    st = report.get("selftest")
    if st:
        gpu = st.get("gpu") or st.get("device")
        first = _cell(st.get("tts_first_session_first_audio_ms"))
        second = _cell(st.get("tts_second_session_first_audio_ms"))
        out += [
            "## Selftest (STT and TTS busy at once, as served)",
            "",
            f"{gpu}, profile `{st.get('profile')}`, torch.compile "
            f"{'on' if st.get('torch_compile') else 'off'}, CUDA graphs "
            f"{'on' if st.get('cuda_graphs') else 'off'}; load {_cell(st.get('load_s'))} s, "
            f"warm-up {', '.join(f'{k} {v} s' for k, v in (st.get('warmup_s') or {}).items())}.",
            "",
            f"Time to first TTS audio: first session {first} ms, second session {second} ms.",
            "",
            "| STT slots | STT RTF | TTS slots | TTS RTF | TTS first audio p50 / p90 ms "
            "| GPU GiB |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for lv in st.get("levels", []):
            p50, p90 = lv.get("tts_first_audio_ms_p50"), lv.get("tts_first_audio_ms_p90")
            fa = f"{_cell(p50)} / {_cell(p90)}"
            out.append(
                f"| {lv['stt_slots']} | {_cell(lv.get('stt_rtf'))} | {lv['tts_slots']} | "
                f"{_cell(lv.get('tts_rtf'))} | {fa} | {_cell(lv.get('gpu_mem_gib'))} |"
            )
        out += ["", f"Verdict: {st.get('verdict')}", ""]
    rows = report.get("bench") or []
    if rows:
        out += [
            "## Engines alone, every slot busy (`python -m inference.bench`)",
            "",
            "| engine | n_q | batch | steps/s | ms/step | RTF | model ms/step | first audio ms |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if "error" in r:
                out.append(
                    f"| {r['engine']} | {_cell(r.get('n_q'))} | {r['batch_size']} | "
                    f"{r['error']} | | | | |"
                )
                continue
            out.append(
                f"| {r['engine']} | {_cell(r.get('n_q'))} | {r['batch_size']} | "
                f"{_cell(r.get('steps_per_s'))} | {_cell(r.get('ms_per_step'))} | "
                f"{_cell(r.get('rtf'))} | {_cell(r.get('model_ms_per_step'))} | "
                f"{_cell(r.get('first_audio_ms_mean'))} |"
            )
        out.append("")
    moshi = report.get("moshi")
    if moshi:
        out += [
            "## Moshi, full-batch step (`python -m inference.moshi_bench`)",
            "",
            "| batch | with | p50 ms | p99 ms | 80 ms / p99 | GPU GiB |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in moshi.get("rows", []):
            if "error" in r:
                out.append(f"| {r['batch_size']} | {r['with']} | {r['error']} | | | |")
                continue
            out.append(
                f"| {r['batch_size']} | {r['with']} | {_cell(r.get('p50_ms'))} | "
                f"{_cell(r.get('p99_ms'))} | {_cell(r.get('real_time_margin'))} | "
                f"{_cell(r.get('gpu_peak_gib'))} |"
            )
        rtt = moshi.get("marker_round_trip")
        if rtt:
            out += [
                "",
                f"Marker round trip, {rtt['sessions']} sessions at real time: p50 "
                f"{_cell(rtt['p50_ms'])} ms, p90 {_cell(rtt['p90_ms'])} ms, p99 "
                f"{_cell(rtt['p99_ms'])} ms.",
            ]
        out.append("")
    return "\n".join(out)


def _run(cmd: list[str]) -> int:
    print("+ " + " ".join(cmd[1:]), file=sys.stderr, flush=True)
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.gpu_bench")
    parser.add_argument("--models", default="full-random")
    parser.add_argument("--stt-batch-sizes", default="1,16,64,128")
    parser.add_argument("--tts-batch-sizes", default="1,16,32,64")
    parser.add_argument("--tts-n-q", default="24,32", help="codebook counts to compare")
    parser.add_argument("--moshi-batch-sizes", default="1,8,16,32", help='"" skips Moshi')
    parser.add_argument("--seconds", type=float, default=4.0, help="STT audio per session")
    parser.add_argument("--out-dir", default="docs")
    parser.add_argument("--cache-dir", default="")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="rehearse on CPU (use with --models tiny)"
    )
    args = parser.parse_args(argv)
    import torch

    if not args.allow_cpu and not torch.cuda.is_available():
        print(
            "gpu_bench: no CUDA device visible to torch (check nvidia-smi and the container's "
            "GPU reservation); --allow-cpu --models tiny rehearses it on CPU",
            file=sys.stderr,
        )
        return 2
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = ["--cache-dir", args.cache_dir] if args.cache_dir else []
    py = [sys.executable, "-m"]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        selftest_json = tmp / "selftest.json"
        selftest_status = _run(
            [
                *py,
                "inference",
                "selftest",
                "--models",
                args.models,
                "--seconds",
                str(args.seconds),
                "--out",
                str(selftest_json),
                *cache,
            ]
        )
        if not selftest_json.is_file():
            print(
                f"gpu_bench: the selftest wrote no report (exit {selftest_status})", file=sys.stderr
            )
            return selftest_status or 1
        bench_files: list[Path] = []
        runs = [("stt", args.stt_batch_sizes, "24")] + [
            ("tts", args.tts_batch_sizes, n_q) for n_q in args.tts_n_q.split(",")
        ]
        for engine, sizes, n_q in runs:
            path = tmp / f"{engine}-{n_q}.json"
            status = _run(
                [
                    *py,
                    "inference.bench",
                    "--models",
                    args.models,
                    "--engines",
                    engine,
                    "--batch-sizes",
                    sizes,
                    "--tts-n-q",
                    n_q,
                    "--seconds",
                    str(args.seconds),
                    "--compare-serial",
                    "0",
                    "--json",
                    str(path),
                    *cache,
                ]
            )
            if status != 0 or not path.is_file():
                print(f"gpu_bench: {engine} benchmark failed (exit {status})", file=sys.stderr)
                return status or 1
            bench_files.append(path)
        moshi: dict[str, Any] | None = None
        if args.moshi_batch_sizes:
            path = tmp / "moshi.json"
            status = _run(
                [
                    *py,
                    "inference.moshi_bench",
                    "--models",
                    args.models,
                    "--batch-sizes",
                    args.moshi_batch_sizes,
                    "--json",
                    str(path),
                    *cache,
                ]
            )
            if status != 0 or not path.is_file():
                print(f"gpu_bench: Moshi benchmark failed (exit {status})", file=sys.stderr)
                return status or 1
            moshi = json.loads(path.read_text())
        report = merge(
            json.loads(selftest_json.read_text()),
            [json.loads(p.read_text()) for p in bench_files],
            moshi,
        )
    json_path, md_path = out_dir / "gpu-bench.json", out_dir / "gpu-bench.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    print(f"selftest verdict: {report['selftest']['verdict']}")
    return selftest_status


if __name__ == "__main__":
    sys.exit(main())
