"""`bench.loadtest --turn-modes`: the modes' schedule, their targets, the comparison and JSON."""

from __future__ import annotations

from collections import Counter

import pytest

from agent.settings import AgentSettings
from bench.loadtest import (
    DEFAULT_TURN_MODE,
    TURN_MODES,
    WORKERS,
    RunResult,
    Target,
    TurnResult,
    comparison,
    comparison_table,
    deployment_targets,
    group_by_users,
    parse_args,
    parse_turn_modes,
    schedule,
    split_per_mode,
    stack_changes,
    to_json,
)


def test_the_default_mode_is_the_agents_default() -> None:
    assert AgentSettings.model_fields["turn_detection"].default == DEFAULT_TURN_MODE
    assert TURN_MODES["stt"].env == {"KYUTAI_TURN_DETECTION": "stt"}
    assert TURN_MODES["vad"].env == {
        "KYUTAI_TURN_DETECTION": "vad",
        "KYUTAI_VAD_MIN_SILENCE_S": "0.35",
    }


def test_parse_turn_modes() -> None:
    assert parse_turn_modes(" stt , vad ") == ["stt", "vad"]
    assert parse_turn_modes("vad") == ["vad"]
    for bad in ("", "stt,stt", "stt,semantic"):
        with pytest.raises(ValueError):
            parse_turn_modes(bad)


@pytest.mark.parametrize("users", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("repeats", [1, 3])
def test_schedule_keeps_n_simultaneous_and_balances_the_modes(users: int, repeats: int) -> None:
    modes = ["stt", "vad"]
    rounds = schedule(users, modes, repeats)
    assert len(rounds) == 2 * repeats
    assert all(len(r) == users for r in rounds)  # N = simultaneous conversations
    counts = Counter(m for r in rounds for m in r)
    assert counts == {"stt": users * repeats, "vad": users * repeats}
    # every user position (its start in the stagger) sees each mode equally often
    for i in range(users):
        assert Counter(r[i] for r in rounds) == {"stt": repeats, "vad": repeats}


def test_schedule_alternates_at_n1_and_mixes_above() -> None:
    assert schedule(1, ["stt", "vad"], 2) == [["stt"], ["vad"], ["stt"], ["vad"]]
    assert schedule(4, ["stt", "vad"]) == [
        ["stt", "vad", "stt", "vad"],
        ["vad", "stt", "vad", "stt"],
    ]
    assert schedule(3, ["stt"]) == [["stt", "stt", "stt"]]  # one mode: as before


def test_split_per_mode() -> None:
    assert split_per_mode("kyutai-agent", ["stt"], "x") == {"stt": ["kyutai-agent"]}
    both = split_per_mode("stt=a, vad=b,stt=c", ["stt", "vad"], "x")
    assert both == {"stt": ["a", "c"], "vad": ["b"]}
    url = "http://w:9100/metrics?x=1"  # an "=" that does not follow a mode name
    assert split_per_mode(url, ["vad"], "x") == {"vad": [url]}
    with pytest.raises(ValueError, match="say which mode"):
        split_per_mode("kyutai-agent", ["stt", "vad"], "x")
    with pytest.raises(ValueError, match="not one of"):
        split_per_mode("vad=b", ["stt"], "x")


def test_deployment_targets() -> None:
    single = deployment_targets(["stt"], "kyutai-agent", "http://w/metrics")
    assert single == {"stt": Target("kyutai-agent", ["http://w/metrics"])}
    both = deployment_targets(["stt", "vad"], "stt=a,vad=b", "vad=http://b/metrics")
    assert both == {"stt": Target("a", []), "vad": Target("b", ["http://b/metrics"])}
    with pytest.raises(ValueError, match="one agent name"):
        deployment_targets(["stt", "vad"], "stt=a", "")


def test_parse_args_turn_modes() -> None:
    args = parse_args(["--spawn-stack"])
    assert args.turn_modes == [DEFAULT_TURN_MODE] and args.rounds == 1 and args.targets is None
    args = parse_args(["--turn-modes", "stt,vad", "--agent-name", "stt=a,vad=b"])
    assert args.targets == {"stt": Target("a", []), "vad": Target("b", [])}
    for bad in (["--turn-modes", "stt,vad"], ["--turn-modes", "x"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_spawn_stack_names_a_worker_per_mode_only_when_it_differs() -> None:
    assert WORKERS not in {c.setting for c in stack_changes(4, modes=["stt"])}
    two = {c.setting: c.value for c in stack_changes(4, modes=["stt", "vad"])}
    assert "kyutai-stt, kyutai-vad" in two[WORKERS]
    assert "KYUTAI_VAD_MIN_SILENCE_S=0.35" in two[WORKERS]
    assert WORKERS in {c.setting for c in stack_changes(None)}  # --help tells the rule


def run(mode: str, users: int, latencies: list[float | None], dropped: int = 0) -> RunResult:
    turns = [TurnResult(0, i, x, round=i % 2) for i, x in enumerate(latencies)]
    return RunResult(users=users, turn_mode=mode, turns=turns, dropped_sessions=dropped)


def test_comparison_side_by_side_with_the_ratio() -> None:
    stt = run("stt", 1, [0.8, 1.0, None])
    vad = run("vad", 1, [1.0, 1.2, 1.4], dropped=1)
    comp = comparison({"stt": stt, "vad": vad})
    assert comp["users"] == 1
    assert comp["modes"]["stt"]["count"] == 2 and comp["modes"]["stt"]["failed_turns"] == 1
    assert comp["modes"]["vad"]["max"] == pytest.approx(1.4)
    assert comp["modes"]["vad"]["dropped_sessions"] == 1
    assert comp["ratio"]["of"] == "stt" and comp["ratio"]["to"] == "vad"
    assert comp["ratio"]["p50"] == pytest.approx(0.9 / 1.2)
    assert comp["ratio"]["p90"] == pytest.approx(0.98 / 1.36)
    table = comparison_table(comp)
    assert "stt (pause heads)" in table and "vad (VAD 0.35 s)" in table
    assert "failed turns" in table and "dropped sessions" in table
    assert "stt / vad: p50 0.75x, p90 0.72x" in table


def test_a_cut_is_compared_with_the_mode_before_it() -> None:
    # the pause heads with the flush before the cut: same turn detection, the old flush
    assert TURN_MODES["stt-full-flush"].env == {
        "KYUTAI_TURN_DETECTION": "stt",
        "KYUTAI_STT_FLUSH": "full",
    }
    comp = comparison(
        {"stt": run("stt", 4, [0.9, 1.1]), "stt-full-flush": run("stt-full-flush", 4, [1.0, 1.2])}
    )
    assert comp["ratio"]["of"] == "stt" and comp["ratio"]["to"] == "stt-full-flush"
    assert comp["ratio"]["p50"] == pytest.approx(1.0 / 1.1)
    assert "stt / stt-full-flush: p50 0.91x" in comparison_table(comp)


def test_comparison_without_answers_or_without_vad_has_no_ratio() -> None:
    comp = comparison({"stt": run("stt", 4, [None]), "vad": run("vad", 4, [1.0])})
    assert comp["ratio"]["p50"] is None and comp["modes"]["stt"]["p50"] is None
    assert "p50 —" in comparison_table(comp)
    alone = comparison({"vad": run("vad", 4, [1.0])})
    assert alone["ratio"]["p50"] is None and "/" not in comparison_table(alone)
    with pytest.raises(ValueError):
        comparison({"stt": run("stt", 1, [1.0]), "vad": run("vad", 4, [1.0])})


def test_group_by_users_keeps_the_order() -> None:
    runs = [run("stt", 1, []), run("vad", 1, []), run("stt", 4, []), run("vad", 4, [])]
    groups = group_by_users(runs)
    assert [sorted(g) for g in groups] == [["stt", "vad"], ["stt", "vad"]]
    assert [next(iter(g.values())).users for g in groups] == [1, 4]


def test_single_mode_json_keeps_its_shape() -> None:
    args = parse_args(["--spawn-stack", "--users", "1,4", "--turns", "2"])
    data = to_json([run("stt", 1, [0.9, 1.1]), run("stt", 4, [1.5, None])], args)
    assert "comparison" not in data
    assert data["config"]["turn_modes"] == {
        "stt": {"agent_name": None, "worker_env": {"KYUTAI_TURN_DETECTION": "stt"}}
    }
    first = data["runs"][0]
    # the keys single-mode readers of docs/loadtest.json use, unchanged
    for key in ("users", "turns", "failed_turns", "dropped_sessions", "wall_s"):
        assert key in first
    assert {"count", "mean", "p50", "p90", "p99"} <= set(first["end_to_end"])
    assert first["per_turn"][1] == {"user": 0, "round": 1, "turn": 1, "end_to_end": 1.1}
    assert data["runs"][1]["failed_turns"] == 1


def test_two_mode_json_has_runs_per_mode_and_a_comparison_per_n() -> None:
    args = parse_args(["--spawn-stack", "--users", "1,4", "--turn-modes", "stt,vad"])
    results = [
        run("stt", 1, [0.9]),
        run("vad", 1, [1.0]),
        run("stt", 4, [1.4]),
        run("vad", 4, [1.6]),
    ]
    targets = {"stt": Target("kyutai-stt"), "vad": Target("kyutai-vad")}
    data = to_json(results, args, targets)
    assert [(r["users"], r["turn_mode"]) for r in data["runs"]] == [
        (1, "stt"),
        (1, "vad"),
        (4, "stt"),
        (4, "vad"),
    ]
    assert data["config"]["turn_modes"]["vad"]["agent_name"] == "kyutai-vad"
    assert data["config"]["rounds_per_n"] == 2
    assert [c["users"] for c in data["comparison"]] == [1, 4]
    assert data["comparison"][0]["ratio"]["p50"] == pytest.approx(0.9)
