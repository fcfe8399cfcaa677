"""Prometheus metrics, one registry per server so tests can run several in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.open_slots = Gauge(
            "kyutai_slots_open", "Slots held by a session", ["engine"], registry=self.registry
        )
        self.free_slots = Gauge(
            "kyutai_slots_free", "Slots available", ["engine"], registry=self.registry
        )
        self.step_seconds = Histogram(
            "kyutai_step_seconds",
            "Duration of one batched model step",
            ["engine"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
            registry=self.registry,
        )
        self.frames = Counter(
            "kyutai_frames",
            "80 ms frames processed or produced",
            ["engine"],
            registry=self.registry,
        )
        self.words = Counter(
            "kyutai_words", "Words recognised or spoken", ["engine"], registry=self.registry
        )
        self.errors = Counter(
            "kyutai_errors", "Error messages sent to clients", ["engine"], registry=self.registry
        )
        self.sessions = Counter(
            "kyutai_sessions", "Sessions started", ["engine"], registry=self.registry
        )
        self.rejected = Counter(
            "kyutai_rejected",
            "Sessions refused for lack of slots",
            ["engine"],
            registry=self.registry,
        )
        self.backpressure = Counter(
            "kyutai_backpressure",
            "Times a session's socket stopped being read because its audio backlog was full",
            ["engine"],
            registry=self.registry,
        )
        self.underruns = Counter(
            "kyutai_underruns",
            "Clocked steps that found no input frame and stepped silence instead (Moshi)",
            ["engine"],
            registry=self.registry,
        )
        self.dropped_frames = Counter(
            "kyutai_dropped_frames",
            "Input frames dropped because too many were queued (Moshi keeps up with the present)",
            ["engine"],
            registry=self.registry,
        )
        self.late_ticks = Counter(
            "kyutai_late_ticks",
            "Clocked steps that overran their 80 ms period",
            ["engine"],
            registry=self.registry,
        )
