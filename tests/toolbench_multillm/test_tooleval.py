"""The ``alpha-umi tooleval`` CLI: pass rate and win rate end to end against a scripted judge on 127.0.0.1.

The helpers here (``converted``, ``write_inputs``) are also used by test_pass_rate.py and test_win_rate.py.
"""

from __future__ import annotations

import json

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
