"""Bench statistics (bench/stats.py): percentiles, Prometheus histogram deltas, the table."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    Histogram,
    format_ratios,
    format_side_by_side,
    format_table,
    histogram_delta,
    histogram_quantile,
    merge_histograms,
    parse_histograms,
    percentile,
    ratios,
    stage_summaries,
    summarize,
    summarize_histogram,
)

SCRAPE = """# HELP kyutai_agent_turn_latency_seconds Latency of one agent turn by stage
# TYPE kyutai_agent_turn_latency_seconds histogram
kyutai_agent_turn_latency_seconds_bucket{le="0.5",stage="end_to_end"} 1.0
kyutai_agent_turn_latency_seconds_bucket{le="1.0",stage="end_to_end"} 3.0
kyutai_agent_turn_latency_seconds_bucket{le="+Inf",stage="end_to_end"} 4.0
kyutai_agent_turn_latency_seconds_count{stage="end_to_end"} 4.0
kyutai_agent_turn_latency_seconds_sum{stage="end_to_end"} 3.5
kyutai_agent_turn_latency_seconds_bucket{le="0.5",stage="llm_ttft"} 2.0
kyutai_agent_turn_latency_seconds_bucket{le="1.0",stage="llm_ttft"} 2.0
kyutai_agent_turn_latency_seconds_bucket{le="+Inf",stage="llm_ttft"} 2.0
kyutai_agent_turn_latency_seconds_count{stage="llm_ttft"} 2.0
kyutai_agent_turn_latency_seconds_sum{stage="llm_ttft"} 0.2
kyutai_agent_sessions_total 3.0
"""


def test_percentiles_interpolate_like_numpy() -> None:
    data = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert percentile(data, 0.5) == pytest.approx(0.3)
    assert percentile(data, 0.9) == pytest.approx(0.76)
    assert percentile([2.0], 0.99) == 2.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_summarize() -> None:
    s = summarize([1.0, 3.0, 2.0, 4.0])
    assert s["count"] == 4 and s["mean"] == pytest.approx(2.5)
    assert s["p50"] == pytest.approx(2.5) and s["p99"] == pytest.approx(3.97)
    assert summarize([]) == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None}
    assert summarize([math.nan, 1.0])["count"] == 1


def test_summarize_with_max_for_the_benches() -> None:
    s = summarize([0.2, None, 0.5, 0.1], with_max=True)
    assert s["count"] == 3 and s["max"] == 0.5 and s["p50"] == pytest.approx(0.2)
    assert summarize([], with_max=True)["max"] is None


def test_parse_histograms_by_stage() -> None:
    hists = parse_histograms(SCRAPE)
    assert set(hists) == {"end_to_end", "llm_ttft"}
    e2e = hists["end_to_end"]
    assert e2e.count == 4 and e2e.sum == 3.5
    assert e2e.buckets == {0.5: 1.0, 1.0: 3.0, math.inf: 4.0}


def test_histogram_quantiles() -> None:
    e2e = parse_histograms(SCRAPE)["end_to_end"]
    assert histogram_quantile(e2e, 0.25) == pytest.approx(0.5)
    assert histogram_quantile(e2e, 0.5) == pytest.approx(0.75)  # 2nd of 4, inside (0.5, 1]
    assert histogram_quantile(e2e, 0.99) == 1.0  # in +Inf: the largest finite bound
    assert histogram_quantile(Histogram(), 0.5) is None


def test_delta_between_two_scrapes() -> None:
    before = parse_histograms(SCRAPE)
    after = parse_histograms(
        SCRAPE.replace('le="+Inf",stage="end_to_end"} 4.0', 'le="+Inf",stage="end_to_end"} 6.0')
        .replace('_count{stage="end_to_end"} 4.0', '_count{stage="end_to_end"} 6.0')
        .replace('_sum{stage="end_to_end"} 3.5', '_sum{stage="end_to_end"} 9.5')
    )
    delta = histogram_delta(before["end_to_end"], after["end_to_end"])
    assert delta.count == 2 and delta.sum == pytest.approx(6.0)
    s = summarize_histogram(delta)
    assert s["count"] == 2 and s["mean"] == pytest.approx(3.0)
    stages = stage_summaries(before, after)
    assert stages["end_to_end"]["count"] == 2
    assert stages["llm_ttft"]["count"] == 0  # nothing new
    assert stages["tts_ttfb"]["count"] == 0  # never observed


def test_merge_adds_workers_together() -> None:
    one = parse_histograms(SCRAPE)
    both = merge_histograms([one, one])
    assert both["end_to_end"].count == 8 and both["end_to_end"].buckets[0.5] == 2.0


def test_table() -> None:
    table = format_table([("end_to_end", summarize([0.5, 0.7])), ("llm", summarize([]))])
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["metric", "count"]
    assert "0.600" in lines[2] and "—" in lines[3]


def test_side_by_side_and_ratios() -> None:
    a = summarize([0.5, 1.0], with_max=True)
    b = summarize([], with_max=True)
    text = format_side_by_side(
        {"a long condition name": a, "b": b}, counts={"never stopped": {"b": 2}}
    )
    lines = text.splitlines()
    assert "a long condition name" in lines[0]
    assert lines[1].split() == ["count", "2", "0"]
    assert lines[3].split() == ["p50", "0.750", "—"]
    assert lines[-1].split() == ["never", "stopped", "0", "2"]
    assert ratios(a, summarize([1.5])) == {
        "p50": pytest.approx(0.5),
        "p90": pytest.approx(0.95 / 1.5),
    }
    assert ratios(a, b) == {"p50": None, "p90": None}
    assert format_ratios("a / b", {"p50": 0.5, "p90": None}) == "a / b: p50 0.50x, p90 —"
