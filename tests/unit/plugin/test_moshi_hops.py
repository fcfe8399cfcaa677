"""The Moshi session's hop markers (pure): onsets, the frame that carries one, output flips."""

from __future__ import annotations

from livekit.plugins.kyutai.moshi_hops import LOUD_RMS, HopTracker

LOUD, QUIET = LOUD_RMS * 3, LOUD_RMS / 10


def test_an_onset_needs_quiet_before_it_and_is_sent_with_its_frame() -> None:
    h = HopTracker()
    assert h.input(LOUD, 0.01)  # the session starts quiet: the first voice is an onset
    h.input_samples(240)
    assert not h.input(LOUD, 0.01)  # still talking
    h.input_samples(240)
    for _ in range(10):  # 0.1 s of quiet: too short to re-arm
        assert not h.input(QUIET, 0.01)
        h.input_samples(240)
    assert not h.input(LOUD, 0.01)
    h.input_samples(240)
    assert h.sent(0, 1920)  # the first frame holds the onset at sample 0
    assert not h.sent(1920, 1920)
    for _ in range(30):  # 0.3 s of quiet re-arms
        h.input(QUIET, 0.01)
        h.input_samples(240)
    assert h.input(LOUD, 0.01)  # an onset at sample 240 * 43 = 10320
    assert not h.sent(3840, 1920)
    assert h.sent(9600, 1920)


def test_an_onset_passed_over_is_forgotten() -> None:
    h = HopTracker()
    h.input_samples(5000)
    assert h.input(LOUD, 0.01)
    assert not h.sent(7680, 1920)  # a later frame: the onset's own was never seen
    assert not h.sent(5000, 1920)


def test_output_flips_are_reported_once() -> None:
    h = HopTracker()
    assert h.output(QUIET) is None
    assert h.output(LOUD) == "moshi_loud"
    assert h.output(LOUD) is None
    assert h.output(QUIET) == "moshi_quiet"
