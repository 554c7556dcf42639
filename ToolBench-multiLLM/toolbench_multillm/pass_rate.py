"""ToolEval pass rate of one group: each answer labelled Solved / Unsolved / Unsure, ``evaluate_times``
times, by the LLM judge (DESIGN §4.4); and the per-query pass decisions the win rate reads back.

    alpha-umi tooleval pass-rate --converted_answer_path output_res/converted/alpha-umi --model_name alpha-umi \
                                 --test_ids data/toolbench/test_query_ids --save_path pass_rate_results/alpha-umi
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from toolbench_multillm.convert import ConvertedAnswer, has_finish
from toolbench_multillm.judge import SCORES, UNSOLVED, Judge, JudgeUnavailable
from toolbench_multillm.labels import JobResult, LabelStore, answer_digest, run_jobs

log = logging.getLogger(__name__)


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

    def work(qid: str, r: int) -> JobResult:
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
