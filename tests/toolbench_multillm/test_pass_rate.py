"""Pass rate of one group, called directly (the CLI-level tests are in test_tooleval.py)."""

from __future__ import annotations

import json

import pytest
from test_tooleval import converted

from toolbench_multillm.judge import UNSOLVED, JudgeUnavailable
from toolbench_multillm.labels import LabelStore
from toolbench_multillm.pass_rate import pass_rate_group, read_pass_decisions


def test_no_finish_and_missing_answers_are_unsolved_without_a_judge(tmp_path):
    store = LabelStore(tmp_path / "g.json", {})
    answers = {"1": converted("right", finish=False)}
    pass_rate_group(answers, ["1", "2"], store, None, evaluate_times=2, threads=1)
    assert store.scores("1") == {0: 0.0, 1: 0.0} and store.scores("2") == {0: 0.0, 1: 0.0}
    by = {q: [e["decided_by"] for e in store.queries[q]["repeats"].values()] for q in ("1", "2")}
    assert by == {"1": ["no_finish"] * 2, "2": ["missing"] * 2}
    assert {e["label"] for q in ("1", "2") for e in store.queries[q]["repeats"].values()} == {UNSOLVED}


def test_an_answer_to_judge_without_a_judge_stops_the_run(tmp_path):
    store = LabelStore(tmp_path / "g.json", {})
    with pytest.raises(JudgeUnavailable, match="no judge configured"):
        pass_rate_group({"1": converted("right")}, ["1"], store, None, evaluate_times=1, threads=1)


def test_pass_decision_is_mean_score_with_ties_passing(tmp_path):
    path = tmp_path / "G1_tool_m.json"
    queries = {
        "1": {"repeats": {"0": {"score": 1.0}, "1": {"score": 0.0}}},  # tie: passes
        "2": {"repeats": {"0": {"score": 0.5}, "1": {"score": 0.0}}},
        "3": {"repeats": {}},  # never judged: no decision
    }
    path.write_text(json.dumps({"meta": {}, "queries": queries}))
    assert read_pass_decisions(path) == {"1": True, "2": False}
    assert read_pass_decisions(tmp_path / "absent.json") == {} and read_pass_decisions(None) == {}
