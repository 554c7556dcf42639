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
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import statistics
import sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from toolbench_multillm.convert import (
    ConvertedAnswer,
    convert_answer_dir,
    has_finish,
    read_converted,
    write_json_atomic,
    write_text_atomic,
)
from toolbench_multillm.judge import SCORES, UNSOLVED, Judge, JudgeConfig, JudgeUnavailable, load_api_keys

log = logging.getLogger("toolbench_multillm.tooleval")

TEST_SETS = ["G1_instruction", "G1_category", "G1_tool", "G2_category", "G2_instruction", "G3_instruction"]
#: paper Table 2 column order and headers
TABLE_GROUPS = [
    ("G1_instruction", "I1-Inst."),
    ("G1_tool", "I1-Tool"),
    ("G1_category", "I1-Cat."),
    ("G2_instruction", "I2-Inst."),
    ("G2_category", "I2-Cat."),
    ("G3_instruction", "I3-Inst."),
]
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


def answer_digest(entry: ConvertedAnswer) -> str:
    """Fingerprint of an answer: stored labels are dropped when the answer they judged has changed."""
    blob = json.dumps(entry.get("answer"), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def public_url(url: str) -> str:
    """A base URL without user:password, safe to write into result files."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# ----------------------------------------------------------------------------- label files


class LabelStore:
    """Per-query, per-repeat labels of one group, saved as JSON + TSV after every change.

    JSON: ``{"meta": {...}, "queries": {qid: {"digest", "repeats": {"<r>": {label, score, by, reason}}}}}``
    """

    TSV_FIELDS = ["query_id", "repeat", "label", "score", "decided_by", "reason"]

    def __init__(self, json_path: Path, meta: dict, overwrite: bool = False):
        self.json_path = json_path
        self.tsv_path = json_path.with_suffix(".tsv")
        self.meta = meta
        self.queries: dict[str, dict] = {}
        if json_path.is_file() and not overwrite:
            with open(json_path, encoding="utf-8") as f:
                stored = json.load(f)
            if not isinstance(stored.get("queries"), dict):
                raise ValueError(f"{json_path}: missing field 'queries' (not a label file of this tool?)")
            self.queries = stored["queries"]
            old = stored.get("meta", {}).get("judge_model")
            if old and old != meta.get("judge_model"):
                log.warning(
                    "%s: resuming labels made by judge %s with judge %s", json_path, old, meta["judge_model"]
                )

    def sync(self, qid: str, digest: str) -> None:
        record = self.queries.setdefault(qid, {"digest": digest, "repeats": {}})
        if record.get("digest") != digest:
            log.warning("%s: answer of query %s changed; judging it again", self.json_path, qid)
            self.queries[qid] = {"digest": digest, "repeats": {}}

    def has(self, qid: str, repeat: int) -> bool:
        return str(repeat) in self.queries.get(qid, {}).get("repeats", {})

    def set(
        self, qid: str, repeat: int, label: str, score: float, by: str, reason: str, **extra: Any
    ) -> None:
        entry = {"label": label, "score": score, "decided_by": by, "reason": reason, **extra}
        self.queries[qid]["repeats"][str(repeat)] = entry

    def scores(self, qid: str) -> dict[int, float]:
        return {int(r): e["score"] for r, e in self.queries.get(qid, {}).get("repeats", {}).items()}

    def save(self) -> None:
        write_json_atomic(self.json_path, {"meta": self.meta, "queries": self.queries}, indent=1)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(self.TSV_FIELDS)
        for qid, record in self.queries.items():
            for r, e in sorted(record["repeats"].items(), key=lambda kv: int(kv[0])):
                reason = " ".join(str(e.get("reason", "")).split())
                writer.writerow([qid, r, e["label"], e["score"], e["decided_by"], reason])
        write_text_atomic(self.tsv_path, buf.getvalue())


def summarise(store: LabelStore, ids: list[str], evaluate_times: int) -> dict:
    """Mean and population std over repeats of the per-repeat mean score over ``ids``, in percent."""
    per_repeat = []
    for r in range(evaluate_times):
        scores = [store.scores(q).get(r) for q in ids]
        if ids and all(s is not None for s in scores):
            per_repeat.append(100.0 * sum(scores) / len(scores))
    entries = [e for q in ids for e in store.queries.get(q, {}).get("repeats", {}).values()]
    return {
        "mean": statistics.fmean(per_repeat) if per_repeat else None,
        "std": statistics.pstdev(per_repeat) if per_repeat else None,
        "per_repeat": per_repeat,
        "n_queries": len(ids),
        "complete": len(per_repeat) == evaluate_times,
        "decided_by": {
            by: sum(e["decided_by"] == by for e in entries)
            for by in sorted({e["decided_by"] for e in entries})
        },
        "labels": {
            lab: sum(e["label"] == lab for e in entries) for lab in sorted({e["label"] for e in entries})
        },
    }


def average_over_groups(groups: dict[str, dict]) -> dict:
    """Paper's Average column: the mean of group means; std over repeats of the per-repeat group average."""
    done = [g for g in groups.values() if g["complete"]]
    if not done:
        return {"mean": None, "std": None}
    n = min(len(g["per_repeat"]) for g in done)
    avg = [statistics.fmean(g["per_repeat"][r] for g in done) for r in range(n)]
    return {"mean": statistics.fmean(avg), "std": statistics.pstdev(avg), "groups": len(done)}


def run_jobs(store: LabelStore, jobs: list[tuple], work, threads: int) -> None:
    """Run ``work(*job) -> (qid, repeat, label, score, by, reason, extra)`` on a bounded pool.

    Each result is stored and saved as soon as it arrives; on an error (or Ctrl-C) pending jobs are
    cancelled, answers already received are still saved, and the error is raised.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, threads))
    futures = [pool.submit(work, *job) for job in jobs]
    stored: set = set()

    def store_done(done) -> None:
        for fut in done:
            if fut not in stored and fut.done() and not fut.cancelled() and fut.exception() is None:
                qid, r, label, score, by, reason, extra = fut.result()
                store.set(qid, r, label, score, by, reason, **extra)
                stored.add(fut)
        store.save()

    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            store_done(done)
            for fut in done:
                if fut.exception() is not None:
                    raise fut.exception()
        store.save()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        store_done(futures)


# ----------------------------------------------------------------------------- pass rate


def pass_rate_group(
    answers: dict[str, ConvertedAnswer],
    ids: list[str],
    store: LabelStore,
    judge: Judge | None,
    evaluate_times: int,
    threads: int,
) -> None:
    """Label every (query, repeat) not yet in ``store``; answers without Finish are Unsolved unasked.

    Ids without an answer (only present with ``--missing_as_unsolved``) are Unsolved too.
    """
    jobs = []
    for qid in ids:
        entry = answers.get(qid)
        store.sync(qid, answer_digest(entry) if entry else "missing")
        for r in range(evaluate_times):
            if store.has(qid, r):
                continue
            if entry is None:
                store.set(qid, r, UNSOLVED, 0.0, "missing", "no answer for this query")
            elif not has_finish(entry["answer"]):  # paper parity: a Finish that gives up is still judged
                store.set(qid, r, UNSOLVED, 0.0, "no_finish", "no Finish step")
            else:
                jobs.append((qid, r))

    def work(qid: str, r: int) -> tuple:
        if judge is None:
            raise JudgeUnavailable("no judge configured")
        v = judge.judge_solved(answers[qid]["query"], answers[qid]["answer"])
        return qid, r, v.label, SCORES[v.label], "malformed" if v.malformed else "judge", v.reason, {}

    run_jobs(store, jobs, work, threads)


def read_pass_decisions(path: Path | None) -> dict[str, bool]:
    """Per-query pass decision from a pass-rate label file: mean score ≥ 0.5 (ToolEval: ties pass)."""
    if path is None or not path.is_file():
        if path is not None:
            log.warning("%s: no pass-rate labels; the judge decides every query", path)
        return {}
    with open(path, encoding="utf-8") as f:
        queries = json.load(f).get("queries", {})
    out = {}
    for qid, rec in queries.items():
        scores = [e["score"] for e in rec.get("repeats", {}).values()]
        if scores:
            out[qid] = sum(scores) / len(scores) >= 0.5
    return out


# ----------------------------------------------------------------------------- win rate


def win_rate_group(
    candidate: dict[str, ConvertedAnswer],
    reference: dict[str, ConvertedAnswer],
    ids: list[str],
    store: LabelStore,
    judge: Judge | None,
    evaluate_times: int,
    threads: int,
    candidate_pass: dict[str, bool] | None = None,
    reference_pass: dict[str, bool] | None = None,
) -> None:
    """Candidate vs reference per (query, repeat): pass labels decide when they differ, else the judge.

    The judge sees the candidate as answer A in even repeats and as answer B in odd ones, so a judge that
    always prefers one position scores 50 %.
    """
    jobs = []
    for qid in ids:
        cand_ok = (candidate_pass or {}).get(qid)
        ref_ok = (reference_pass or {}).get(qid)
        # labels are redone when either answer or either pass decision changes
        store.sync(qid, f"{answer_digest(candidate[qid])}-{answer_digest(reference[qid])}-{cand_ok}-{ref_ok}")
        for r in range(evaluate_times):
            if store.has(qid, r):
                continue
            if cand_ok is not None and ref_ok is not None and cand_ok != ref_ok:
                label = "candidate" if cand_ok else "reference"
                store.set(qid, r, label, 1.0 if cand_ok else 0.0, "pass_rate", "only one answer passed")
            else:
                jobs.append((qid, r))

    def work(qid: str, r: int) -> tuple:
        if judge is None:
            raise JudgeUnavailable("no judge configured")
        cand_first = r % 2 == 0
        a, b = (candidate[qid], reference[qid]) if cand_first else (reference[qid], candidate[qid])
        v = judge.judge_preference(candidate[qid]["query"], a["answer"], b["answer"])
        if v.label == "tie":
            label, score = "tie", 0.5
        else:
            cand_won = (v.label == "A") == cand_first
            label, score = ("candidate", 1.0) if cand_won else ("reference", 0.0)
        by = "malformed" if v.malformed else "judge"
        return qid, r, label, score, by, v.reason, {"candidate_shown_as": "A" if cand_first else "B"}

    run_jobs(store, jobs, work, threads)


# ----------------------------------------------------------------------------- report


def load_summaries(paths: list[str]) -> dict[str, dict[str, dict]]:
    """``{model: {"pass_rate": summary, "win_rate": summary}}`` from summary files or folders of them."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*_summary.json")) if p.is_dir() else [p]
    table: dict[str, dict[str, dict]] = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            s = json.load(fh)
        if s.get("metric") not in ("pass_rate", "win_rate") or "model" not in s:
            raise ValueError(f"{f}: missing field 'metric' or 'model' (not a ToolEval summary)")
        table.setdefault(s["model"], {})[s["metric"]] = s
    return table


def _cell(summary: dict | None, group: str | None) -> str:
    if not summary:
        return "–"
    g = summary["average"] if group is None else summary["groups"].get(group)
    if not g or g.get("mean") is None:
        return "–"
    text = f"{g['mean']:.1f}" + (f" ± {g['std']:.1f}" if g.get("std") is not None else "")
    if group is None and g.get("groups", len(TABLE_GROUPS)) < len(TABLE_GROUPS):
        text += f" ({g['groups']}/{len(TABLE_GROUPS)} groups)"
    return text


def render_table(table: dict[str, dict[str, dict]]) -> str:
    """Paper Table 2 as markdown: one row per model; Pass and Win per group, then the average."""
    cols = TABLE_GROUPS + [(None, "Average")]
    header = ["Model"] + [f"{name} {m}" for _, name in cols for m in ("Pass", "Win")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, metrics in table.items():
        cells = [model]
        for group, _ in cols:
            cells += [_cell(metrics.get("pass_rate"), group), _cell(metrics.get("win_rate"), group)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_chart(table: dict[str, dict[str, dict]], path: Path) -> None:
    """Grouped bars (one per model) for pass rate and win rate per group, with std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = TABLE_GROUPS + [(None, "Average")]
    models = list(table)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(cols)), 7), sharex=True)
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes, ("pass_rate", "win_rate")):
        for i, model in enumerate(models):
            s = table[model].get(metric)
            vals, errs = [], []
            for group, _ in cols:
                g = (s["average"] if group is None else s["groups"].get(group)) if s else None
                vals.append(g["mean"] if g and g.get("mean") is not None else 0.0)
                errs.append(g.get("std") or 0.0 if g else 0.0)
            xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(cols))]
            ax.bar(xs, vals, width, yerr=errs, capsize=2, label=model)
        ax.set_ylabel(("Pass" if metric == "pass_rate" else "Win") + " rate (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=min(4, max(1, len(models))))
    axes[-1].set_xticks(range(len(cols)), [name for _, name in cols])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
        log.warning(
            "no API key (OPENAI_API_KEY / --api_pool_file); calling %s without one", args.judge_base_url
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
        print(f"  {group:<16} {_cell(summary, group):>14}  n={g['n_queries']}  {g['labels']}")
    print(f"  {'Average':<16} {_cell(summary, None):>14}")
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


def _ids_and_answers(
    args, group: str, sources: list[tuple[str, str | None]], keep_missing: bool = False
) -> tuple[list[str], list] | None:
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
            try:
                pass_rate_group(answers, ids, store, judge, args.evaluate_times, args.max_eval_threads)
            except (JudgeUnavailable, KeyboardInterrupt) as e:
                print(f"stopped: {e}\nlabels so far are saved in {save}; rerun to resume", file=sys.stderr)
                return 1
            summary["groups"][group] = summarise(store, ids, args.evaluate_times)
        return _finish(args, summary, save / f"{model}_pass_rate_summary.json", judge)


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
            try:
                win_rate_group(
                    cand_answers,
                    ref_answers,
                    ids,
                    store,
                    judge,
                    args.evaluate_times,
                    args.max_eval_threads,
                    *pass_files,
                )
            except (JudgeUnavailable, KeyboardInterrupt) as e:
                print(f"stopped: {e}\nlabels so far are saved in {save}; rerun to resume", file=sys.stderr)
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
