"""Win rate of one group, called directly (the CLI-level tests are in test_tooleval.py)."""

from __future__ import annotations

import pytest
from test_pass_rate import ScriptedJudge, deep_answer
from test_tooleval import converted

from toolbench_multillm.judge import JudgeUnavailable
from toolbench_multillm.labels import LabelStore
from toolbench_multillm.win_rate import win_rate_group


def test_differing_pass_decisions_decide_without_the_judge(tmp_path):
    store = LabelStore(tmp_path / "g.json", {})
    cand = {"1": converted("a"), "2": converted("b")}
    ref = {"1": converted("c"), "2": converted("d")}
    win_rate_group(cand, ref, ["1", "2"], store, None, 2, 1, {"1": True, "2": False}, {"1": False, "2": True})
    assert store.scores("1") == {0: 1.0, 1: 1.0} and store.scores("2") == {0: 0.0, 1: 0.0}
    assert {e["decided_by"] for q in ("1", "2") for e in store.queries[q]["repeats"].values()} == {
        "pass_rate"
    }


def test_a_changed_pass_decision_drops_the_stored_labels(tmp_path):
    store = LabelStore(tmp_path / "g.json", {})
    cand, ref = {"1": converted("a")}, {"1": converted("c")}
    win_rate_group(cand, ref, ["1"], store, None, 1, 1, {"1": True}, {"1": False})
    assert store.scores("1") == {0: 1.0}
    with pytest.raises(JudgeUnavailable):  # both pass now: the judge must decide, and there is none
        win_rate_group(cand, ref, ["1"], store, None, 1, 1, {"1": True}, {"1": True})
    assert store.scores("1") == {}


def test_a_poison_pair_is_a_tie_with_a_reason_and_the_group_goes_on(tmp_path):
    judge = ScriptedJudge()
    store = LabelStore(tmp_path / "g.json", {})
    cand = {"1": converted("a"), "2": deep_answer("b")}
    ref = {"1": converted("c"), "2": converted("d")}
    win_rate_group(cand, ref, ["1", "2"], store, judge, 2, 2)
    assert store.scores("1") == {0: 1.0, 1: 0.0}  # the scripted judge always prefers A
    assert store.scores("2") == {0: 0.5, 1: 0.5}
    entry = store.queries["2"]["repeats"]["1"]
    assert (entry["label"], entry["decided_by"], entry["candidate_shown_as"]) == ("tie", "error", "B")
    win_rate_group(cand, ref, ["1", "2"], LabelStore(tmp_path / "g.json", {}), judge, 2, 2)
    assert judge.asked == 4  # resumed: nothing asked again
