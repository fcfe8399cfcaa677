from __future__ import annotations

from inference.selftest import Level, format_table, percentile, slot_levels, verdict


def test_slot_levels_climb_to_the_configured_batches() -> None:
    assert slot_levels(64, 16) == [(1, 1, 0), (16, 4, 0), (32, 8, 0), (64, 16, 0)]
    assert slot_levels(8, 4) == [(1, 1, 0), (2, 1, 0), (4, 2, 0), (8, 4, 0)]
    assert slot_levels(1, 1) == [(1, 1, 0)]
    assert slot_levels(8, 0) == [(1, 0, 0), (2, 0, 0), (4, 0, 0), (8, 0, 0)]
    assert slot_levels(8, 4, 4) == [(1, 1, 1), (2, 1, 1), (4, 2, 2), (8, 4, 4)]
    assert slot_levels(0, 0, 32) == [(0, 0, 1), (0, 0, 8), (0, 0, 16), (0, 0, 32)]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == 9.0
    assert percentile([5.0], 0.9) == 5.0


def _level(stt: int, tts: int, stt_rtf: float, tts_rtf: float, **kw: object) -> Level:
    return Level(stt, tts, stt_rtf=stt_rtf, tts_rtf=tts_rtf, **kw)  # type: ignore[arg-type]


def test_verdict_passes_when_the_configured_batches_run_in_real_time() -> None:
    ok, line = verdict([_level(1, 1, 9.0, 5.0), _level(8, 4, 1.4, 1.1)])
    assert ok and line.startswith("OK") and "8 STT slots at x1.40" in line


def test_verdict_fails_and_names_the_largest_count_that_held() -> None:
    levels = [_level(1, 1, 9.0, 5.0), _level(16, 4, 2.0, 1.3), _level(64, 16, 0.7, 1.2)]
    ok, line = verdict(levels)
    assert not ok and line.startswith("FAIL")
    assert "STT runs at x0.70 real time with 64 slots" in line
    assert "16 STT + 4 TTS slots" in line and "KYUTAI_STT_BATCH_SIZE" in line
    ok, line = verdict([_level(4, 4, 0.5, 0.5)])
    assert not ok and "no slot count ran in real time" in line


def test_verdict_fails_on_errors_or_missing_numbers() -> None:
    ok, line = verdict([_level(2, 2, 5.0, 5.0, errors=["TTS: no free slot"])])
    assert not ok and "no free slot" in line
    ok, _ = verdict([Level(2, 2, stt_rtf=3.0)])
    assert not ok
    assert verdict([]) == (False, "FAIL: nothing was measured")


def test_table_has_a_row_per_level() -> None:
    table = format_table([_level(1, 1, 9.0, 5.0), _level(8, 4, 1.4, 1.1, errors=["boom"])])
    lines = table.splitlines()
    assert "STT RTF" in lines[0] and "TTS 1st audio p50/p90 ms" in lines[0]
    assert len(lines) == 4 and "error: boom" in lines[3]


def test_gpu_bench_report_merges_selftest_and_benches() -> None:
    from inference.gpu_bench import markdown, merge

    selftest = {
        "profile": "full-random",
        "device": "cuda",
        "gpu": "NVIDIA H200",
        "torch_compile": True,
        "cuda_graphs": True,
        "load_s": 12.0,
        "warmup_s": {"stt": 20.0, "tts": 30.0},
        "tts_first_session_first_audio_ms": 120.0,
        "tts_second_session_first_audio_ms": 118.0,
        "levels": [
            {
                "stt_slots": 64,
                "tts_slots": 16,
                "stt_rtf": 1.5,
                "tts_rtf": 1.2,
                "tts_first_audio_ms_p50": 200.0,
                "tts_first_audio_ms_p90": 250.0,
                "gpu_mem_gib": 30.5,
            }
        ],
        "verdict": "OK: ...",
    }
    tts = {
        "models": "full-random",
        "device": "cuda",
        "torch": "2.13",
        "rows": [
            {"engine": "tts", "n_q": 32, "batch_size": 16, "steps_per_s": 20.0, "rtf": 1.6},
            {"engine": "tts", "n_q": 24, "batch_size": 16, "steps_per_s": 25.0, "rtf": 2.0},
        ],
    }
    stt = {
        "models": "full-random",
        "device": "cuda",
        "torch": "2.13",
        "rows": [
            {"engine": "stt", "batch_size": 128, "error": "out of memory"},
            {"engine": "stt", "batch_size": 64, "steps_per_s": 30.0, "rtf": 2.4},
        ],
    }
    report = merge(selftest, [tts, stt])
    assert report["device"] == "cuda" and report["selftest"] is selftest
    order = [(r["engine"], r.get("n_q"), r["batch_size"]) for r in report["bench"]]
    assert order == [("stt", None, 64), ("stt", None, 128), ("tts", 24, 16), ("tts", 32, 16)]
    md = markdown(report)
    assert "NVIDIA H200" in md and "first session 120 ms, second session 118 ms" in md
    assert "| 64 | 1.5 | 16 | 1.2 | 200 / 250 | 30.5 |" in md
    assert "| stt | – | 128 | out of memory |" in md
    assert "Verdict: OK: ..." in md
    assert "Moshi" not in md
    moshi = {
        "rows": [
            {
                "batch_size": 32,
                "with": "alone",
                "p50_ms": 20.0,
                "p99_ms": 25.0,
                "real_time_margin": 3.2,
                "gpu_peak_gib": 66.1,
            },
            {"batch_size": 64, "with": "alone", "error": "OOM"},
        ],
        "marker_round_trip": {"sessions": 4, "p50_ms": 40.0, "p90_ms": 50.0, "p99_ms": 60.0},
    }
    md = markdown(merge(selftest, [tts, stt], moshi))
    assert "| 32 | alone | 20 | 25 | 3.2 | 66.1 |" in md and "| 64 | alone | OOM |" in md
    assert "p50 40 ms, p90 50 ms, p99 60 ms" in md


def test_verdict_covers_moshi_steps_against_the_80ms_clock() -> None:
    fast = _level(2, 1, 3.0, 2.0, moshi_slots=4, moshi_step_ms_p99=30.0, moshi_late_ticks=0)
    ok, line = verdict([fast])
    assert ok and "4 Moshi slots stepping in 30 ms (p99)" in line
    slow = _level(4, 2, 3.0, 2.0, moshi_slots=8, moshi_step_ms_p99=95.0, moshi_late_ticks=12)
    ok, line = verdict([fast, slow])
    assert not ok and "Moshi steps take 95 ms (p99) with 8 slots, 12 late" in line
    assert "2 STT + 1 TTS + 4 Moshi slots" in line and "KYUTAI_MOSHI_BATCH_SIZE" in line
    late = _level(2, 1, 3.0, 2.0, moshi_slots=4, moshi_step_ms_p99=30.0, moshi_late_ticks=1)
    assert not verdict([late])[0]
    table = format_table([fast])
    assert "Moshi slots" in table.splitlines()[0] and "30" in table.splitlines()[1]
