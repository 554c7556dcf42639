"""Pass rate of one group, called directly (the CLI-level tests are in test_tooleval.py)."""

from __future__ import annotations

import json

import pytest
from test_tooleval import converted

from toolbench_multillm.judge import SOLVED, UNSOLVED, UNSURE, JudgeUnavailable, Verdict, render_answer
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


class ScriptedJudge:
    """Stands in for Judge: Solved for every answer it can render, raising like the real one otherwise."""

    def __init__(self):
        self.asked = 0

    def judge_solved(self, query, answer):
        self.asked += 1
        render_answer(answer)  # a poison answer raises here, as in the real judge
        return Verdict(SOLVED, "fine")

    def judge_preference(self, query, a, b):
        self.asked += 1
        render_answer(a), render_answer(b)
        return Verdict("A", "fine")

    def describe_error(self, e):
        return f"{type(e).__name__}: {e}"[:100]


def deep_answer(final: str) -> dict:
    """An answer whose tool call arguments are nested 5,000 deep: it cannot be digested or rendered."""
    entry = converted(final)
    deep: dict = {}
    for _ in range(5000):
        deep = {"a": deep}
    entry["answer"]["answer_details"][0]["next"][0]["next"][0]["message"]["arguments"] = deep
    return entry


def test_a_poison_answer_is_unsure_with_a_reason_and_the_group_goes_on(tmp_path, caplog):
    answers = {"1": converted("right"), "2": deep_answer("deep"), "3": converted("right")}
    judge = ScriptedJudge()
    store = LabelStore(tmp_path / "g.json", {})
    pass_rate_group(answers, ["1", "2", "3"], store, judge, evaluate_times=2, threads=2)
    assert store.scores("1") == store.scores("3") == {0: 1.0, 1: 1.0}
    assert store.scores("2") == {0: 0.5, 1: 0.5}
    entry = store.queries["2"]["repeats"]["0"]
    assert entry["label"] == UNSURE and entry["decided_by"] == "error" and "RecursionError" in entry["reason"]
    assert "query 2 repeat 0 could not be judged" in caplog.text
    resumed = LabelStore(tmp_path / "g.json", {})  # the rerun keeps the labels: no crash, nothing asked
    pass_rate_group(answers, ["1", "2", "3"], resumed, judge, evaluate_times=2, threads=2)
    assert judge.asked == 6 and resumed.scores("2") == {0: 0.5, 1: 0.5}
