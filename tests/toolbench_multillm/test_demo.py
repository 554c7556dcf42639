"""`alpha-umi demo --quick`: the whole chain end to end through the real entry points."""

from __future__ import annotations

import json
import shutil

import pytest

from glpft.prompts import AGENT_ROLES
from toolbench_multillm import demo


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert demo.main(["--out", str(out), "--quick"]) == 0
    return out


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_writes_the_report(quick_run):
    out = quick_run
    for stage in [
        "01_world",
        "02_prepro",
        "03_tiny_model",
        "04_stage1_backbone",
        "06_static_trained",
        "09_realtime_dfsdt",
    ]:
        assert (out / stage / ".done.json").exists(), stage
    for role in AGENT_ROLES:
        assert (out / f"05_stage2_{role}" / "config.json").exists()
    report = (out / "report.md").read_text()
    assert "| α-UMi (trained) |" in report and "| untrained baseline |" in report
    assert "| CoT@1 |" in report and "| DFS_woFilter_w2 |" in report
    for png in ["loss_curves.png", "static_metrics.png", "pass_rate.png"]:
        assert (out / png).stat().st_size > 1000
    # the trainings logged a loss that fell
    state = json.loads((out / "04_stage1_backbone" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    # real-time answers are ToolBench answer files
    answers = list((out / "08_realtime_cot" / "answers").glob("*_CoT@1.json"))
    assert len(answers) == demo.QUICK.n_realtime
    assert "answer_generation" in json.loads(answers[0].read_text())


@pytest.mark.slow
def test_rerun_reuses_finished_stages_and_static_metrics_are_deterministic(quick_run, capsys):
    out = quick_run
    before = json.loads((out / "06_static_trained" / "metrics.json").read_text())
    shutil.rmtree(out / "06_static_trained")
    assert demo.main(["--out", str(out), "--quick"]) == 0
    printed = capsys.readouterr().out
    assert "04_stage1_backbone" in printed and "reused" in printed
    assert json.loads((out / "06_static_trained" / "metrics.json").read_text()) == before


def test_pass_rate_counts_exact_answers(tmp_path):
    queries = tmp_path / "q.json"
    queries.write_text(
        json.dumps([{"query_id": 1, "ground_truth": ["42"]}, {"query_id": 2, "ground_truth": ["7"]}])
    )
    answers = tmp_path / "a"
    answers.mkdir()
    (answers / "1_CoT@1.json").write_text(json.dumps({"answer_generation": {"final_answer": "It is 42."}}))
    r = demo.pass_rate(queries, answers, "CoT@1", lambda q, a: a is not None and q["ground_truth"][0] in a)
    assert r == {"queries": 2, "solved": 1, "pass_rate": 0.5}


@pytest.mark.slow
def test_a_run_of_another_configuration_in_the_same_folder_is_refused_fixes_mixed_report(quick_run, capsys):
    # fixes: `demo` after `demo --quick` in one folder reused the quick models and reported them
    assert demo.main(["--out", str(quick_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "another configuration" in err and "--force" in err and "\n" not in err
    assert demo.main(["--out", str(quick_run), "--quick", "--seed", "1"]) == 2


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert demo.main(["--out", str(target), "--quick"]) == 2
    assert "is a file" in capsys.readouterr().err
