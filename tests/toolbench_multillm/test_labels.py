"""Label files, the job runner and the statistics over repeats."""

from __future__ import annotations

import json
import statistics
import threading

import pytest

from toolbench_multillm.labels import LabelStore, average_over_groups, run_jobs, summarise


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
