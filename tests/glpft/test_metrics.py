"""Static metrics (DESIGN §3.7): hand-computed values, the original's quirks, file reading and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glpft.metrics import METRIC_KEYS, PredictionsFormatError, compute_metrics, read_predictions
from glpft.metrics import main as metrics_main
from glpft.prompts import EOS_TEXT, NEXT_CALLER, NEXT_CONCLUSION, NEXT_GIVE_UP

TOOLS = [{"Name": "a_for_t", "function": "", "input": {}}, {"Name": "b_for_t", "function": "", "input": {}}]
TOL = 1e-12


# Strings shaped as DESIGN §3.6 writes them (references) and as the static pipeline predicts them.
def ref_call(action: str, args: str) -> str:
    return f"assistant: think {NEXT_CALLER}{EOS_TEXT}caller: Action: {action}\nAction Input: {args}{EOS_TEXT}"


def pred_call(action: str, args: str, marker: str = NEXT_CALLER) -> str:
    return f"asssitant: think {marker}{EOS_TEXT}caller: Action: {action}\nAction Input: {args}"


def ref_finish(answer: str) -> str:
    return f"assistant: done {NEXT_CONCLUSION}{EOS_TEXT}conclusion: {answer}{EOS_TEXT}"


def pred_finish(answer: str) -> str:
    return f"asssitant: done {NEXT_CONCLUSION}{EOS_TEXT}conclusion: {answer}"


GIVE_UP = f"I cannot do this. {NEXT_GIVE_UP}"


def rec(reference: str, prediction: str, tools=TOOLS) -> dict:
    return {"tools": tools, "reference": reference, "predictions": prediction}


def rouge_l_f(llcs: int, m: int, n: int) -> float:
    """The rouge package's ROUGE-L F from LCS-union size and unique-word counts of ref (m) and hyp (n)."""
    r, p = llcs / m, llcs / n
    return 2.0 * ((p * r) / (p + r + 1e-8))


def only_f1(records) -> dict:
    m = compute_metrics(records)
    return {k: m[k] for k in ("easy_f1", "hard_f1", "f1")}


# --- argument F1 ---------------------------------------------------------------------------------


def test_json_arg_half_match_scores_half_a_key():
    # full 1 (q), half 1 (r) → matched 1.5; recall 1.5/2, precision 1.5/3, F1 = 0.6
    m = only_f1(
        [rec(ref_call("a_for_t", '{"q": 1, "r": 2}'), pred_call("a_for_t", '{"q": 1, "r": 3, "s": 4}'))]
    )
    assert m["hard_f1"] == pytest.approx(0.6, abs=TOL)
    assert m["f1"] == pytest.approx(0.6, abs=TOL)
    assert m["easy_f1"] is None  # no easy step: the original divides by zero


def test_empty_reference_args_are_all_or_nothing():
    m = only_f1(
        [
            rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "{}")),
            rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", '{"x": 1}')),
            rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "[]")),
        ]
    )
    assert m["easy_f1"] == pytest.approx(1 / 3, abs=TOL)
    assert m["f1"] == pytest.approx(1 / 3, abs=TOL)
    assert m["hard_f1"] is None


def test_f1_average_adds_1e_30_like_the_original():
    m = only_f1([rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", "{}"))])
    # paper parity: no key in common is a ZeroDivisionError inside the original → 0, then + 1e-30
    assert m["hard_f1"] == 1e-30 and m["f1"] == 1e-30


def test_no_common_key_scores_zero_not_crash():
    m = only_f1(
        [
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", '{"z": 1}')),
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", '{"q": 1}')),
        ]
    )
    assert m["hard_f1"] == pytest.approx(0.5, abs=TOL)


def test_unparsable_prediction_args_score_zero_in_their_split():
    m = only_f1(
        [
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", "{q: 1")),
            rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "not json")),
            rec(ref_call("b_for_t", "{}"), pred_call("b_for_t", "{}")),
        ]
    )
    assert m["hard_f1"] == pytest.approx(0, abs=TOL)
    assert m["easy_f1"] == pytest.approx(0.5, abs=TOL)
    assert m["f1"] == pytest.approx(1 / 3, abs=TOL)


def test_unparsable_reference_args_skip_the_step_only_when_actions_match():
    skipped = rec(ref_call("a_for_t", "{oops"), pred_call("a_for_t", '{"q": 1}'))
    assert only_f1([skipped]) == {"easy_f1": None, "hard_f1": None, "f1": None}
    m = compute_metrics([skipped, rec(ref_call("a_for_t", "{oops"), pred_call("b_for_t", "{}"))])
    # the wrong action still appends 0 to easy, hard and f1
    assert (m["easy_f1"], m["hard_f1"], m["f1"]) == (1e-30, 1e-30, 1e-30)
    assert m["counts"]["ref_args_unparsable_skipped"] == 1
    assert m["action_em"] == pytest.approx(0.5, abs=TOL)


def test_wrong_action_appends_zero_to_easy_and_hard():
    m = only_f1(
        [
            rec(ref_call("a_for_t", "{}"), pred_call("b_for_t", "{}")),
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", '{"q": 1}')),
        ]
    )
    assert m["easy_f1"] == 1e-30  # [0] from the wrong action, although its reference is {}
    assert m["hard_f1"] == pytest.approx(0.5, abs=TOL)  # [0, 1]
    assert m["f1"] == pytest.approx(0.5, abs=TOL)


def test_json_values_that_are_not_objects_score_zero():
    m = only_f1(
        [
            rec(ref_call("a_for_t", "[1]"), pred_call("a_for_t", "[1]")),
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", "5")),
            rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", '{"q": 1.0}')),  # 1 == 1.0 in Python
        ]
    )
    assert m["hard_f1"] == pytest.approx(1 / 3, abs=TOL)


def test_unicode_arguments_compare_after_json_decoding():
    m = only_f1(
        [rec(ref_call("a_for_t", '{"city": "Zürich"}'), pred_call("a_for_t", '{"city": "Z\\u00fcrich"}'))]
    )
    assert m["hard_f1"] == pytest.approx(1, abs=TOL)


# --- hallucination, plans, actions ------------------------------------------------------------------


def test_hallucinated_names_are_divided_by_all_samples():
    tools = [{"Name": "wetter_für_t"}]
    records = [
        rec(ref_call("wetter_für_t", "{}"), pred_call("wetter_fur_t", "{}"), tools),  # hallucinated
        # an empty name is a hallucination too (paper parity)
        rec(ref_call("wetter_für_t", "{}"), pred_call("", "{}"), tools),
        rec(ref_call("wetter_für_t", "{}"), "asssitant: x</s>caller: no action at all", tools),  # "none": not
        rec(ref_call("wetter_für_t", "{}"), pred_call("wetter_für_t", "{}"), tools),
        rec(ref_finish("yes"), pred_finish("yes"), tools),
        rec(GIVE_UP, GIVE_UP, tools),
        rec(GIVE_UP, pred_call("made_up", "{}"), tools),  # counts on any reference plan
        rec(ref_finish("yes"), pred_call("wetter_für_t", "{}"), tools),
    ]
    m = compute_metrics(records)
    assert m["hallu_rate"] == pytest.approx(3 / 8, abs=TOL)
    assert m["hallu_cases"] == [records[0], records[1], records[6]]


def test_prediction_without_next_marker_counts_as_call():
    m = compute_metrics([rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "{}", marker=""))])
    assert m["plan_em"] == 1 and m["action_em"] == 1


def test_non_call_prediction_on_call_step_scores_action_none():
    m = compute_metrics(
        [rec(ref_call("a_for_t", "{}"), pred_finish("hi")), rec(ref_call("a_for_t", "{}"), GIVE_UP)]
    )
    assert m["plan_em"] == 0 and m["action_em"] == 0
    assert m["easy_f1"] == 1e-30 and m["hallu_rate"] == 0


def test_no_call_steps_gives_null_f1_and_zero_action_em():
    m = compute_metrics([rec(ref_finish("a b"), pred_finish("a b"))])
    assert m["action_em"] == 0  # the original's own guard for an empty list
    assert (m["easy_f1"], m["hard_f1"], m["f1"]) == (None, None, None)


# --- ROUGE-L ---------------------------------------------------------------------------------------


def test_rouge_l_hand_computed_with_unicode():
    m = compute_metrics(
        [
            # ref words (unique) the cat sat on mat = 5, hyp 3, LCS 3
            rec(ref_finish("the cat sat on the mat"), pred_finish("the cat sat")),
            rec(ref_finish("東京 is big"), pred_finish("東京 is big")),
            rec(ref_finish("yes"), pred_call("a_for_t", "{}")),  # scored as the answer "none"
        ]
    )
    expected = (rouge_l_f(3, 5, 3) + rouge_l_f(3, 3, 3) + 0) / 3
    assert m["rouge"] == pytest.approx(expected, abs=TOL)


def test_empty_answer_scores_zero_instead_of_crashing():
    # the rouge package raises on "" and on dots-only text; the original crashes, we score the pair 0
    records = [
        rec(ref_finish("sunny"), pred_finish("")),
        rec(ref_finish("sunny"), pred_finish("...")),
        rec(ref_finish("sunny"), pred_finish("sunny")),
    ]
    m = compute_metrics(records)
    assert m["rouge"] == pytest.approx(rouge_l_f(1, 1, 1) / 3, abs=TOL)
    assert m["counts"]["rouge_unscorable_pairs"] == 2
    assert compute_metrics(records[:1])["rouge"] == 0


def test_multi_agent_answer_drops_eos_but_backbone_keeps_it():
    ma = [rec(ref_finish("sunny today"), pred_finish("sunny today</s>"))]
    assert compute_metrics(ma)["rouge"] == pytest.approx(rouge_l_f(2, 2, 2), abs=TOL)
    bb = [rec("t\nconclusion: sunny today", "u\nconclusion: sunny today</s>")]
    assert compute_metrics(bb, mode="backbone")["rouge"] == pytest.approx(rouge_l_f(1, 2, 2), abs=TOL)


# --- backbone mode and a mixed parity file --------------------------------------------------------


def test_backbone_mode_uses_conclusion_markers():
    records = [
        rec('t\nAction: a_for_t\nAction Input: {"q": 1}', 'u\nAction: a_for_t\nAction Input: {"q": 1}'),
        rec("t\nconclusion: sunny today", "u\nconclusion: sunny today"),
        rec("t\nconclusion: give up.", "u\nconclusion: give up."),
        rec("t\nAction: a_for_t\nAction Input: {}", "I will stop\nconclusion: done"),
    ]
    m = compute_metrics(records, mode="backbone")
    assert m["plan_em"] == pytest.approx(3 / 4, abs=TOL)
    assert m["action_em"] == pytest.approx(1 / 2, abs=TOL)
    assert (m["easy_f1"], m["hard_f1"], m["f1"]) == pytest.approx((1e-30, 0.5, 0.5), abs=TOL)
    assert m["rouge"] == pytest.approx(rouge_l_f(2, 2, 2), abs=TOL)
    assert m["hallu_rate"] == 0
    # the same strings under multi-agent rules carry no "Next:" marker: all parse as calls
    assert compute_metrics(records)["counts"]["ref_call"] == 4


def test_mixed_file_matches_hand_computed_paper_numbers():
    records = [
        # hard 0.6; easy 1; wrong action (easy 0, hard 0); unparsable args (hard 0); skipped
        rec(ref_call("a_for_t", '{"q": 1, "r": 2}'), pred_call("a_for_t", '{"q": 1, "r": 3, "s": 4}')),
        rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "{}")),
        rec(ref_call("b_for_t", "{}"), pred_call("a_for_t", "{}")),
        rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", "{q: 1")),
        rec(ref_call("a_for_t", "{oops"), pred_call("a_for_t", '{"q": 1}')),
        # hallucinated name: wrong action, easy 0 and hard 0
        rec(ref_call("b_for_t", '{"q": 1}'), pred_call("zz_for_t", '{"q": 1}')),
        rec(ref_finish("the cat sat on the mat"), pred_finish("the cat sat")),
        rec(ref_finish("yes"), pred_call("a_for_t", "{}")),  # wrong plan, answer "none"
        rec(GIVE_UP, GIVE_UP),
        rec(GIVE_UP, pred_call("a_for_t", "{}", marker="")),  # wrong plan
    ]
    m = compute_metrics(records)
    expected = {
        "plan_em": 8 / 10,
        "action_em": 4 / 6,
        "easy_f1": (1 + 0 + 0) / 3 + 1e-30,
        "hard_f1": (0.6 + 0 + 0 + 0) / 4 + 1e-30,
        "f1": (0.6 + 1 + 0 + 0 + 0) / 5 + 1e-30,
        "hallu_rate": 1 / 10,
        "rouge": (rouge_l_f(3, 5, 3) + 0) / 2,
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, abs=1e-9), key
    assert m["hallu_cases"] == [records[5]]
    assert m["counts"]["easy_f1_steps"] == 3 and m["counts"]["hard_f1_steps"] == 4


# --- predictions file built from the real test set -----------------------------------------------


def static_samples(stage2_records: list[dict]) -> list[dict]:
    """One sample per assistant turn carrying a Next marker, with the DESIGN §3.6 reference."""
    samples = []
    for record in stage2_records:
        turns = record["conversations"]
        for i, turn in enumerate(turns):
            value = turn["value"]
            if turn["from"] != "assistant":
                continue
            if NEXT_GIVE_UP in value:
                reference = value
            elif NEXT_CALLER in value or NEXT_CONCLUSION in value:
                nxt = turns[i + 1]
                reference = f"assistant: {value}{EOS_TEXT}{nxt['from']}: {nxt['value']}{EOS_TEXT}"
            else:
                continue
            samples.append({"tools": record["tools"], "reference": reference})
    return samples


def test_references_as_predictions_score_perfectly(reference_dir, tmp_path):
    stage2 = json.loads(
        (reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text(encoding="utf-8")
    )
    samples = static_samples(stage2[:120])
    for s in samples:
        s["predictions"] = s["reference"]
    path = tmp_path / "predictions.json"
    path.write_text(json.dumps(samples), encoding="utf-8")
    m = compute_metrics(read_predictions(path))
    c = m["counts"]
    assert min(c["ref_call"], c["ref_finish"], c["ref_give_up"], c["easy_f1_steps"], c["hard_f1_steps"]) > 0
    assert m["plan_em"] == 1 and m["action_em"] == 1 and m["hallu_rate"] == 0
    assert (m["f1"], m["easy_f1"], m["hard_f1"]) == pytest.approx((1, 1, 1), abs=1e-12)
    # identical answers: the rouge package's F is 2 / (2 + 1e-8) per pair
    assert m["rouge"] == pytest.approx(2 / (2 + 1e-8), abs=1e-9)


# --- reading and the CLI -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [rec(GIVE_UP, GIVE_UP), rec(GIVE_UP, GIVE_UP), {"tools": TOOLS, "reference": "x"}],
            "record 2: missing field 'predictions'",
        ),
        (
            [{"tools": "a_for_t", "reference": "x", "predictions": "y"}],
            "record 0: field 'tools' must be a list",
        ),
        ([{"tools": [{"name": "a"}], "reference": "x", "predictions": "y"}], "record 0: field 'tools'[0]"),
        (
            [{"tools": TOOLS, "reference": None, "predictions": "y"}],
            "record 0: field 'reference' must be a string",
        ),
        ({"tools": TOOLS}, "expected a JSON list"),
        ([], "no prediction records"),
    ],
)
def test_bad_predictions_file_raises_one_line_naming_file_record_and_field(tmp_path, content, message):
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(PredictionsFormatError) as err:
        read_predictions(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_invalid_json_is_reported_with_the_file(tmp_path):
    path = tmp_path / "preds.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(PredictionsFormatError, match="not valid JSON"):
        read_predictions(path)


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")
    return path


def test_cli_writes_metrics_hallu_cases_and_report(tmp_path, capsys):
    records = [
        rec(ref_call("a_for_t", '{"q": 1}'), pred_call("zz_for_t", '{"q": 1}')),
        rec(ref_call("a_for_t", '{"q": 1}'), pred_call("b_for_t", '{"q": 1}')),
        rec(ref_call("a_for_t", '{"q": 1}'), pred_call("a_for_t", "{q")),
        rec(ref_finish("sunny"), pred_finish("sunny")),
        rec(GIVE_UP, pred_finish("hmm")),
    ]
    src = _write(tmp_path / "predictions.json", records)
    out = tmp_path / "eval" / "metrics.json"
    assert metrics_main(["--input_path", str(src), "--output_path", str(out), "--report"]) == 0
    metrics = json.loads(out.read_text())
    assert tuple(metrics) == METRIC_KEYS and metrics["easy_f1"] == 1e-30  # wrong actions fill the easy list
    assert metrics["hallu_rate"] == pytest.approx(1 / 5, abs=TOL)
    assert json.loads((out.parent / "hallu_cases.json").read_text()) == [records[0]]
    report = (out.parent / "report.md").read_text()
    for needle in (
        "Plan confusion matrix",
        "hallucinated action name",
        "wrong action (existing tool)",
        "unparsable args",
    ):
        assert needle in report
    assert "Plan ACC" in capsys.readouterr().out

    with pytest.raises(SystemExit):  # never overwrite results without the flag
        metrics_main(["--input_path", str(src), "--output_path", str(out)])
    assert metrics_main(["--input_path", str(src), "--output_path", str(out), "--overwrite"]) == 0


def test_cli_names_hallu_cases_after_a_prefixed_metrics_file(tmp_path):
    src = _write(tmp_path / "predictions.json", [rec(GIVE_UP, pred_call("zz", "{}"))])
    for name, hallu in (("dev_metrics.json", "dev_hallu_cases.json"), ("scores.json", "hallu_cases.json")):
        metrics_main(["--input_path", str(src), "--output_path", str(tmp_path / name)])
        assert json.loads((tmp_path / hallu).read_text())[0]["predictions"].endswith("{}")
        assert "rouge" in json.loads((tmp_path / name).read_text())


def test_cli_bad_file_exits_2_with_one_line(tmp_path, capsys):
    src = _write(tmp_path / "predictions.json", [{"tools": TOOLS, "reference": "x"}])
    assert metrics_main(["--input_path", str(src), "--output_path", str(tmp_path / "metrics.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "record 0: missing field 'predictions'" in err and len(err.splitlines()) == 1


def test_evaluate_reads_the_pipeline_from_the_predictions_and_refuses_a_wrong_mode(tmp_path, capsys):
    # fixes: backbone predictions scored with the α-UMi rules gave Plan ACC 1.000 without a word
    backbone = [
        rec("Call it.\nAction: a_for_t\nAction Input: {}", "Call it.\nAction: b_for_t\nAction Input: {}"),
        rec("Done.\nconclusion: 42", "Done.\nconclusion: 41"),
    ]
    src = _write(tmp_path / "bb.json", backbone)
    assert (
        metrics_main(["--input_path", str(src), "--output_path", str(tmp_path / "m1" / "metrics.json")]) == 0
    )
    scores = json.loads((tmp_path / "m1" / "metrics.json").read_text())
    assert scores["plan_em"] == pytest.approx(1.0) and scores["action_em"] == pytest.approx(0.0)
    out = str(tmp_path / "m2" / "metrics.json")
    assert metrics_main(["--input_path", str(src), "--output_path", out, "--mode", "multi_agent"]) == 2
    err = capsys.readouterr().err.strip()
    assert "backbone predictions" in err and "--mode backbone" in err and "\n" not in err
    alpha = _write(tmp_path / "a.json", [rec(ref_call("a_for_t", "{}"), pred_call("a_for_t", "{}"))])
    assert metrics_main(["--input_path", str(alpha), "--output_path", out, "--mode", "backbone"]) == 2
    assert "multi_agent predictions" in capsys.readouterr().err
