"""The ``alpha-umi tooleval`` CLI: pass rate and win rate end to end against a scripted judge on 127.0.0.1.

The helpers here (``converted``, ``write_inputs``) are also used by test_pass_rate.py and test_win_rate.py.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
from test_judge import FakeJudgeServer, pass_reply, reply

from toolbench_multillm.judge import SOLVED, UNSOLVED
from toolbench_multillm.labels import LabelStore
from toolbench_multillm.tooleval import main

GROUP = "G1_instruction"
SECRET = "sk-test-SECRET-key-0123456789"


def converted(final: str, finish: bool = True, tool: str = "get_for_t") -> dict:
    steps = [{"name": tool, "arguments": "{}", "response": '{"error": "", "response": "data"}'}]
    if finish:
        steps.append(
            {"name": "Finish", "arguments": json.dumps({"return_type": "give_answer", "final_answer": final})}
        )
    chain: list = []
    for s in reversed(steps):
        chain = [{"role": "tool", "message": {"response": "", **s}, "next": chain}]
    details = [{"role": "system", "message": "", "next": [{"role": "user", "message": "", "next": chain}]}]
    body = {"method": "m", "total_steps": 2 + len(steps), "final_answer": "", "answer_details": details}
    return {"query": f"question about {final}", "available_tools": [], "answer": body}


def write_inputs(tmp_path, answers: dict, name: str = "model", ids=None):
    conv = tmp_path / "converted" / name
    conv.mkdir(parents=True)
    (conv / f"{GROUP}.json").write_text(json.dumps(answers))
    ids_dir = tmp_path / "ids"
    ids_dir.mkdir(exist_ok=True)
    (ids_dir / f"{GROUP}.json").write_text(json.dumps({q: 0 for q in (ids or answers)}))
    return conv, ids_dir


def by_final_answer(req: dict):
    """Solved when the final answer says 'right', malformed when it says 'garbled', else Unsolved."""
    user = req["messages"][1]["content"]
    if "garbled" in user:
        return reply("no json here")
    return pass_reply(SOLVED if "Final answer: right" in user else UNSOLVED)


def judge_args(srv, save, ids, **kw):
    args = ["--test_ids", str(ids), "--save_path", str(save), "--test_sets", GROUP]
    args += ["--judge_base_url", srv.base_url, "--judge_model", "judge-test", "--judge_timeout", "0.5"]
    args += ["--judge_backoff", "0.01", "--judge_max_retries", str(kw.get("retries", 2))]
    args += ["--evaluate_times", str(kw.get("times", 3)), "--max_eval_threads", str(kw.get("threads", 2))]
    return args


def labels(path, qid):
    rec = json.loads(path.read_text())["queries"][qid]["repeats"]
    return [rec[str(r)]["label"] for r in range(len(rec))]


def test_pass_rate_labels_no_finish_unasked_and_malformed_unsure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    answers = {
        "1": converted("right"),
        "2": converted("wrong"),
        "3": converted("right", finish=False),
        "4": converted("garbled"),
    }
    conv, ids = write_inputs(tmp_path, answers, ids=["1", "2", "3", "4", "99"])
    save = tmp_path / "pass"
    with FakeJudgeServer(respond=by_final_answer) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids)]
        assert main(argv + ["--judge_parse_retries", "1"]) == 0
    # 3 judged answers × 3 repeats; the malformed one is asked twice per repeat; query 3 is never sent
    assert srv.calls == 3 + 3 + 3 * 2
    assert not any(
        "question about right" in r["messages"][1]["content"] and "Finish" not in r["messages"][1]["content"]
        for r in srv.requests
    )
    out = save / f"{GROUP}_model.json"
    assert labels(out, "1") == [SOLVED] * 3
    assert labels(out, "2") == [UNSOLVED] * 3
    assert labels(out, "3") == [UNSOLVED] * 3
    assert labels(out, "4") == ["Unsure"] * 3
    summary = json.loads((save / "model_pass_rate_summary.json").read_text())
    g = summary["groups"][GROUP]
    assert g["n_queries"] == 4  # id 99 has no answer and is not counted
    assert g["mean"] == pytest.approx(100 * (1 + 0 + 0 + 0.5) / 4) and g["std"] == 0
    assert g["decided_by"] == {"judge": 6, "malformed": 3, "no_finish": 3}
    assert summary["average"]["mean"] == pytest.approx(37.5)
    assert "malformed" in capsys.readouterr().out
    tsv = (save / f"{GROUP}_model.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == LabelStore.TSV_FIELDS and len(tsv) == 1 + 12
    for f in save.iterdir():
        assert SECRET not in f.read_text()
    assert all(h["Authorization"] == f"Bearer {SECRET}" for h in srv.headers)
    with FakeJudgeServer(respond=by_final_answer) as srv:  # resumed: only id 99 is new, and it is unanswered
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids)]
        assert main(argv + ["--missing_as_unsolved"]) == 0 and srv.calls == 0
    g = json.loads((save / "model_pass_rate_summary.json").read_text())["groups"][GROUP]
    assert g["n_queries"] == 5 and g["mean"] == pytest.approx(100 * 1.5 / 5)
    assert labels(out, "99") == [UNSOLVED] * 3


def test_interrupted_run_resumes_without_asking_again(tmp_path):
    answers = {str(q): converted("right" if q % 2 else "wrong") for q in range(1, 6)}
    conv, ids = write_inputs(tmp_path, answers)
    save = tmp_path / "pass"
    served = {"n": 0}

    def dies_after_four(req):
        served["n"] += 1
        return by_final_answer(req) if served["n"] <= 4 else (503, "down")

    with FakeJudgeServer(respond=dies_after_four) as srv:
        argv = [
            "pass-rate",
            "--converted_answer_path",
            str(conv),
            *judge_args(srv, save, ids, retries=1, threads=1),
        ]
        assert main(argv) == 1
    stored = json.loads((save / f"{GROUP}_model.json").read_text())["queries"]
    assert sum(len(r["repeats"]) for r in stored.values()) == 4
    with FakeJudgeServer(respond=by_final_answer) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids)]
        assert main(argv) == 0
        assert srv.calls == 5 * 3 - 4
        assert main(argv) == 0 and srv.calls == 11  # nothing left to ask
        assert main(argv + ["--overwrite"]) == 0 and srv.calls == 11 + 15
    g = json.loads((save / "model_pass_rate_summary.json").read_text())["groups"][GROUP]
    assert g["mean"] == pytest.approx(60.0) and g["complete"]


def test_changed_answer_is_judged_again(tmp_path):
    conv, ids = write_inputs(tmp_path, {"1": converted("wrong")})
    save = tmp_path / "pass"
    with FakeJudgeServer(respond=by_final_answer) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids)]
        assert main(argv) == 0
        (conv / f"{GROUP}.json").write_text(json.dumps({"1": converted("right")}))
        assert main(argv) == 0 and srv.calls == 6
    assert labels(save / f"{GROUP}_model.json", "1") == [SOLVED] * 3


def prefer(position_of: str | None):
    """A preference judge: picks the answer whose final answer is ``position_of``, or always 'A' if None."""

    def respond(req):
        user = req["messages"][1]["content"]
        if position_of is None:
            return reply('{"reason": "first", "preferred": "A"}')
        a_part = user.split("=== Answer A ===")[1].split("=== Answer B ===")[0]
        return reply(json.dumps({"reason": "r", "preferred": "A" if position_of in a_part else "B"}))

    return respond


def win_setup(tmp_path):
    cand = {"1": converted("cand-good"), "2": converted("cand-good"), "3": converted("cand-good")}
    ref = {"1": converted("ref-answer"), "2": converted("ref-answer"), "3": converted("ref-answer")}
    cand_conv, ids = write_inputs(tmp_path, cand, "alpha-umi")
    ref_conv, _ = write_inputs(tmp_path, ref, "chatgpt_cot")
    # pass labels: query 1 only the candidate passed, query 2 only the reference, query 3 both
    for name, passed in (("alpha-umi", {"1": 1, "2": 0, "3": 1}), ("chatgpt_cot", {"1": 0, "2": 1, "3": 1})):
        store = LabelStore(tmp_path / "pass" / name / f"{GROUP}_{name}.json", {})
        for q, s in passed.items():
            store.sync(q, "d")
            store.set(q, 0, "x", float(s), "judge", "")
        store.save()
    return cand_conv, ref_conv, ids


def win_argv(tmp_path, srv, cand_conv, ref_conv, ids, times=4):
    return [
        "win-rate",
        *("--candidate_converted_path", str(cand_conv), "--candidate_model", "alpha-umi"),
        *("--reference_converted_path", str(ref_conv), "--reference_model", "chatgpt_cot"),
        *("--candidate_pass_rate_path", str(tmp_path / "pass" / "alpha-umi")),
        *("--reference_pass_rate_path", str(tmp_path / "pass" / "chatgpt_cot")),
        *judge_args(srv, tmp_path / "win", ids, times=times),
    ]


def test_win_rate_uses_pass_labels_first_and_swaps_positions(tmp_path):
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    with FakeJudgeServer(respond=prefer("cand-good")) as srv:
        assert main(win_argv(tmp_path, srv, cand_conv, ref_conv, ids)) == 0
    # only query 3 (both passed) goes to the judge, once per repeat
    assert srv.calls == 4
    shown_first = [
        "cand-good" in r["messages"][1]["content"].split("=== Answer A ===")[1].split("=== Answer B ===")[0]
        for r in srv.requests
    ]
    assert sorted(shown_first) == [False, False, True, True]
    out = tmp_path / "win" / f"{GROUP}_alpha-umi_vs_chatgpt_cot.json"
    assert labels(out, "1") == ["candidate"] * 4 and labels(out, "2") == ["reference"] * 4
    assert labels(out, "3") == ["candidate"] * 4
    rec = json.loads(out.read_text())["queries"]["3"]["repeats"]
    assert [rec[str(r)]["candidate_shown_as"] for r in range(4)] == ["A", "B", "A", "B"]
    g = json.loads((tmp_path / "win" / "alpha-umi_vs_chatgpt_cot_win_rate_summary.json").read_text())[
        "groups"
    ][GROUP]
    assert g["mean"] == pytest.approx(100 * 2 / 3)


def test_position_biased_judge_scores_half(tmp_path):
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    with FakeJudgeServer(respond=prefer(None)) as srv:
        argv = win_argv(tmp_path, srv, cand_conv, ref_conv, ids) + ["--use_pass_rate", "false"]
        assert main(argv) == 0
    assert srv.calls == 12
    summary = json.loads((tmp_path / "win" / "alpha-umi_vs_chatgpt_cot_win_rate_summary.json").read_text())
    g = summary["groups"][GROUP]
    assert g["per_repeat"] == pytest.approx([100.0, 0.0, 100.0, 0.0])
    assert g["mean"] == pytest.approx(50.0) and g["std"] == pytest.approx(50.0)


def test_tooleval_is_an_alpha_umi_subcommand():
    from toolbench_multillm.cli import COMMANDS

    assert COMMANDS["tooleval"][0] == "toolbench_multillm.tooleval"


@pytest.mark.slow
def test_reference_example_end_to_end_matches_stabletoolbench_labels(reference_dir, tmp_path):
    """Convert the shared example answers, replay StableToolBench's judge labels, and compare the results."""
    from toolbench_multillm.convert import final_answer_text

    example = reference_dir / "stabletoolbench/data_example"
    systems = {"virtual_chatgpt_cot": "CoT@1", "virtual_chatgpt_dfs": "DFS_woFilter_w2"}
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / f"{GROUP}.json").write_text(json.dumps({"588": 0, "608": 0, "1073": 0}))
    expected, queries = {}, {}
    for system, method in systems.items():
        answer_dir = example / "answer" / system / GROUP
        out = tmp_path / "conv" / system / f"{GROUP}.json"
        assert (
            main(["convert", "--answer_dir", str(answer_dir), "--method", method, "--output", str(out)]) == 0
        )
        ref = json.loads((example / "pass_rate_results" / system / f"{GROUP}_{system}.json").read_text())
        expected[system] = {
            q: [v["is_solved"][str(r)].split(".")[1] for r in range(3)] for q, v in ref.items()
        }
        queries[system] = json.loads(out.read_text())

    calls: dict = {}

    def replay(req):  # the label StableToolBench's judge gave this answer in this repeat
        user = req["messages"][1]["content"]
        for system, answers in queries.items():
            for qid, entry in answers.items():
                final = final_answer_text(entry["answer"])
                if entry["query"] in user and final and final in user.split("Final answer:")[-1]:
                    r = calls.setdefault((system, qid), 0)
                    calls[(system, qid)] += 1
                    return pass_reply(expected[system][qid][r])
        raise AssertionError("unknown answer")

    with FakeJudgeServer(respond=replay) as srv:
        for system in systems:
            conv = tmp_path / "conv" / system
            argv = ["pass-rate", "--converted_answer_path", str(conv), "--model_name", system]
            assert main(argv + judge_args(srv, tmp_path / "pass" / system, ids, threads=1)) == 0
    assert ("virtual_chatgpt_cot", "588") not in calls  # no Finish step: never sent to the judge
    for system in systems:
        for qid, want in expected[system].items():
            assert labels(tmp_path / "pass" / system / f"{GROUP}_{system}.json", qid) == want
    rates = {
        s: json.loads((tmp_path / "pass" / s / f"{s}_pass_rate_summary.json").read_text())["groups"][GROUP][
            "mean"
        ]
        for s in systems
    }
    assert rates == pytest.approx({"virtual_chatgpt_cot": 200 / 3, "virtual_chatgpt_dfs": 100.0})

    # StableToolBench's preference rounds: DFS won 588 and 608 three times, 1073 twice (CoT first)
    dfs_wins = {"608": [True] * 3, "1073": [False, True, True]}
    rounds: dict = {}

    def prefer_replay(req):
        user = req["messages"][1]["content"]
        qid = next(q for q, e in queries["virtual_chatgpt_dfs"].items() if e["query"] in user)
        dfs_final = final_answer_text(queries["virtual_chatgpt_dfs"][qid]["answer"])
        dfs_is_a = dfs_final in user.split("=== Answer A ===")[1].split("=== Answer B ===")[0]
        r = rounds.setdefault(qid, 0)
        rounds[qid] += 1
        return reply(
            json.dumps({"reason": "replayed", "preferred": "A" if dfs_is_a == dfs_wins[qid][r] else "B"})
        )

    with FakeJudgeServer(respond=prefer_replay) as srv:
        argv = [
            "win-rate",
            *("--candidate_converted_path", str(tmp_path / "conv/virtual_chatgpt_dfs")),
            *("--candidate_model", "virtual_chatgpt_dfs"),
            *("--reference_converted_path", str(tmp_path / "conv/virtual_chatgpt_cot")),
            *("--reference_model", "virtual_chatgpt_cot"),
            *("--candidate_pass_rate_path", str(tmp_path / "pass/virtual_chatgpt_dfs")),
            *("--reference_pass_rate_path", str(tmp_path / "pass/virtual_chatgpt_cot")),
        ]
        assert main(argv + judge_args(srv, tmp_path / "win", ids, threads=1)) == 0
    assert rounds == {"608": 3, "1073": 3}  # 588: only DFS passed, decided without the judge
    win = tmp_path / "win" / "virtual_chatgpt_dfs_vs_virtual_chatgpt_cot_win_rate_summary.json"
    assert json.loads(win.read_text())["groups"][GROUP]["mean"] == pytest.approx(100 * 8 / 9)


# ----------------------------------------------------------------------------- bad input: one line, exit 2

DEAD_URL = "http://127.0.0.1:9/v1"  # never contacted: these runs stop before the judge is asked


def one_line_error(capsys, *names: str) -> str:
    """The run's single ``alpha-umi tooleval …`` stderr line (no traceback); it names every one of ``names``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("alpha-umi tooleval")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def offline_args(save, ids, *extra: str) -> list[str]:
    args = ["--test_ids", str(ids), "--save_path", str(save), "--judge_base_url", DEAD_URL]
    return args + ["--judge_max_retries", "0", "--judge_timeout", "1", *extra]


@pytest.mark.parametrize(
    "case", ["test_ids_missing", "converted_missing", "converted_is_a_file", "unknown_group"]
)
def test_pass_rate_bad_paths_and_groups_are_one_line_errors(tmp_path, capsys, case):
    conv, ids = write_inputs(tmp_path, {"1": converted("right")})
    save = tmp_path / "pass"
    conv_arg, ids_arg, extra = str(conv), ids, ["--test_sets", GROUP]
    named = {
        "test_ids_missing": ("--test_ids", "no such folder"),
        "converted_missing": ("--converted_answer_path", "no such folder"),
        "converted_is_a_file": ("--converted_answer_path", "is a file"),
        "unknown_group": ("--test_sets", "'G9_nothing'"),
    }[case]
    if case == "test_ids_missing":
        ids_arg = tmp_path / "no_ids"
    elif case == "converted_missing":
        conv_arg = str(tmp_path / "nowhere")
    elif case == "converted_is_a_file":
        conv_arg = str(conv / f"{GROUP}.json")
    else:
        extra = ["--test_sets", GROUP, "G9_nothing"]
    argv = ["pass-rate", "--converted_answer_path", conv_arg, *offline_args(save, ids_arg, *extra)]
    assert main(argv) == 2
    one_line_error(capsys, *named)
    assert not save.exists()


def test_a_group_without_answers_is_skipped_but_no_group_at_all_is_an_error(tmp_path, capsys):
    conv, ids = write_inputs(tmp_path, {"1": converted("right")})
    (ids / "G1_tool.json").write_text(json.dumps(["1"]))  # test ids, but no converted G1_tool.json
    save = tmp_path / "pass"
    with FakeJudgeServer(respond=by_final_answer) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids, times=1)]
        assert main(argv[:-6] + ["--test_sets", GROUP, "G1_tool", *argv[-6:]]) == 0
    out = capsys.readouterr().out
    assert "G1_tool: skipped: no converted answers" in out
    summary = json.loads((save / "model_pass_rate_summary.json").read_text())
    assert list(summary["groups"]) == [GROUP] and "G1_tool" in summary["skipped_groups"]

    argv = [
        "pass-rate",
        "--converted_answer_path",
        str(conv),
        *offline_args(save, ids, "--test_sets", "G1_tool"),
    ]
    assert main(argv) == 2
    one_line_error(capsys, "no group could be evaluated", "G1_tool", "no converted answers")
    (conv / f"{GROUP}.json").write_text(json.dumps({"7": converted("right")}))  # answers none of its ids
    argv = ["pass-rate", "--converted_answer_path", str(conv), *offline_args(save, ids, "--test_sets", GROUP)]
    assert main(argv) == 2
    one_line_error(capsys, "no group could be evaluated", "none of its 1 test ids has an answer")


@pytest.mark.parametrize(
    "case", ["reference_missing", "candidate_pass_rate_missing", "reference_pass_rate_missing", "no_overlap"]
)
def test_win_rate_bad_paths_and_disjoint_ids_are_one_line_errors(tmp_path, capsys, case):
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    argv = [
        "win-rate",
        *("--candidate_converted_path", str(cand_conv), "--candidate_model", "alpha-umi"),
        *("--reference_converted_path", str(ref_conv), "--reference_model", "chatgpt_cot"),
        *("--candidate_pass_rate_path", str(tmp_path / "pass" / "alpha-umi")),
        *("--reference_pass_rate_path", str(tmp_path / "pass" / "chatgpt_cot")),
        *offline_args(tmp_path / "win", ids, "--test_sets", GROUP),
    ]
    flag = {
        "reference_missing": "--reference_converted_path",
        "candidate_pass_rate_missing": "--candidate_pass_rate_path",
        "reference_pass_rate_missing": "--reference_pass_rate_path",
        "no_overlap": "none of its 3 test ids has an answer in both",
    }[case]
    if case == "no_overlap":
        (ref_conv / f"{GROUP}.json").write_text(json.dumps({"41": converted("x"), "42": converted("y")}))
    else:
        argv[argv.index(flag) + 1] = str(tmp_path / "missing")
    assert main(argv) == 2
    one_line_error(capsys, flag)
    assert not (tmp_path / "win").exists()


TRUNCATED, BINARY, DEEP = '{"1": {"query": "q", "answ', bytes(range(256)) * 8, "[" * 5000 + "]" * 5000
WRONG_SHAPE = {
    "converted": json.dumps(["not", "an", "object"]),
    "labels": json.dumps(
        {"meta": {}, "queries": {"1": {"digest": "d", "repeats": {"0": {"label": "Solved"}}}}}
    ),
    "test_ids": json.dumps("G1_instruction"),
    "api_pool": json.dumps({"api_keys": [{"api_key": 7}]}),
}


DAMAGES = ["truncated", "empty", "binary", "wrong_shape", "deep"]


@pytest.mark.parametrize("command", ["pass-rate", "win-rate"])
@pytest.mark.parametrize(
    "target, damage",
    [(t, d) for t in ("converted", "labels", "test_ids", "api_pool") for d in DAMAGES]
    + [("api_pool", "missing")],
)
def test_corrupt_input_files_are_one_line_errors_naming_the_file(
    tmp_path, capsys, monkeypatch, command, target, damage
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    save = tmp_path / "out"
    model = "alpha-umi"
    files = {
        "converted": cand_conv / f"{GROUP}.json",
        "labels": save
        / (f"{GROUP}_{model}.json" if command == "pass-rate" else f"{GROUP}_{model}_vs_chatgpt_cot.json"),
        "test_ids": ids / f"{GROUP}.json",
        "api_pool": tmp_path / "pool.json",
    }
    bad = files[target]
    bad.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "truncated": TRUNCATED,
        "empty": "",
        "binary": BINARY,
        "wrong_shape": WRONG_SHAPE[target],
        "deep": DEEP,
    }
    if damage != "missing":
        data = content[damage]
        bad.write_bytes(data if isinstance(data, bytes) else data.encode())
    before = bad.read_bytes() if bad.exists() else None
    extra = ["--test_sets", GROUP, "--api_pool_file", str(files["api_pool"])] if target == "api_pool" else []
    extra = extra or ["--test_sets", GROUP]
    if command == "pass-rate":
        argv = ["pass-rate", "--converted_answer_path", str(cand_conv), "--model_name", model]
    else:
        argv = [
            "win-rate",
            *("--candidate_converted_path", str(cand_conv), "--candidate_model", model),
            *("--reference_converted_path", str(ref_conv), "--reference_model", "chatgpt_cot"),
            *("--candidate_pass_rate_path", str(tmp_path / "pass" / model)),
            *("--reference_pass_rate_path", str(tmp_path / "pass" / "chatgpt_cot")),
        ]
    assert main(argv + offline_args(save, ids, *extra)) == 2
    one_line_error(capsys, bad.name)
    assert (bad.read_bytes() if bad.exists() else None) == before  # good or bad, nothing is overwritten


def test_corrupt_pass_rate_labels_stop_win_rate_naming_the_file(tmp_path, capsys):
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    bad = tmp_path / "pass" / "chatgpt_cot" / f"{GROUP}_chatgpt_cot.json"
    bad.write_text(json.dumps({"meta": {}, "queries": {"1": {"repeats": {"0": {"score": "high"}}}}}))
    with FakeJudgeServer() as srv:
        assert main(win_argv(tmp_path, srv, cand_conv, ref_conv, ids)) == 2
    assert srv.calls == 0
    one_line_error(capsys, bad.name, "query 1", "'score'")


# ----------------------------------------------------------------------------- poison items


def test_poison_answers_and_replies_are_unsure_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    from toolbench_multillm import judge as judge_module

    answers = {
        "1": converted("right"),
        "2": converted("deep-reply"),  # the judge answers with JSON nested 5,000 deep
        "3": converted("poison"),  # rendering it raises
        "4": converted("right\ud83d cut emoji"),  # a lone surrogate: cannot be sent or saved as UTF-8 as is
    }
    conv, ids = write_inputs(tmp_path, {})
    (conv / f"{GROUP}.json").write_text(json.dumps(answers))  # json.dumps escapes the surrogate
    (ids / f"{GROUP}.json").write_text(json.dumps(list(answers)))
    render = judge_module.render_answer

    def fragile_render(answer, *args):
        if "poison" in json.dumps(answer):
            raise RuntimeError("renderer broke on this answer")
        return render(answer, *args)

    monkeypatch.setattr(judge_module, "render_answer", fragile_render)

    def respond(req):
        if "deep-reply" in req["messages"][1]["content"]:
            return reply('{"answer_status": ' * 5000 + '"Solved"' + "}" * 5000)
        return by_final_answer(req)

    save = tmp_path / "pass"
    with FakeJudgeServer(respond=respond) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids, times=2)]
        assert main(argv + ["--judge_parse_retries", "0"]) == 0
        out = save / f"{GROUP}_model.json"
        stored = json.loads(out.read_text())["queries"]
        assert labels(out, "1") == [SOLVED] * 2 and labels(out, "4") == [SOLVED] * 2
        assert labels(out, "2") == ["Unsure"] * 2 and labels(out, "3") == ["Unsure"] * 2
        assert {e["decided_by"] for e in stored["3"]["repeats"].values()} == {"error"}
        assert "renderer broke on this answer" in stored["3"]["repeats"]["0"]["reason"]
        assert "could not be judged" in capsys.readouterr().out
        calls = srv.calls
        assert main(argv) == 0 and srv.calls == calls  # the rerun neither crashes nor asks again
    sent = [r["messages"][1]["content"] for r in srv.requests if "cut emoji" in r["messages"][1]["content"]]
    assert sent and all("\ufffd cut emoji" in s for s in sent)


# ----------------------------------------------------------------------------- answers of a failed backend


def answer_file(final: str, query: str, infrastructure_error: str | None = None) -> dict:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": query},
        {"role": "assistant", "content": None, "function_call": {"name": "get_for_t", "arguments": "{}"}},
        {"role": "function", "name": "get_for_t", "content": '{"error": "", "response": "data"}'},
        {
            "role": "assistant",
            "content": None,
            "function_call": {
                "name": "Finish",
                "arguments": json.dumps({"return_type": "give_answer", "final_answer": final}),
            },
        },
    ]
    gen = {
        "valid_data": infrastructure_error is None,
        "query": query,
        "function": [],
        "final_answer": "",
        "train_messages": [messages] if infrastructure_error is None else [],
    }
    if infrastructure_error is not None:
        gen["infrastructure_error"] = infrastructure_error
    return {"answer_generation": gen}


def test_answers_made_against_a_failed_backend_are_skipped_and_never_judged(tmp_path, capsys):
    answer_dir = tmp_path / "answers"
    answer_dir.mkdir()
    for qid, final, err in (
        ("1", "right", None),
        ("2", "wrong", None),
        ("3", "right", "tool server: HTTP 503"),
    ):
        (answer_dir / f"{qid}_CoT@1.json").write_text(json.dumps(answer_file(final, f"query {qid}", err)))
    conv = tmp_path / "converted" / "model"
    argv = [
        "convert",
        "--answer_dir",
        str(answer_dir),
        "--method",
        "CoT@1",
        "--output",
        str(conv / f"{GROUP}.json"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 1 answers made against a failed tool backend" in out and ": 3" in out
    assert "converted 2 answers" in out
    assert set(json.loads((conv / f"{GROUP}.json").read_text())) == {"1", "2"}
    ids = tmp_path / "ids"
    ids.mkdir()
    (ids / f"{GROUP}.json").write_text(json.dumps(["1", "2", "3"]))
    save = tmp_path / "pass"
    with FakeJudgeServer(respond=by_final_answer) as srv:
        assert (
            main(["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids, times=1)])
            == 0
        )
    assert srv.calls == 2 and not any("query 3" in r["messages"][1]["content"] for r in srv.requests)
    assert json.loads((save / "model_pass_rate_summary.json").read_text())["groups"][GROUP]["n_queries"] == 2
    # an entry of a converted file that carries the mark (written by another tool) is not judged either
    entries = json.loads((conv / f"{GROUP}.json").read_text())
    entries["3"] = {**converted("right"), "infrastructure_error": "tool server: HTTP 503"}
    (conv / f"{GROUP}.json").write_text(json.dumps(entries))
    with FakeJudgeServer(respond=by_final_answer) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, save, ids, times=1)]
        assert main(argv + ["--overwrite"]) == 0
    assert srv.calls == 2 and "1 answers were made against a failed tool backend" in capsys.readouterr().out


# ----------------------------------------------------------------------------- progress, retries, secrets


def test_progress_lines_per_group_and_judge_retries_are_shown(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    answers = {str(q): converted("right") for q in range(1, 5)}
    answers["5"] = converted("x", finish=False)
    conv, ids = write_inputs(tmp_path, answers)
    with FakeJudgeServer(respond=by_final_answer, script=[(503, "down for a moment")]) as srv:
        argv = ["pass-rate", "--converted_answer_path", str(conv), *judge_args(srv, tmp_path / "pass", ids)]
        assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{GROUP}: 3/15 labels (3 saved or decided without the judge); asking the judge for 12" in err
    assert f"{GROUP}: 15/15 labels" in err
    retries = [r for r in caplog.records if r.name == "glpft.chat" and r.levelno == logging.INFO]
    assert retries and "HTTP 503" in retries[0].getMessage() and "retrying" in retries[0].getMessage()
    cand_conv, ref_conv, ids = win_setup(tmp_path / "win_run")
    with FakeJudgeServer(respond=prefer("cand-good")) as srv:
        assert main(win_argv(tmp_path / "win_run", srv, cand_conv, ref_conv, ids)) == 0
    err = capsys.readouterr().err
    assert f"{GROUP}: 8/12 labels" in err and f"{GROUP}: 12/12 labels" in err


def dead_url_with_credentials() -> str:
    with socket.socket() as s:  # a port nothing listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://judge-user-7f3:pw-SECRET-9c1@127.0.0.1:{port}/v1"


URL_SECRETS = ("judge-user-7f3", "pw-SECRET-9c1")


@pytest.mark.parametrize("command", ["pass-rate", "win-rate"])
def test_judge_url_credentials_never_appear_in_output_logs_or_files(
    tmp_path, capsys, caplog, monkeypatch, command
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the "no API key" warning names the URL too
    cand_conv, ref_conv, ids = win_setup(tmp_path)
    url = dead_url_with_credentials()
    with FakeJudgeServer() as srv:
        if command == "pass-rate":
            argv = [
                "pass-rate",
                "--converted_answer_path",
                str(cand_conv),
                *judge_args(srv, tmp_path / "win", ids, retries=1),
            ]
        else:
            argv = win_argv(tmp_path, srv, cand_conv, ref_conv, ids)
    argv[argv.index("--judge_base_url") + 1] = url
    assert main(argv) == 1  # the judge is down: the run stops, labels so far kept
    out, err = capsys.readouterr()
    assert "stopped: judge at http://127.0.0.1:" in err and "failed" in err
    assert any("retrying" in r.getMessage() for r in caplog.records)
    written = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".json" and "win" in f.parts for f in written)
    for text in [out, err, caplog.text] + [f.read_text(errors="replace") for f in written]:
        for secret in URL_SECRETS:
            assert secret not in text


def test_cli_shows_judge_retries_on_stderr_without_credentials(tmp_path):
    conv, ids = write_inputs(tmp_path, {"1": converted("right")})
    url = dead_url_with_credentials()
    argv = ["pass-rate", "--converted_answer_path", str(conv), "--test_ids", str(ids), "--test_sets", GROUP]
    argv += ["--save_path", str(tmp_path / "pass"), "--judge_base_url", url, "--evaluate_times", "1"]
    argv += ["--judge_max_retries", "1", "--judge_backoff", "0.01", "--judge_timeout", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "API_POOL_FILE")}
    proc = subprocess.run(
        [sys.executable, "-m", "toolbench_multillm.tooleval", *argv],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "INFO glpft.chat: judge attempt 1 failed" in proc.stderr and "retrying" in proc.stderr
    assert f"{GROUP}: 0/1 labels" in proc.stderr and "Traceback" not in proc.stderr
    for secret in URL_SECRETS:
        assert secret not in proc.stderr + proc.stdout
