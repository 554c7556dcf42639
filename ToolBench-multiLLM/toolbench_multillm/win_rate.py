"""ToolEval win rate of one group: a candidate's answers against the reference's (ChatGPT CoT), pass-rate
labels first, then the LLM judge's preference (DESIGN §4.4).

    alpha-umi tooleval win-rate --candidate_converted_path output_res/converted/alpha-umi --candidate_model alpha-umi \
                                --candidate_pass_rate_path pass_rate_results/alpha-umi \
                                --reference_pass_rate_path pass_rate_results/chatgpt_cot \
                                --test_ids data/toolbench/test_query_ids --save_path win_rate_results
"""

from __future__ import annotations

from toolbench_multillm.convert import ConvertedAnswer
from toolbench_multillm.judge import Judge, JudgeUnavailable
from toolbench_multillm.labels import (
    ERROR,
    JobResult,
    LabelStore,
    Progress,
    answer_digest,
    poisoned,
    run_jobs,
)


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
    progress: Progress | None = None,
) -> None:
    """Candidate vs reference per (query, repeat): pass labels decide when they differ, else the judge.

    The judge sees the candidate as answer A in even repeats and as answer B in odd ones, so a judge that
    always prefers one position scores 50 %. A pair that cannot be rendered or judged (a poison item:
    any error but the judge's outage) is a tie, flagged ``decided_by: "error"``, and the run goes on.
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
    if progress is not None:
        total = len(ids) * evaluate_times
        progress.start(total, total - len(jobs), len(jobs))

    def work(qid: str, r: int) -> JobResult:
        if judge is None:
            raise JudgeUnavailable("no judge configured")
        cand_first = r % 2 == 0
        shown = {"candidate_shown_as": "A" if cand_first else "B"}
        a, b = (candidate[qid], reference[qid]) if cand_first else (reference[qid], candidate[qid])
        try:
            v = judge.judge_preference(candidate[qid]["query"], a["answer"], b["answer"])
        except JudgeUnavailable:
            raise
        except Exception as e:  # fixes: one pair that failed to render or send stopped the whole run
            return qid, r, "tie", 0.5, ERROR, poisoned(store, qid, r, judge.describe_error(e)), shown
        if v.label == "tie":
            label, score = "tie", 0.5
        else:
            cand_won = (v.label == "A") == cand_first
            label, score = ("candidate", 1.0) if cand_won else ("reference", 0.0)
        by = "malformed" if v.malformed else "judge"
        return qid, r, label, score, by, v.reason, shown

    run_jobs(store, jobs, work, threads, progress)
