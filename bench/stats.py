"""Statistics for the benches (loadtest, barge_in, plugin_latency): pure functions, no I/O.

- `summarize`: count, mean, p50, p90, p99 (and max on request) of measured values (linear
  interpolation between order statistics, as numpy's default percentile). Every bench
  summarises its samples with it.
- `parse_histograms` / `histogram_delta` / `summarize_histogram`: the worker's Prometheus
  histogram `kyutai_agent_turn_latency_seconds{stage=...}` read before and after a run; the
  difference is what this run added, its percentiles are estimated inside buckets.
- `format_side_by_side` / `ratios` / `format_ratios`: conditions compared in one run (the
  barge-in gate, the load test's turn modes), one column each, and the ratio of two.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
LATENCY_METRIC = "kyutai_agent_turn_latency_seconds"
STAGES = ("end_of_turn", "transcript", "llm_ttft", "tts_ttfb", "end_to_end")

Summary = dict[str, float | int | None]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, interpolating linearly."""
    if not sorted_values:
        raise ValueError("no values")
    pos = q * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: Iterable[float | None], *, with_max: bool = False) -> Summary:
    """count, mean, p50, p90, p99, and max `with_max` (None when there is no value); None
    and non-finite values are left out."""
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    out: Summary = {"count": len(data), "mean": sum(data) / len(data) if data else None}
    for name, q in QUANTILES:
        out[name] = percentile(data, q) if data else None
    if with_max:
        out["max"] = data[-1] if data else None
    return out


@dataclass
class Histogram:
    """One Prometheus histogram series: cumulative bucket counts by upper bound."""

    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    sum: float = 0.0
    count: float = 0.0


_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_histograms(
    text: str, metric: str = LATENCY_METRIC, by: str = "stage"
) -> dict[str, Histogram]:
    """The series of histogram `metric` in a Prometheus text body, keyed by label `by`."""
    out: dict[str, Histogram] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or not match["name"].startswith(metric):
            continue
        suffix = match["name"][len(metric) :]
        labels = dict(_LABEL.findall(match["labels"]))
        key = labels.get(by)
        if key is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        hist = out.setdefault(key, Histogram())
        if suffix == "_bucket" and "le" in labels:
            hist.buckets[float(labels["le"])] = value  # "+Inf" parses as inf
        elif suffix == "_sum":
            hist.sum = value
        elif suffix == "_count":
            hist.count = value
    return out


def merge_histograms(parts: Iterable[dict[str, Histogram]]) -> dict[str, Histogram]:
    """Several workers' histograms added together (same buckets)."""
    out: dict[str, Histogram] = {}
    for part in parts:
        for key, hist in part.items():
            acc = out.setdefault(key, Histogram())
            for le, n in hist.buckets.items():
                acc.buckets[le] = acc.buckets.get(le, 0.0) + n
            acc.sum += hist.sum
            acc.count += hist.count
    return out


def histogram_delta(before: Histogram | None, after: Histogram) -> Histogram:
    """What was observed between two scrapes of the same series."""
    if before is None:
        return Histogram(dict(after.buckets), after.sum, after.count)
    return Histogram(
        {le: n - before.buckets.get(le, 0.0) for le, n in after.buckets.items()},
        after.sum - before.sum,
        after.count - before.count,
    )


def histogram_quantile(hist: Histogram, q: float) -> float | None:
    """Estimate the q-quantile from cumulative buckets (linear inside a bucket, like
    PromQL's histogram_quantile); the +Inf bucket answers with the largest finite bound."""
    if hist.count <= 0 or not hist.buckets:
        return None
    bounds = sorted(hist.buckets)
    rank = q * hist.count
    prev_le, prev_n = 0.0, 0.0
    for le in bounds:
        n = hist.buckets[le]
        if n >= rank:
            if math.isinf(le):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return bounds[-1] if not math.isinf(bounds[-1]) else None


def summarize_histogram(hist: Histogram) -> Summary:
    """count, mean (exact: sum/count) and estimated p50/p90/p99 of a histogram delta."""
    count = round(hist.count)
    out: Summary = {"count": count, "mean": hist.sum / hist.count if hist.count > 0 else None}
    for name, q in QUANTILES:
        out[name] = histogram_quantile(hist, q)
    return out


def stage_summaries(
    before: dict[str, Histogram], after: dict[str, Histogram], stages: Sequence[str] = STAGES
) -> dict[str, Summary]:
    """Per-stage summaries of what a run added to the worker's latency histograms."""
    return {
        stage: summarize_histogram(histogram_delta(before.get(stage), after[stage]))
        if stage in after
        else summarize([])
        for stage in stages
    }


def format_table(rows: Sequence[tuple[str, Summary]], unit: str = "s") -> str:
    """A fixed-width text table: metric, count, mean, p50, p90, p99."""
    header = ["metric", "count", f"mean {unit}", f"p50 {unit}", f"p90 {unit}", f"p99 {unit}"]
    lines: list[list[str]] = [header]
    for name, s in rows:
        lines.append(
            [name, str(s.get("count", 0)), *(_fmt(s.get(k)) for k in ("mean", "p50", "p90", "p99"))]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def _fmt(value: float | int | None) -> str:
    return "—" if value is None else f"{float(value):.3f}"


SIDE_BY_SIDE_KEYS = ("count", "mean", "p50", "p90", "max")


def format_side_by_side(
    columns: Mapping[str, Mapping[str, float | int | None]],
    *,
    keys: Sequence[str] = SIDE_BY_SIDE_KEYS,
    counts: Mapping[str, Mapping[str, int]] | None = None,
) -> str:
    """One column per condition (its summary), one row per key of `keys`, then one row per
    entry of `counts` (row label → condition → a count, e.g. failed turns)."""
    counts = counts or {}
    label_w = max(14, *(len(k) + 1 for k in (*keys, *counts)))
    col_w = {c: max(12, len(c) + 2) for c in columns}
    lines = [" " * label_w + "".join(f"{c:>{col_w[c]}s}" for c in columns)]
    for key in keys:
        cells = []
        for c, summary in columns.items():
            value = summary.get(key)
            text = _fmt(value) if isinstance(value, float) or value is None else str(value)
            cells.append(f"{text:>{col_w[c]}s}")
        lines.append(f"{key:{label_w}s}" + "".join(cells))
    for label, by_column in counts.items():
        lines.append(
            f"{label:{label_w}s}"
            + "".join(f"{by_column.get(c, 0)!s:>{col_w[c]}s}" for c in columns)
        )
    return "\n".join(lines)


def ratios(
    numerator: Summary, denominator: Summary, keys: Sequence[str] = ("p50", "p90")
) -> dict[str, float | None]:
    """numerator[key] / denominator[key] for each key; None where either is missing or the
    denominator is 0."""
    out: dict[str, float | None] = {}
    for key in keys:
        a, b = numerator.get(key), denominator.get(key)
        out[key] = float(a) / float(b) if a is not None and b else None
    return out


def format_ratios(label: str, values: Mapping[str, float | None]) -> str:
    """`label: p50 0.93x, p90 0.97x` (— where a ratio is missing)."""
    parts = ", ".join(
        f"{key} {'—' if value is None else f'{value:.2f}x'}" for key, value in values.items()
    )
    return f"{label}: {parts}"
