"""ToolEval: convert answers, pass rate, win rate (vs ChatGPT CoT) and the paper's Table 2.

    alpha-umi tooleval convert   --answer_dir output_res/alpha-umi/G1_instruction --method DFS_woFilter_w2 \
                                 --output output_res/converted/alpha-umi/G1_instruction.json
    alpha-umi tooleval pass-rate --converted_answer_path output_res/converted/alpha-umi --model_name alpha-umi \
                                 --test_ids data/toolbench/test_query_ids --save_path pass_rate_results/alpha-umi \
                                 --evaluate_times 7 --max_eval_threads 8 --judge_model gpt-3.5-turbo
    alpha-umi tooleval win-rate  --candidate_converted_path output_res/converted/alpha-umi --candidate_model alpha-umi \
                                 --candidate_pass_rate_path pass_rate_results/alpha-umi \
                                 --reference_pass_rate_path pass_rate_results/chatgpt_cot \
                                 --test_ids data/toolbench/test_query_ids --save_path win_rate_results
    alpha-umi tooleval report    --results pass_rate_results win_rate_results --output results/table2

Scores: Solved = 1, Unsure = 0.5, Unsolved = 0 (win: candidate preferred = 1, tie = 0.5). A group's rate is
the mean over queries for each repeat; we report mean ± population std over the ``evaluate_times``
repeats, in percent, and the average over groups. Pass rates are also split into answers with and
without simulated observations (``by_simulation`` in the summary; ``convert`` records them). Labels are saved (JSON + TSV, atomically) after every
judged answer, so an interrupted run resumes without asking the judge again; progress lines
(``G1_instruction: 12/40 labels``) and the judge's retries are shown on stderr.

Bad input (a missing folder or file, a corrupt converted, label, test-id or key-pool file, an unknown
group) stops before any judging with one line naming it, exit 2; a group without test ids or converted
answers is skipped with a line, and a run in which no group could be evaluated is an error. An answer
that cannot be rendered or judged is Unsure (a tie in win rate), flagged ``decided_by: "error"``.

This module is the CLI and its input readers; the work is in ``labels`` (label files, job runner,
statistics), ``pass_rate``, ``win_rate`` and ``report`` (Table 2), the judge in ``judge``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from glpft.chat import public_url
from glpft.formats import FormatError, read_json, write_json_atomic, write_text_atomic
from toolbench_multillm.convert import ConvertedAnswer, convert_answers, query_id_key, read_converted
from toolbench_multillm.judge import Judge, JudgeConfig, JudgeUnavailable, load_api_keys
from toolbench_multillm.labels import (
    ERROR,
    LabelStore,
    Progress,
    average_over_groups,
    summarise,
)
from toolbench_multillm.pass_rate import (
    average_by_simulation,
    pass_rate_group,
    read_pass_decisions,
    simulation_lines,
    summarise_by_simulation,
)
from toolbench_multillm.report import format_cell, load_summaries, render_chart, render_table
from toolbench_multillm.win_rate import win_rate_group

log = logging.getLogger("toolbench_multillm.tooleval")

TEST_SETS = ["G1_instruction", "G1_category", "G1_tool", "G2_category", "G2_instruction", "G3_instruction"]
DEFAULT_REFERENCE = "data/toolbench/reproduction_data/model_predictions_converted/chatgpt_cot"


# ----------------------------------------------------------------------------- inputs


def load_test_ids(test_ids_dir: str | os.PathLike, group: str) -> list[str] | None:
    """``<dir>/<group>.json`` ({id: …} or [id, …]) as sorted string ids; None when the file is absent.

    A corrupt file (not JSON, wrong shape, an id that is neither a string nor a number) is a FormatError.
    """
    path = Path(test_ids_dir) / f"{group}.json"
    if not path.exists():
        return None
    ids = read_json(path, expect=(dict, list))
    for i, q in enumerate(ids):
        if not isinstance(q, (str, int)) or isinstance(q, bool):
            raise FormatError(f"{path}: record {i}: a query id should be a string or a number", "bad id")
    return sorted({str(i) for i in ids}, key=query_id_key)


def find_converted(path: str | os.PathLike, group: str, model: str | None = None) -> Path | None:
    """``<path>/<group>.json``, else ``<path>/<model>/<group>.json`` (the original scripts use both)."""
    for candidate in (Path(path) / f"{group}.json", Path(path) / (model or "") / f"{group}.json"):
        if candidate.exists():
            return candidate
    return None


def _folder(flag: str, path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path when it is a folder; else a one-line FormatError naming the flag."""
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{flag} {p}: no such folder (expected {what})", "missing folder")
    if not p.is_dir():
        raise FormatError(f"{flag} {p}: is a file, expected a folder of {what}", "not a folder")
    return p


def _without_infrastructure_errors(
    answers: dict[str, ConvertedAnswer], path: Path
) -> dict[str, ConvertedAnswer]:
    """Entries made against a failed tool backend are never judged (convert already skips their files)."""
    bad = [
        q
        for q, e in answers.items()
        if e.get("infrastructure_error") or e["answer"].get("infrastructure_error")
    ]
    if bad:
        print(f"{path}: {len(bad)} answers were made against a failed tool backend; not judged")
    return {q: e for q, e in answers.items() if q not in bad}


def _ids_and_answers(
    args: argparse.Namespace, group: str, sources: list[tuple[Path, str | None]], keep_missing: bool = False
) -> tuple[list[str], list[dict[str, ConvertedAnswer]]] | str:
    """Test ids of ``group`` that every source answered (all ids with ``keep_missing``) + the answers;
    or why the group cannot be evaluated. Corrupt files raise FormatError."""
    ids = load_test_ids(args.test_ids, group)
    if ids is None:
        return f"no test ids ({Path(args.test_ids) / (group + '.json')} is absent)"
    if not ids:
        return f"no test ids in {Path(args.test_ids) / (group + '.json')}"
    answer_sets = []
    for path, model in sources:
        f = find_converted(path, group, model)
        if f is None:
            return f"no converted answers ({group}.json) under {path}"
        answer_sets.append(_without_infrastructure_errors(read_converted(f), f))
    have = [q for q in ids if all(q in a for a in answer_sets)]
    if not have:
        by = " and ".join(str(p) for p, _ in sources)
        return f"none of its {len(ids)} test ids has an answer in {'both ' if len(sources) > 1 else ''}{by}"
    if len(have) < len(ids):
        how = "they count as Unsolved" if keep_missing else "they are not counted"
        print(f"{group}: {len(ids) - len(have)} of {len(ids)} test ids have no answer; {how}")
    return (ids if keep_missing else have), answer_sets


@dataclass
class _Group:
    """One group ready to judge: every input read and checked before the judge is asked anything."""

    name: str
    ids: list[str]
    store: LabelStore
    answers: list[dict[str, ConvertedAnswer]]
    pass_decisions: list[dict[str, bool]] = field(default_factory=list)


def _no_group(skipped: dict[str, str]) -> FormatError:
    why = "; ".join(f"{g}: {r}" for g, r in skipped.items())
    return FormatError(f"no group could be evaluated ({why})", "nothing to evaluate")


# ----------------------------------------------------------------------------- CLI


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test_ids", required=True, help="folder with <group>.json test query ids")
    p.add_argument("--save_path", required=True, help="folder for labels (JSON + TSV) and the summary")
    p.add_argument("--test_sets", nargs="+", default=TEST_SETS, help=f"groups among {' '.join(TEST_SETS)}")
    p.add_argument("--evaluate_times", type=int, default=7, help="judge repeats per answer (paper: 7)")
    p.add_argument("--max_eval_threads", type=int, default=1, help="concurrent judge requests (paper: 1)")
    p.add_argument("--overwrite", action="store_true", help="discard saved labels and judge everything again")
    p.add_argument("--judge_base_url", default=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"))
    p.add_argument("--judge_model", default="gpt-3.5-turbo")
    p.add_argument("--api_pool_file", default=os.environ.get("API_POOL_FILE") or None, help="key-pool JSON")
    p.add_argument("--judge_timeout", type=float, default=60.0)
    p.add_argument("--judge_max_retries", type=int, default=5)
    p.add_argument("--judge_backoff", type=float, default=1.0)
    p.add_argument("--judge_parse_retries", type=int, default=2)
    p.add_argument("--judge_temperature", type=float, default=None)
    p.add_argument("--judge_json_mode", action="store_true", help="ask for response_format=json_object")


def _check_judge_args(args: argparse.Namespace) -> None:
    """Flags every judged run needs, checked before anything is read or asked (FormatError naming the flag)."""
    unknown = [g for g in args.test_sets if g not in TEST_SETS]
    if unknown:
        raise FormatError(
            f"--test_sets: unknown group {unknown[0]!r} (known: {', '.join(TEST_SETS)})", "bad flag"
        )
    args.test_sets = list(dict.fromkeys(args.test_sets))
    for flag, value, least in (
        ("--evaluate_times", args.evaluate_times, 1),
        ("--max_eval_threads", args.max_eval_threads, 1),
        ("--judge_max_retries", args.judge_max_retries, 0),
        ("--judge_parse_retries", args.judge_parse_retries, 0),
    ):
        if value < least:
            raise FormatError(f"{flag} {value}: should be at least {least}", "bad flag")
    if not args.judge_timeout > 0:
        raise FormatError(f"--judge_timeout {args.judge_timeout}: should be more than 0 seconds", "bad flag")
    try:  # fixes: a malformed URL failed every request with an error that was no endpoint outage
        parts = urlsplit(args.judge_base_url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        ok = False
    if not ok:  # the URL is shown without credentials
        raise FormatError(f"--judge_base_url {public_url(args.judge_base_url)}: expected an http(s):// URL")
    _folder("--test_ids", args.test_ids, "<group>.json test query ids")
    save = Path(args.save_path)
    if save.exists() and not save.is_dir():
        raise FormatError(f"--save_path {save}: is a file, expected a folder", "not a folder")


def _make_judge(args: argparse.Namespace) -> Judge:
    keys = load_api_keys(args.api_pool_file)
    if not keys:
        log.warning(  # fixes: the URL was logged with any user:password in it
            "no API key (OPENAI_API_KEY / --api_pool_file); calling %s without one",
            public_url(args.judge_base_url),
        )
    cfg = JudgeConfig(
        base_url=args.judge_base_url,
        model=args.judge_model,
        api_keys=keys,
        timeout=args.judge_timeout,
        max_retries=args.judge_max_retries,
        backoff=args.judge_backoff,
        parse_retries=args.judge_parse_retries,
        temperature=args.judge_temperature,
        json_mode=args.judge_json_mode,
    )
    return Judge(cfg)


def _meta(args: argparse.Namespace, **extra: Any) -> dict:
    return {
        "judge_model": args.judge_model,
        "judge_base_url": public_url(args.judge_base_url),
        "evaluate_times": args.evaluate_times,
        **extra,
    }


def _finish(
    args: argparse.Namespace, summary: dict, path: Path, judge: Judge, skipped: dict[str, str]
) -> int:
    summary["average"] = average_over_groups(summary["groups"])
    if summary["metric"] == "pass_rate":
        summary["average_by_simulation"] = average_by_simulation(summary["groups"])
    summary["judge_requests"] = judge.requests
    if skipped:
        summary["skipped_groups"] = skipped
    write_json_atomic(path, summary, indent=1)
    print(f"\n{summary['metric']} of {summary['model']} (mean ± std over {args.evaluate_times} repeats, %):")
    for group, g in summary["groups"].items():
        print(f"  {group:<16} {format_cell(summary, group):>14}  n={g['n_queries']}  {g['labels']}")
        for line in simulation_lines(g):
            print(line)
    for group, why in skipped.items():
        print(f"  {group:<16} {'skipped':>14}  {why}")
    print(f"  {'Average':<16} {format_cell(summary, None):>14}")
    for name, avg in summary.get("average_by_simulation", {}).items():
        if avg.get("mean") is not None:
            print(
                f"    {name.replace('_', ' '):<20} {avg['mean']:>6.1f} ± {avg['std']:.1f}  ({avg['groups']} groups)"
            )
    malformed = sum(g["decided_by"].get("malformed", 0) for g in summary["groups"].values())
    if malformed:
        print(f"  warning: {malformed} judge replies stayed malformed after retries (counted as Unsure/tie)")
    errors = sum(g["decided_by"].get(ERROR, 0) for g in summary["groups"].values())
    if errors:
        print(f"  warning: {errors} labels are for answers that could not be judged (counted as Unsure/tie;")
        print(f"           their reasons are in the label files, decided_by {ERROR!r})")
    print(f"summary: {path}")
    return 0


def _skip(skipped: dict[str, str], group: str, why: str) -> None:
    skipped[group] = why
    print(f"{group}: skipped: {why}")


def cmd_convert(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.is_dir():
        raise FormatError(f"--output {out}: is a folder, expected a file path", "not a file")
    if out.exists() and not args.overwrite:
        print(f"{out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    conv = convert_answers(args.answer_dir, args.method)
    skipped = conv.infrastructure_errors
    if skipped:
        shown = ", ".join(list(skipped)[:10]) + (", …" if len(skipped) > 10 else "")
        print(
            f"skipped {len(skipped)} answers made against a failed tool backend "
            f"(answer_generation.infrastructure_error; rerun run-queries to redo them): {shown}"
        )
    if not conv.answers:  # fixes: an empty or mistyped input wrote an empty file and exited 0
        if conv.matched:
            why = (
                f"all {conv.matched} answer files for {args.method!r} were made against a failed tool backend"
            )
        elif conv.other_files:
            why = f"no *.json answer file has {args.method!r} in its name (found e.g. {conv.other_files[0]})"
        else:
            why = "no *.json answer files"
        raise FormatError(f"{args.answer_dir}: {why}; converted 0 answers", "nothing to convert")
    if conv.shortened:
        print(
            f"{len(conv.shortened)} answers had more steps than a converted chain holds; their first steps "
            f"are left out (noted in the chain): {', '.join(conv.shortened[:10])}"
        )
    write_json_atomic(out, conv.answers)
    print(f"converted {len(conv.answers)} answers → {out}")
    counts = [e.get("simulated_observations") for e in conv.answers.values()]
    simulated, unknown = sum(1 for n in counts if n), counts.count(None)
    print(
        f"{simulated} of them hold simulated observations (pass rates are also reported without them)"
        + (f"; {unknown} record no provenance" if unknown else "")
    )
    return 0


def cmd_pass_rate(args: argparse.Namespace) -> int:
    _check_judge_args(args)
    conv = _folder("--converted_answer_path", args.converted_answer_path, "<group>.json converted answers")
    model = args.model_name or conv.name
    save = Path(args.save_path)
    summary: dict[str, Any] = {"metric": "pass_rate", "model": model, "groups": {}, **_meta(args)}
    groups, skipped = [], {}
    for group in args.test_sets:
        found = _ids_and_answers(args, group, [(conv, model)], keep_missing=args.missing_as_unsolved)
        if isinstance(found, str):
            _skip(skipped, group, found)
            continue
        ids, answers = found
        meta = _meta(args, model=model, group=group)
        store = LabelStore(save / f"{group}_{model}.json", meta, overwrite=args.overwrite)
        groups.append(_Group(group, ids, store, answers))
    if not groups:
        raise _no_group(skipped)
    with _make_judge(args) as judge:
        for g in groups:
            job = partial(
                pass_rate_group, g.answers[0], g.ids, g.store, judge, args.evaluate_times,
                args.max_eval_threads, Progress(g.name),
            )  # fmt: skip
            if not _judged(job, save):
                return 1
            summary["groups"][g.name] = summarise(g.store, g.ids, args.evaluate_times)
            summary["groups"][g.name]["by_simulation"] = summarise_by_simulation(
                g.store, g.answers[0], g.ids, args.evaluate_times
            )
        return _finish(args, summary, save / f"{model}_pass_rate_summary.json", judge, skipped)


def _judged(job: Any, save: Path) -> bool:
    """Run one group's judging; a judge outage or Ctrl-C stops the run, keeping the labels saved so far."""
    try:
        job()
    except (JudgeUnavailable, KeyboardInterrupt) as e:
        why = str(e) or "interrupted"
        print(f"stopped: {why}\nlabels so far are saved in {save}; rerun to resume", file=sys.stderr)
        return False
    return True


def cmd_win_rate(args: argparse.Namespace) -> int:
    _check_judge_args(args)
    cand, ref = args.candidate_model, args.reference_model
    cand_path = _folder("--candidate_converted_path", args.candidate_converted_path, "converted answers")
    ref_path = _folder("--reference_converted_path", args.reference_converted_path, "converted answers")
    pass_paths: list[tuple[Path | None, str]] = []
    for flag, p, m in (
        ("--candidate_pass_rate_path", args.candidate_pass_rate_path, cand),
        ("--reference_pass_rate_path", args.reference_pass_rate_path, ref),
    ):
        pass_paths.append(
            (_folder(flag, p, "pass-rate label files") if p and args.use_pass_rate else None, m)
        )
    if args.use_pass_rate and not all(p for p, _ in pass_paths):
        print("pass-rate labels of both models are not given: the judge decides every query")
    save = Path(args.save_path)
    summary: dict[str, Any] = {
        "metric": "win_rate",
        "model": cand,
        "reference_model": ref,
        "groups": {},
        **_meta(args),
    }
    groups, skipped = [], {}
    for group in args.test_sets:
        found = _ids_and_answers(args, group, [(cand_path, cand), (ref_path, ref)])
        if isinstance(found, str):
            _skip(skipped, group, found)
            continue
        ids, answers = found
        decisions = [read_pass_decisions(p / f"{group}_{m}.json") if p else {} for p, m in pass_paths]
        meta = _meta(args, model=cand, reference_model=ref, group=group)
        store = LabelStore(save / f"{group}_{cand}_vs_{ref}.json", meta, overwrite=args.overwrite)
        groups.append(_Group(group, ids, store, answers, decisions))
    if not groups:
        raise _no_group(skipped)
    with _make_judge(args) as judge:
        for g in groups:
            job = partial(
                win_rate_group, *g.answers, g.ids, g.store, judge, args.evaluate_times,
                args.max_eval_threads, *g.pass_decisions, Progress(g.name),
            )  # fmt: skip
            if not _judged(job, save):
                return 1
            summary["groups"][g.name] = summarise(g.store, g.ids, args.evaluate_times)
        return _finish(args, summary, save / f"{cand}_vs_{ref}_win_rate_summary.json", judge, skipped)


def cmd_report(args: argparse.Namespace) -> int:
    table = load_summaries(args.results)
    md = render_table(table)
    out = Path(args.output)
    write_text_atomic(out.with_suffix(".md"), md)
    render_chart(table, out.with_suffix(".png"))
    print(md)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alpha-umi tooleval", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("convert", help="ToolBench answer files → converted answers (one group)")
    p.add_argument("--answer_dir", required=True)
    p.add_argument("--method", required=True, help="e.g. DFS_woFilter_w2 or CoT@1 (matched in file names)")
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("pass-rate", help="judge Solved/Unsolved/Unsure per answer")
    p.add_argument(
        "--converted_answer_path", required=True, help="folder with <group>.json converted answers"
    )
    p.add_argument("--model_name", "--reference_model", "--candidate_model", dest="model_name", default=None)
    p.add_argument(
        "--missing_as_unsolved",
        action="store_true",
        help="count test ids without an answer as Unsolved (paper parity: they are left out)",
    )
    _add_judge_args(p)
    p.set_defaults(func=cmd_pass_rate)

    p = sub.add_parser("win-rate", help="judge candidate vs reference answers")
    p.add_argument("--candidate_converted_path", "--output_converted_answer_path", required=True)
    p.add_argument("--candidate_model", "--output_model", dest="candidate_model", required=True)
    p.add_argument("--reference_converted_path", "--ref_converted_answer_path", default=DEFAULT_REFERENCE)
    p.add_argument("--reference_model", default="chatgpt_cot")
    p.add_argument("--candidate_pass_rate_path", "--output_pass_rate_result_path", default=None)
    p.add_argument("--reference_pass_rate_path", "--ref_pass_rate_result_path", default=None)
    p.add_argument("--use_pass_rate", type=lambda s: s.lower() in ("1", "true", "yes"), default=True)
    _add_judge_args(p)
    p.set_defaults(func=cmd_win_rate)

    p = sub.add_parser("report", help="paper Table 2 (markdown) + bar chart (PNG) from summaries")
    p.add_argument("--results", nargs="+", required=True, help="*_summary.json files or folders of them")
    p.add_argument("--output", required=True, help="output path without suffix (.md and .png are written)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    # INFO on stderr: progress, skipped inputs and the judge's retries (glpft.chat), which never show keys
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FormatError as e:  # bad input: one line naming the file, record, field or flag
        print(f"alpha-umi tooleval {args.command}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # a result that cannot be written (permissions, a full disk …)
        print(f"alpha-umi tooleval {args.command}: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
