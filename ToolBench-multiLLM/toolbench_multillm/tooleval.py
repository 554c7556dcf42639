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
repeats, in percent, and the average over groups. Labels are saved (JSON + TSV, atomically) after every
judged answer, so an interrupted run resumes without asking the judge again.

This module is the CLI and its input readers; the work is in ``labels`` (label files, job runner,
statistics), ``pass_rate``, ``win_rate`` and ``report`` (Table 2), the judge in ``judge``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

from glpft.chat import public_url
from glpft.formats import write_json_atomic, write_text_atomic
from toolbench_multillm.convert import ConvertedAnswer, convert_answer_dir, read_converted
from toolbench_multillm.judge import Judge, JudgeConfig, JudgeUnavailable, load_api_keys
from toolbench_multillm.labels import LabelStore, average_over_groups, summarise
from toolbench_multillm.pass_rate import pass_rate_group, read_pass_decisions
from toolbench_multillm.report import format_cell, load_summaries, render_chart, render_table
from toolbench_multillm.win_rate import win_rate_group

log = logging.getLogger("toolbench_multillm.tooleval")

TEST_SETS = ["G1_instruction", "G1_category", "G1_tool", "G2_category", "G2_instruction", "G3_instruction"]
DEFAULT_REFERENCE = "data/toolbench/reproduction_data/model_predictions_converted/chatgpt_cot"


# ----------------------------------------------------------------------------- inputs


def load_test_ids(test_ids_dir: str | os.PathLike, group: str) -> list[str] | None:
    """``<dir>/<group>.json`` ({id: …} or [id, …]) as sorted string ids; None when the file is absent."""
    path = Path(test_ids_dir) / f"{group}.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        ids = json.load(f)
    return sorted({str(i) for i in ids}, key=lambda q: (not q.isdigit(), int(q) if q.isdigit() else 0, q))


def find_converted(path: str | os.PathLike, group: str, model: str | None = None) -> Path | None:
    """``<path>/<group>.json``, else ``<path>/<model>/<group>.json`` (the original scripts use both)."""
    for candidate in (Path(path) / f"{group}.json", Path(path) / (model or "") / f"{group}.json"):
        if candidate.is_file():
            return candidate
    return None


def _ids_and_answers(
    args: argparse.Namespace, group: str, sources: list[tuple[str, str | None]], keep_missing: bool = False
) -> tuple[list[str], list[dict[str, ConvertedAnswer]]] | None:
    """Test ids of ``group`` that every source answered (all ids with ``keep_missing``) + the answers."""
    ids = load_test_ids(args.test_ids, group)
    if ids is None:
        log.warning("%s: no test ids in %s; skipped", group, args.test_ids)
        return None
    answer_sets = []
    for path, model in sources:
        f = find_converted(path, group, model)
        if f is None:
            log.warning("%s: no converted answers under %s; skipped", group, path)
            return None
        answer_sets.append(read_converted(f))
    have = [q for q in ids if all(q in a for a in answer_sets)]
    if len(have) < len(ids):
        how = "they count as Unsolved" if keep_missing else "they are not counted"
        log.warning("%s: %d of %d test ids have no answer; %s", group, len(ids) - len(have), len(ids), how)
    return (ids if keep_missing else have), answer_sets


# ----------------------------------------------------------------------------- CLI


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test_ids", required=True, help="folder with <group>.json test query ids")
    p.add_argument("--save_path", required=True, help="folder for labels (JSON + TSV) and the summary")
    p.add_argument("--test_sets", nargs="+", default=TEST_SETS)
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


def _finish(args: argparse.Namespace, summary: dict, path: Path, judge: Judge) -> int:
    summary["average"] = average_over_groups(summary["groups"])
    summary["judge_requests"] = judge.requests
    write_json_atomic(path, summary, indent=1)
    print(f"\n{summary['metric']} of {summary['model']} (mean ± std over {args.evaluate_times} repeats, %):")
    for group, g in summary["groups"].items():
        print(f"  {group:<16} {format_cell(summary, group):>14}  n={g['n_queries']}  {g['labels']}")
    print(f"  {'Average':<16} {format_cell(summary, None):>14}")
    malformed = sum(g["decided_by"].get("malformed", 0) for g in summary["groups"].values())
    if malformed:
        print(f"  warning: {malformed} judge replies stayed malformed after retries (counted as Unsure/tie)")
    print(f"summary: {path}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        print(f"{out} exists; pass --overwrite to replace it", file=sys.stderr)
        return 1
    converted = convert_answer_dir(args.answer_dir, args.method)
    if not converted:
        log.warning("%s: no *.json answer file has %r in its name", args.answer_dir, args.method)
    write_json_atomic(out, converted)
    print(f"converted {len(converted)} answers → {out}")
    return 0


def cmd_pass_rate(args: argparse.Namespace) -> int:
    model = args.model_name or Path(args.converted_answer_path).name
    save = Path(args.save_path)
    summary: dict[str, Any] = {"metric": "pass_rate", "model": model, "groups": {}, **_meta(args)}
    with _make_judge(args) as judge:
        for group in args.test_sets:
            sources = [(args.converted_answer_path, model)]
            found = _ids_and_answers(args, group, sources, keep_missing=args.missing_as_unsolved)
            if found is None:
                continue
            ids, (answers,) = found
            meta = _meta(args, model=model, group=group)
            store = LabelStore(save / f"{group}_{model}.json", meta, overwrite=args.overwrite)
            job = partial(
                pass_rate_group, answers, ids, store, judge, args.evaluate_times, args.max_eval_threads
            )
            if not _judged(job, save):
                return 1
            summary["groups"][group] = summarise(store, ids, args.evaluate_times)
        return _finish(args, summary, save / f"{model}_pass_rate_summary.json", judge)


def _judged(job: Any, save: Path) -> bool:
    """Run one group's judging; a judge outage or Ctrl-C stops the run, keeping the labels saved so far."""
    try:
        job()
    except (JudgeUnavailable, KeyboardInterrupt) as e:
        print(f"stopped: {e}\nlabels so far are saved in {save}; rerun to resume", file=sys.stderr)
        return False
    return True


def cmd_win_rate(args: argparse.Namespace) -> int:
    cand, ref = args.candidate_model, args.reference_model
    save = Path(args.save_path)
    summary: dict[str, Any] = {
        "metric": "win_rate",
        "model": cand,
        "reference_model": ref,
        "groups": {},
        **_meta(args),
    }
    with _make_judge(args) as judge:
        for group in args.test_sets:
            sources = [(args.candidate_converted_path, cand), (args.reference_converted_path, ref)]
            found = _ids_and_answers(args, group, sources)
            if found is None:
                continue
            ids, (cand_answers, ref_answers) = found
            pass_files = [
                read_pass_decisions(Path(p) / f"{group}_{m}.json") if p and args.use_pass_rate else {}
                for p, m in ((args.candidate_pass_rate_path, cand), (args.reference_pass_rate_path, ref))
            ]
            meta = _meta(args, model=cand, reference_model=ref, group=group)
            store = LabelStore(save / f"{group}_{cand}_vs_{ref}.json", meta, overwrite=args.overwrite)
            job = partial(
                win_rate_group, cand_answers, ref_answers, ids, store, judge, args.evaluate_times,
                args.max_eval_threads, *pass_files,
            )  # fmt: skip
            if not _judged(job, save):
                return 1
            summary["groups"][group] = summarise(store, ids, args.evaluate_times)
        return _finish(args, summary, save / f"{cand}_vs_{ref}_win_rate_summary.json", judge)


def cmd_report(args: argparse.Namespace) -> int:
    table = load_summaries(args.results)
    if not table:
        print(f"no *_summary.json found in {args.results}", file=sys.stderr)
        return 1
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
