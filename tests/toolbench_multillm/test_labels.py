"""Label files, the job runner and the statistics over repeats."""

from __future__ import annotations

import io
import json
import re
import statistics
import threading

import pytest

from glpft.formats import FormatError, json_text
from toolbench_multillm.labels import (
    LabelStore,
    Progress,
    answer_digest,
    average_over_groups,
    run_jobs,
    summarise,
)


def test_mean_and_std_over_repeats_by_hand(tmp_path):
    store = LabelStore(tmp_path / "x.json", {})
    table = {"a": [1, 1, 0, 1], "b": [0, 0.5, 0, 1], "c": [1, 0, 0, 0]}
    for q, scores in table.items():
        store.sync(q, "d")
        for r, s in enumerate(scores):
            store.set(q, r, "x", s, "judge", "")
    s = summarise(store, ["a", "b", "c"], 4)
    per_repeat = [100 * 2 / 3, 100 * 1.5 / 3, 0.0, 100 * 2 / 3]
    assert s["per_repeat"] == pytest.approx(per_repeat)
    assert s["mean"] == pytest.approx(sum(per_repeat) / 4)
    mean = sum(per_repeat) / 4
    assert s["std"] == pytest.approx((sum((x - mean) ** 2 for x in per_repeat) / 4) ** 0.5)
    assert s["std"] == pytest.approx(statistics.pstdev(per_repeat)) and s["complete"]
    partial = summarise(store, ["a", "b", "c"], 5)  # repeat 4 never ran
    assert not partial["complete"] and len(partial["per_repeat"]) == 4


def test_average_column_is_mean_of_group_means_and_std_of_per_repeat_averages():
    groups = {
        "G1_instruction": {"complete": True, "per_repeat": [60.0, 40.0]},
        "G1_tool": {"complete": True, "per_repeat": [20.0, 40.0]},
        "G2_category": {"complete": False, "per_repeat": [100.0]},  # unfinished groups are left out
    }
    avg = average_over_groups(groups)
    assert avg["mean"] == pytest.approx(40.0) and avg["std"] == pytest.approx(0.0) and avg["groups"] == 2
    assert average_over_groups({"G1_tool": {"complete": False, "per_repeat": []}}) == {
        "mean": None,
        "std": None,
    }


def test_job_error_stops_the_run_but_results_received_are_saved(tmp_path):
    store = LabelStore(tmp_path / "g.json", {"judge_model": "j"})
    for q in ("1", "2", "3"):
        store.sync(q, "d")
    first_done = threading.Event()

    def work(qid: str, r: int):
        if qid == "1":
            first_done.set()
            return qid, r, "Solved", 1.0, "judge", "ok", {"note": "x"}
        first_done.wait(5)
        raise RuntimeError("judge down")

    with pytest.raises(RuntimeError, match="judge down"):
        run_jobs(store, [("1", 0), ("2", 0), ("3", 0)], work, threads=1)
    saved = json.loads((tmp_path / "g.json").read_text())
    assert saved["meta"] == {"judge_model": "j"}
    assert saved["queries"]["1"]["repeats"]["0"] == {
        "label": "Solved",
        "score": 1.0,
        "decided_by": "judge",
        "reason": "ok",
        "note": "x",
    }
    assert saved["queries"]["2"]["repeats"] == {} and saved["queries"]["3"]["repeats"] == {}
    assert (tmp_path / "g.tsv").read_text().splitlines()[1].split("\t") == [
        "1",
        "0",
        "Solved",
        "1.0",
        "judge",
        "ok",
    ]
    resumed = LabelStore(tmp_path / "g.json", {"judge_model": "j"})
    assert resumed.has("1", 0) and not resumed.has("2", 0)


def test_a_file_that_is_not_a_label_file_is_refused(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"meta": {}}))
    with pytest.raises(ValueError, match="other.json: missing field 'queries'"):
        LabelStore(path, {})


@pytest.mark.parametrize(
    "content, named",
    [
        ('{"meta": {}, "queries": {"1": ', "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"meta": [], "queries": {}}', "field 'meta'"),
        ('{"queries": {"1": {"repeats": []}}}', "query 1: missing field 'repeats'"),
        (
            '{"queries": {"1": {"repeats": {"0": {"label": "Solved", "decided_by": "judge"}}}}}',
            "field 'score'",
        ),
        ('{"queries": {"1": {"repeats": {"x": {}}}}}', "repeat 'x'"),
    ],
)
def test_a_corrupt_label_file_is_a_one_line_error_and_is_left_as_it_is(tmp_path, content, named):
    path = tmp_path / "G1_tool_m.json"
    path.write_text(content)
    with pytest.raises(FormatError, match=re.escape(named)) as err:
        LabelStore(path, {})
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_text() == content


def test_progress_prints_the_first_line_then_at_most_one_per_interval_and_the_last():
    out = io.StringIO()
    p = Progress("G1_tool", every=3600, stream=out)
    p.start(total=10, done=4, to_ask=6)
    for _ in range(6):
        p.advance(1)
    lines = out.getvalue().splitlines()
    assert lines == [
        "G1_tool: 4/10 labels (4 saved or decided without the judge); asking the judge for 6",
        "G1_tool: 10/10 labels",
    ]


def test_labels_with_lone_surrogates_and_unserialisable_answers_are_saved(tmp_path):
    deep: dict = {}
    for _ in range(5000):
        deep = {"next": deep}
    assert answer_digest({"answer": deep}) == "unserialisable"  # no RecursionError
    assert answer_digest({"answer": {"final_answer": "a \ud83d"}}) != answer_digest({"answer": {}})
    store = LabelStore(tmp_path / "g.json", {})
    store.sync("1", "d")
    store.set("1", 0, "Solved", 1.0, "judge", "the reply said \ud83d")
    store.save()
    again = LabelStore(tmp_path / "g.json", {})
    assert again.queries["1"]["repeats"]["0"]["reason"] == "the reply said \ud83d"
    assert "\\ud83d" in (tmp_path / "g.tsv").read_text()
    assert json_text({"k": "é"}) == '{"k": "é"}'
