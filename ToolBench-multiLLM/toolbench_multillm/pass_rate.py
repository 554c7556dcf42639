"""ToolEval pass rate of one group: each answer labelled Solved / Unsolved / Unsure, ``evaluate_times``
times, by the LLM judge (DESIGN §4.4); the same rate split into answers with and without simulated
observations (converted answers' ``simulated_observations``); and the per-query pass decisions the win
rate reads back.

    alpha-umi tooleval pass-rate --converted_answer_path output_res/converted/alpha-umi --model_name alpha-umi \
                                 --test_ids data/toolbench/test_query_ids --save_path pass_rate_results/alpha-umi
"""

from __future__ import annotations

import logging
from pathlib import Path

from toolbench_multillm.convert import ConvertedAnswer, has_finish
from toolbench_multillm.judge import SCORES, UNSOLVED, UNSURE, Judge, JudgeUnavailable
from toolbench_multillm.labels import (
    ERROR,
    JobResult,
    LabelStore,
    Progress,
    answer_digest,
    average_over_groups,
    poisoned,
    read_label_file,
    run_jobs,
    summarise,
)

log = logging.getLogger(__name__)


def pass_rate_group(
    answers: dict[str, ConvertedAnswer],
    ids: list[str],
    store: LabelStore,
    judge: Judge | None,
    evaluate_times: int,
    threads: int,
    progress: Progress | None = None,
) -> None:
    """Label every (query, repeat) not yet in ``store``; answers without Finish are Unsolved unasked.

    Ids without an answer (only present with ``--missing_as_unsolved``) are Unsolved too. An answer that
    cannot be rendered or judged (a poison item: any error but the judge's outage) is Unsure, flagged
    ``decided_by: "error"`` with the reason, and the run goes on.
    """
    jobs = []
    for qid in ids:
        entry = answers.get(qid)
        store.sync(qid, answer_digest(entry) if entry else "missing")
        try:
            finished = entry is not None and has_finish(entry["answer"])
            problem = None
        except Exception as e:  # a poison answer must not stop the group
            finished, problem = False, f"{type(e).__name__}: {e}"[:300]
        for r in range(evaluate_times):
            if store.has(qid, r):
                continue
            if entry is None:
                store.set(qid, r, UNSOLVED, 0.0, "missing", "no answer for this query")
            elif problem is not None:
                store.set(qid, r, UNSURE, SCORES[UNSURE], ERROR, poisoned(store, qid, r, problem))
            elif not finished:  # paper parity: a Finish that gives up is still judged
                store.set(qid, r, UNSOLVED, 0.0, "no_finish", "no Finish step")
            else:
                jobs.append((qid, r))
    if progress is not None:
        total = len(ids) * evaluate_times
        progress.start(total, total - len(jobs), len(jobs))

    def work(qid: str, r: int) -> JobResult:
        if judge is None:
            raise JudgeUnavailable("no judge configured")
        try:
            v = judge.judge_solved(answers[qid]["query"], answers[qid]["answer"])
        except JudgeUnavailable:
            raise
        except Exception as e:  # fixes: one answer that failed to render or send stopped the whole run
            reason = poisoned(store, qid, r, judge.describe_error(e))
            return qid, r, UNSURE, SCORES[UNSURE], ERROR, reason, {}
        return qid, r, v.label, SCORES[v.label], "malformed" if v.malformed else "judge", v.reason, {}

    run_jobs(store, jobs, work, threads, progress)


def read_pass_decisions(path: Path | None) -> dict[str, bool]:
    """Per-query pass decision from a pass-rate label file: mean score ≥ 0.5 (ToolEval: ties pass).

    An absent file gives no decisions (the judge decides); a corrupt one raises a one-line FormatError.
    """
    if path is None or not path.exists():
        if path is not None:
            log.warning("%s: no pass-rate labels; the judge decides every query of this group", path)
        return {}
    queries = read_label_file(path, fields=("score",))["queries"]
    out = {}
    for qid, rec in queries.items():
        scores = [e["score"] for e in rec["repeats"].values()]
        if scores:
            out[qid] = sum(scores) / len(scores) >= 0.5
    return out


#: The parts of a group split by provenance: answers whose judged chain holds simulated observations,
#: answers without any, and answers whose files record no provenance (made by other tools or older runs).
SIMULATION_SPLIT = ("with_simulated", "without_simulated", "unknown_provenance")


def split_by_simulation(answers: dict[str, ConvertedAnswer], ids: list[str]) -> dict[str, list[str]]:
    """``ids`` by :data:`SIMULATION_SPLIT` (an id without an answer has unknown provenance)."""
    parts: dict[str, list[str]] = {name: [] for name in SIMULATION_SPLIT}
    for qid in ids:
        n = (answers.get(qid) or {}).get("simulated_observations")
        parts[
            "unknown_provenance" if n is None else "with_simulated" if n > 0 else "without_simulated"
        ].append(qid)
    return parts


def summarise_by_simulation(
    store: LabelStore, answers: dict[str, ConvertedAnswer], ids: list[str], evaluate_times: int
) -> dict:
    """The group's pass rate over each part of :func:`split_by_simulation` (``summarise`` of those ids)."""
    return {
        name: summarise(store, part, evaluate_times)
        for name, part in split_by_simulation(answers, ids).items()
    }


def average_by_simulation(groups: dict[str, dict]) -> dict:
    """The Average column of each part (groups without a ``by_simulation`` split are left out)."""
    return {
        name: average_over_groups(
            {g: s["by_simulation"][name] for g, s in groups.items() if "by_simulation" in s}
        )
        for name in SIMULATION_SPLIT
    }


def simulation_lines(group: dict) -> list[str]:
    """Printed lines under a group's pass rate: its rate with and without simulated observations."""
    lines = []
    for name, part in group.get("by_simulation", {}).items():
        if part["n_queries"]:
            cell = "–" if part["mean"] is None else f"{part['mean']:.1f} ± {part['std']:.1f}"
            lines.append(f"    {name.replace('_', ' '):<20} {cell:>14}  n={part['n_queries']}")
    return lines
