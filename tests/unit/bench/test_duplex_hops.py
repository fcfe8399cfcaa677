"""bench.duplex: a talk-over cut at the Moshi session's hops, from worker log lines."""

from __future__ import annotations

import pytest

from bench.duplex import hop_times, split_talk_over

LOG = """
2026-12-02 DEBUG livekit.plugins.kyutai moshi hop moshi_loud at 99.9000 step 10
2026-12-02 DEBUG livekit.plugins.kyutai moshi hop user_onset at 100.0400 step 12
2026-12-02 DEBUG livekit.plugins.kyutai moshi hop onset_sent at 100.0900 step 12
2026-12-02 DEBUG livekit.plugins.kyutai moshi hop moshi_quiet at 100.3000 step 15
"""


def test_a_talk_over_is_cut_into_its_hops() -> None:
    hops = split_talk_over(hop_times(LOG), onset=100.0, stop=100.45)
    assert hops == pytest.approx({"uplink": 0.04, "framing": 0.05, "moshi": 0.21, "playout": 0.15})
    assert sum(hops.values()) == pytest.approx(0.45)  # the hops add up to what was heard


def test_missing_or_late_hops_give_nothing() -> None:
    assert split_talk_over(hop_times(LOG), onset=100.2, stop=100.45) is None  # no onset after
    assert split_talk_over(hop_times(LOG), onset=100.0, stop=100.25) is None  # quiet too late
    assert split_talk_over([], onset=100.0, stop=101.0) is None
