"""Static metrics of paper Table 1: Plan ACC, Act. EM, Hallu., Arg. F1 (easy / hard), ROUGE-L.

    alpha-umi evaluate --input_path out/predictions.json --output_path out/metrics.json [--mode backbone] [--report]

Writes ``metrics.json`` (the original's seven keys), ``hallu_cases.json`` beside it and, with
``--report``, ``report.md`` (plan confusion matrix, caller errors). The numbers equal the original
``evaluate-multi_agent.py`` / ``evaluate-backbone.py`` to 1e-6 on the same predictions file
(DESIGN §3.7): every quirk kept for that is marked ``# paper parity:``; where the original crashes
we return a value instead, marked ``# fixes …``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from glpft.formats import FormatError, read_json, write_text_atomic
from glpft.parsing import ParsedStep, parse_backbone_step, parse_step
from glpft.prompts import NEXT_MARKERS

MODES = ("multi_agent", "backbone")
PLANS = ("call", "finish", "give up")
#: metrics.json keys, in the original's order.
METRIC_KEYS = ("rouge", "plan_em", "action_em", "easy_f1", "hard_f1", "f1", "hallu_rate")
#: paper Table 1 names.
LABELS = {
    "plan_em": "Plan ACC",
    "action_em": "Act. EM",
    "hallu_rate": "Hallu.",
    "f1": "Arg. F1",
    "easy_f1": "Arg. F1 (easy, ref {})",
    "hard_f1": "Arg. F1 (hard)",
    "rouge": "R-L",
}
F1_EPS = 1e-30


class PredictionRecord(TypedDict, total=False):
    """One line of predictions.json (DESIGN §3.6); only these three fields are scored."""

    tools: list[dict[str, Any]]
    reference: str
    predictions: str


class PredictionsFormatError(FormatError):
    """A predictions file or record that cannot be scored; the message names file, record and field."""


def check_record(record: Any, index: int, source: str = "<records>") -> None:
    """Raise a one-line PredictionsFormatError unless ``record`` has tools (with Name), reference, predictions."""
    where = f"{source}: record {index}"
    if not isinstance(record, dict):
        raise PredictionsFormatError(f"{where}: expected an object, got {type(record).__name__}")
    for field in ("tools", "reference", "predictions"):
        if field not in record:
            raise PredictionsFormatError(f"{where}: missing field {field!r}")
    for field in ("reference", "predictions"):
        if not isinstance(record[field], str):
            raise PredictionsFormatError(
                f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}"
            )
    if not isinstance(record["tools"], list):
        raise PredictionsFormatError(
            f"{where}: field 'tools' must be a list, got {type(record['tools']).__name__}"
        )
    for j, tool in enumerate(record["tools"]):
        if not isinstance(tool, dict) or not isinstance(tool.get("Name"), str):
            raise PredictionsFormatError(
                f"{where}: field 'tools'[{j}] must be an object with a string 'Name'"
            )


def read_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read and validate predictions.json (a JSON list of records, as written by ``alpha-umi infer``)."""
    path = Path(path)
    try:
        data = read_json(path)
    except FormatError as e:
        raise PredictionsFormatError(str(e), e.reason) from None
    if not isinstance(data, list):
        raise PredictionsFormatError(
            f"{path}: expected a JSON list of prediction records, got {type(data).__name__}"
        )
    if not data:
        raise PredictionsFormatError(f"{path}: no prediction records")
    for i, record in enumerate(data):
        check_record(record, i, str(path))
    return data


# --- per-step scoring ------------------------------------------------------------------------


@dataclass
class StepScore:
    """One scored sample. ``arg_f1``/``split`` are set for reference call steps that enter the F1 lists."""

    ref: ParsedStep
    pred: ParsedStep
    hallucinated: bool
    action: str | None = None  # predicted action as scored ("none" when the prediction has none)
    action_input: str | None = None  # predicted input as scored ("{}" when the prediction has none)
    arg_f1: float | None = None
    split: str | None = None  # "easy", "hard", "both" (wrong action) or None (skipped / not a call step)
    detail: str = ""  # why the arguments scored what they did (report only)


def argument_f1(pred_input: str, ref_input: str) -> tuple[float | None, str | None, str]:
    """F1 of one call step whose actions match: (score, "easy"|"hard", detail); score None = skipped."""
    try:
        ref = json.loads(ref_input)
    except Exception:
        # paper parity: a reference whose arguments are not JSON leaves every F1 list untouched.
        return None, None, "reference args unparsable (skipped)"
    split = "easy" if ref == {} else "hard"
    try:
        cand = json.loads(pred_input)
    except Exception:
        return 0, split, "unparsable args"
    if ref == {}:
        # paper parity: an empty reference is all-or-nothing.
        if cand == {}:
            return 1, split, "correct"
        return 0, split, "extra args" if isinstance(cand, dict) else "args not a JSON object"
    # paper parity: the original calls ref.items() / cand.keys() inside a bare try, so a JSON value
    # that is not an object on either side scores 0 (and goes to the hard list).
    if not isinstance(ref, dict):
        return 0, split, "reference args not a JSON object"
    if not isinstance(cand, dict):
        return 0, split, "args not a JSON object"
    full = half = 0
    for key, value in ref.items():
        if key in cand:
            if cand[key] == value:
                full += 1
            else:
                half += 1  # paper parity: a key with another value counts 0.5
    recall = (0.5 * half + full) / (len(ref) + F1_EPS)
    precision = (0.5 * half + full) / (len(cand) + F1_EPS)
    if recall + precision == 0:
        # paper parity: the original divides by zero here, catches it and scores 0.
        return 0, split, "no matching args"
    score = (2 * recall * precision) / (recall + precision)
    if score == 1:
        return score, split, "correct"
    return score, split, "wrong arg values" if half else ("missing args" if full < len(ref) else "extra args")


def score_step(record: dict[str, Any], mode: str = "multi_agent") -> StepScore:
    """Parse reference and prediction of one record and score what does not need the whole file."""
    # paper parity: a text without any "Next:" marker parses as a call, so a planner output that
    # never chose a role (the static pipeline appends "Next: caller." to it) is a correct plan on a call step.
    parse = parse_step if mode == "multi_agent" else parse_backbone_step
    ref, pred = parse(record["reference"]), parse(record["predictions"])
    names = {t["Name"] for t in record["tools"]}
    # paper parity: the rate counts every sample, not only call steps; an empty action name ("") is
    # a hallucination, a missing one ("none") is not.
    hallucinated = pred.action is not None and pred.action != "none" and pred.action not in names
    step = StepScore(ref, pred, hallucinated)
    if ref.plan != "call":
        return step
    # paper parity: a prediction that is not a call scores as action "none" with input "{}".
    step.action = pred.action if pred.action is not None else "none"
    step.action_input = pred.action_input if pred.action_input is not None else "{}"
    if step.action != ref.action:
        # paper parity: a wrong action appends 0 to the easy AND the hard list (and to f1).
        step.arg_f1, step.split, step.detail = 0, "both", "wrong action"
    else:
        step.arg_f1, step.split, step.detail = argument_f1(step.action_input, ref.action_input)
    return step


def score_steps(records: Sequence[dict[str, Any]], mode: str = "multi_agent") -> list[StepScore]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
    for i, record in enumerate(records):
        check_record(record, i)
    return [score_step(r, mode) for r in records]


# --- aggregation -----------------------------------------------------------------------------


@contextmanager
def _recursion_limit(limit: int):
    """The rouge package reconstructs LCSs recursively (depth = words of a sentence pair)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def rouge_l(hyps: list[str], refs: list[str]) -> tuple[float, int]:
    """(ROUGE-L F averaged by the ``rouge`` package, number of pairs the package cannot score)."""
    from rouge import Rouge

    if not refs:
        return 0, 0  # paper parity: no finish step gives 0
    # fixes a RecursionError the original hits on one answer sentence of ~1000 words (same value, computed).
    with _recursion_limit(100_000):
        try:
            return Rouge().get_scores(hyps=hyps, refs=refs, avg=True)["rouge-l"]["f"], 0
        except ValueError:
            pass
        # fixes a crash: the package raises on an empty (or dots-only) answer, so the original stops.
        # Such a pair scores 0 and stays in the average; the sum runs in the same order as the
        # package's own average, so files without such answers never reach this path.
        total, unscorable = 0, 0
        for hyp, ref in zip(hyps, refs, strict=True):
            try:
                total = total + Rouge().get_scores(hyps=[hyp], refs=[ref], avg=True)["rouge-l"]["f"]
            except ValueError:
                unscorable += 1
        return total / len(refs), unscorable


def _mean_plus_eps(values: list[float]) -> float | None:
    # paper parity: the original adds 1e-30 to each F1 average (an all-zero list gives 1e-30).
    # fixes a ZeroDivisionError: an empty list (no easy / no hard / no call steps) gives None (null).
    return sum(values) / len(values) + F1_EPS if values else None


def aggregate(records: Sequence[dict[str, Any]], steps: Sequence[StepScore]) -> dict[str, Any]:
    """The seven metrics (METRIC_KEYS), plus ``counts`` and ``hallu_cases`` (the hallucinating records)."""
    plan_hits = sum(s.ref.plan == s.pred.plan for s in steps)
    calls = [s for s in steps if s.ref.plan == "call"]
    finishes = [s for s in steps if s.ref.plan == "finish"]
    easy = [s.arg_f1 for s in calls if s.split in ("easy", "both")]
    hard = [s.arg_f1 for s in calls if s.split in ("hard", "both")]
    f1 = [s.arg_f1 for s in calls if s.split is not None]
    # paper parity: a prediction that is not a finish is scored as the answer "none".
    hyps = [s.pred.answer if s.pred.answer is not None else "none" for s in finishes]
    rouge, unscorable = rouge_l(hyps, [s.ref.answer for s in finishes])
    n_hallu = sum(s.hallucinated for s in steps)
    metrics: dict[str, Any] = {
        "rouge": rouge,
        # paper parity: an empty list gives 0 for plan_em / action_em (the original's own guard).
        "plan_em": plan_hits / len(steps) if steps else 0,
        "action_em": sum(s.action == s.ref.action for s in calls) / len(calls) if calls else 0,
        "easy_f1": _mean_plus_eps(easy),
        "hard_f1": _mean_plus_eps(hard),
        "f1": _mean_plus_eps(f1),
        # paper parity: divided by all samples, not by call steps; fixes a ZeroDivisionError on no samples (null).
        "hallu_rate": n_hallu / len(steps) if steps else None,
    }
    ref_plans = Counter(s.ref.plan for s in steps)
    metrics["counts"] = {
        "samples": len(steps),
        **{f"ref_{p.replace(' ', '_')}": ref_plans[p] for p in PLANS},
        "easy_f1_steps": len(easy),
        "hard_f1_steps": len(hard),
        "f1_steps": len(f1),
        "ref_args_unparsable_skipped": sum(s.split is None for s in calls),
        "hallucinated": n_hallu,
        "rouge_unscorable_pairs": unscorable,
    }
    metrics["hallu_cases"] = [r for r, s in zip(records, steps, strict=True) if s.hallucinated]
    return metrics


def compute_metrics(records: Sequence[dict[str, Any]], mode: str = "multi_agent") -> dict[str, Any]:
    """Score prediction records (mode "multi_agent" or "backbone"); see :func:`aggregate` for the keys."""
    return aggregate(records, score_steps(records, mode))


# --- presentation ----------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "null (no steps)" if value is None else f"{value:.6f}"


def format_table(result: dict[str, Any], mode: str) -> str:
    """A plain-text table of the seven metrics with the number of steps behind each."""
    c = result["counts"]
    over = {
        "plan_em": f"{c['samples']} steps",
        "action_em": f"{c['ref_call']} call steps",
        "hallu_rate": f"{c['samples']} steps",
        "f1": f"{c['f1_steps']} call steps",
        "easy_f1": f"{c['easy_f1_steps']} steps",
        "hard_f1": f"{c['hard_f1_steps']} steps",
        "rouge": f"{c['ref_finish']} finish steps",
    }
    order = ("plan_em", "action_em", "hallu_rate", "f1", "easy_f1", "hard_f1", "rouge")
    rows = [("metric", "key", "value", "over"), *((LABELS[k], k, _fmt(result[k]), over[k]) for k in order)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"static metrics ({mode}): {c['ref_call']} call / {c['ref_finish']} finish / {c['ref_give_up']} give up"
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    notes = []
    if c["ref_args_unparsable_skipped"]:
        notes.append(
            f"{c['ref_args_unparsable_skipped']} call steps skipped in F1: reference args are not JSON"
        )
    if c["rouge_unscorable_pairs"]:
        notes.append(f"{c['rouge_unscorable_pairs']} empty answers scored ROUGE-L 0 (the original crashes)")
    return "\n".join(lines + [f"note: {n}" for n in notes])


def _caller_outcome(step: StepScore, names: set[str]) -> str:
    """Primary error of a reference call step, for the report."""
    if step.pred.plan != "call":
        return f"wrong plan (predicted {step.pred.plan})"
    if step.action == "none":
        return "no action in output"
    if step.action != step.ref.action:
        return "hallucinated action name" if step.action not in names else "wrong action (existing tool)"
    return step.detail


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(x).replace("|", "\\|").replace("\n", " ") for x in row) + " |" for row in rows
    ]


def format_report(
    records: Sequence[dict[str, Any]],
    steps: Sequence[StepScore],
    result: dict[str, Any],
    mode: str,
    source: str,
) -> str:
    """Markdown report: metrics, plan confusion matrix, caller errors, hallucinated names."""
    lines = [f"# Static evaluation of `{source}` ({mode})", "", "```", format_table(result, mode), "```", ""]
    lines += ["## Plan confusion matrix (rows: reference, columns: prediction)", ""]
    matrix = Counter((s.ref.plan, s.pred.plan) for s in steps)
    lines += _md_table(
        ["reference \\ predicted", *PLANS, "total"],
        [[p, *(matrix[p, q] for q in PLANS), sum(matrix[p, q] for q in PLANS)] for p in PLANS],
    )
    lines += ["", "A prediction without any `Next:` marker counts as a call (paper parity).", ""]
    calls = [(r, s) for r, s in zip(records, steps, strict=True) if s.ref.plan == "call"]
    outcomes = Counter(_caller_outcome(s, {t["Name"] for t in r["tools"]}) for r, s in calls)
    lines += [f"## Caller outcomes on {len(calls)} reference call steps", ""]
    lines += _md_table(
        ["outcome", "steps", "share"],
        [[k, v, f"{v / len(calls):.1%}"] for k, v in outcomes.most_common()],
    )
    wrong = Counter(
        (s.ref.action, s.action) for _, s in calls if s.pred.plan == "call" and s.action != s.ref.action
    )
    if wrong:
        lines += ["", "### Most common wrong actions", ""]
        lines += _md_table(
            ["reference action", "predicted action", "steps"],
            [[a, b, n] for (a, b), n in wrong.most_common(10)],
        )
    hallu = Counter(s.pred.action for s in steps if s.hallucinated)
    if hallu:
        lines += [
            "",
            f"## Hallucinated action names ({sum(hallu.values())} of {len(steps)} samples, all plans)",
            "",
        ]
        lines += _md_table(["predicted action", "samples"], [[repr(a), n] for a, n in hallu.most_common(10)])
    return "\n".join(lines) + "\n"


def _beside(output_path: Path, name: str) -> Path:
    """``hallu_cases.json`` / ``report.md`` next to metrics.json (``x_metrics.json`` → ``x_hallu_cases.json``)."""
    if "metrics.json" in output_path.name:
        return output_path.with_name(output_path.name.replace("metrics.json", name))
    # fixes: the original's str.replace on a path without "metrics.json" overwrote the metrics file.
    return output_path.with_name(name)


def detect_mode(records: Sequence[dict[str, Any]]) -> str:
    """Which pipeline wrote the predictions: α-UMi references keep the planner's ``Next: …`` marker
    (every step has one), single-LLM (backbone) references are merged targets without it."""
    marked = sum(any(m in r["reference"] for m in NEXT_MARKERS) for r in records)
    return "multi_agent" if marked * 2 >= len(records) else "backbone"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="alpha-umi evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--input_path", required=True, help="predictions.json written by alpha-umi infer")
    p.add_argument(
        "--output_path", required=True, help="metrics.json to write; hallu_cases.json goes beside it"
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="parse rules: multi_agent (α-UMi) or backbone (single LLM); default: read from the predictions",
    )
    p.add_argument("--report", action="store_true", help="also write report.md beside metrics.json")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    args = p.parse_args(argv)

    out = Path(args.output_path)
    targets = [out, _beside(out, "hallu_cases.json")] + ([_beside(out, "report.md")] if args.report else [])
    if len(set(targets)) != len(targets):
        p.error(f"--output_path {out} collides with the files written beside it; name it metrics.json")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        p.error(f"output exists: {', '.join(existing)}; pass --overwrite to replace")
    try:
        records = read_predictions(args.input_path)
    except PredictionsFormatError as e:
        print(f"alpha-umi evaluate: {e}", file=sys.stderr)
        return 2
    written_by = detect_mode(records)
    if args.mode is not None and args.mode != written_by:
        # fixes: scoring backbone predictions with the α-UMi rules silently gave Plan ACC 1.000
        print(
            f"alpha-umi evaluate: {args.input_path} holds {written_by} predictions "
            f"(alpha-umi infer{' --backbone_model_name_or_path' if written_by == 'backbone' else ''}); "
            f"--mode {args.mode} would score them with the wrong rules (drop --mode or pass --mode {written_by})",
            file=sys.stderr,
        )
        return 2
    args.mode = written_by
    steps = score_steps(records, args.mode)
    result = aggregate(records, steps)

    write_text_atomic(out, json.dumps({k: result[k] for k in METRIC_KEYS}, indent=2) + "\n")
    write_text_atomic(targets[1], json.dumps(result["hallu_cases"], indent=2) + "\n")
    print(format_table(result, args.mode))
    print(f"wrote {out} and {targets[1]}")
    if args.report:
        write_text_atomic(targets[2], format_report(records, steps, result, args.mode, args.input_path))
        print(f"wrote {targets[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
