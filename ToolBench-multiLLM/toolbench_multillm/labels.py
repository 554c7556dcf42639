"""ToolEval label files: per-query, per-repeat labels saved after every label, the job runner that fills
them, and the statistics over repeats.

A label file is ``<save_path>/<group>_<model>.json`` (win rate: ``<group>_<cand>_vs_<ref>.json``) plus a
TSV twin for reading by eye. Scores: Solved = 1, Unsure = 0.5, Unsolved = 0 (win: candidate preferred
= 1, tie = 0.5). A rate is the mean over queries for each repeat; we report mean ± population std over
the repeats, in percent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TextIO

from glpft.formats import FormatError, read_json, write_json_atomic, write_text_atomic
from toolbench_multillm.convert import ConvertedAnswer

log = logging.getLogger(__name__)

#: what a judge job returns: (query_id, repeat, label, score, decided_by, reason, extra fields)
JobResult = tuple[str, int, str, float, str, str, dict[str, Any]]


#: ``decided_by`` of a label given because the answer could not be rendered or judged (a poison item)
ERROR = "error"


def answer_digest(entry: ConvertedAnswer) -> str:
    """Fingerprint of an answer: stored labels are dropped when the answer they judged has changed.

    Never raises: an answer that cannot be serialised (nested past the recursion limit …) gets a fixed
    digest, so its labels are kept on rerun instead of failing at the same item again.
    """
    try:
        blob = json.dumps(entry.get("answer"), sort_keys=True, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return "unserialisable"
    return hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_label_file(path: Path, fields: tuple[str, ...] = ("label", "score", "decided_by")) -> dict:
    """A label file's ``{"meta", "queries"}``, checked: every repeat entry has ``fields`` (score a number).

    Errors are one-line FormatErrors naming the file, the query and the field.
    """
    stored = read_json(path, expect=dict)
    queries = stored.get("queries")
    if not isinstance(queries, dict):
        raise FormatError(
            f"{path}: missing field 'queries' (not a label file of this tool?)", "missing 'queries'"
        )
    if not isinstance(stored.setdefault("meta", {}), dict):
        raise FormatError(f"{path}: field 'meta' should be an object", "bad 'meta'")
    for qid, record in queries.items():
        repeats = record.get("repeats") if isinstance(record, dict) else None
        if not isinstance(repeats, dict):
            raise FormatError(f"{path}: query {qid}: missing field 'repeats'", "missing 'repeats'")
        for r, entry in repeats.items():
            if not r.isdecimal() or not isinstance(entry, dict):
                raise FormatError(f"{path}: query {qid}: repeat {r!r} should be a number with an object")
            for name in fields:
                value = entry.get(name)
                if value is None or (name == "score" and not _is_number(value)):
                    kind = "a number" if name == "score" else "present"
                    raise FormatError(f"{path}: query {qid}: repeat {r}: field '{name}' should be {kind}")
    return stored


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
        if json_path.exists() and not overwrite:
            stored = read_label_file(json_path)
            self.queries = stored["queries"]
            old = stored["meta"].get("judge_model")
            if old and old != meta.get("judge_model"):
                log.warning(
                    "%s: resuming labels made by judge %s with judge %s", json_path, old, meta["judge_model"]
                )

    def sync(self, qid: str, digest: str) -> None:
        """Start a record for ``qid``; drop its labels when they were made for another answer."""
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
        """Write the JSON and the TSV, each atomically."""
        write_json_atomic(self.json_path, {"meta": self.meta, "queries": self.queries}, indent=1)
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
        writer.writerow(self.TSV_FIELDS)
        for qid, record in self.queries.items():
            for r, e in sorted(record["repeats"].items(), key=lambda kv: int(kv[0])):
                reason = " ".join(str(e.get("reason", "")).split())
                writer.writerow([qid, r, e["label"], e["score"], e["decided_by"], reason])
        text = buf.getvalue()
        # a lone surrogate in a reason or id is written escaped (the JSON twin has the exact text)
        write_text_atomic(self.tsv_path, text.encode("utf-8", "backslashreplace").decode("utf-8"))


class Progress:
    """``<name>: done/total labels`` lines on stderr as labels arrive: the first, then at most one every
    ``every`` seconds, and the last — so a person can follow a long judge run."""

    def __init__(self, name: str, every: float = 5.0, stream: TextIO | None = None):
        self.name = name
        self.every = every
        self.stream = stream
        self.done = self.total = 0
        self._last = 0.0

    def _print(self, text: str) -> None:
        print(f"{self.name}: {text}", file=self.stream or sys.stderr, flush=True)
        self._last = time.monotonic()

    def start(self, total: int, done: int, to_ask: int) -> None:
        self.total, self.done = total, done
        ask = f"asking the judge for {to_ask}" if to_ask else "nothing to ask the judge"
        self._print(f"{done}/{total} labels ({done} saved or decided without the judge); {ask}")

    def advance(self, n: int) -> None:
        if n <= 0:
            return
        self.done += n
        if self.done >= self.total or time.monotonic() - self._last >= self.every:
            self._print(f"{self.done}/{self.total} labels")


def poisoned(store: LabelStore, qid: str, repeat: int, reason: str) -> str:
    """Log that one answer could not be rendered or judged; the reason its fallback label carries."""
    log.warning(
        "%s: query %s repeat %d could not be judged (%s); counted as Unsure/tie",
        store.json_path.name,
        qid,
        repeat,
        reason,
    )
    return f"could not be judged: {reason}"


def run_jobs(
    store: LabelStore,
    jobs: list[tuple],
    work: Callable[..., JobResult],
    threads: int,
    progress: Progress | None = None,
) -> None:
    """Run ``work(*job) -> JobResult`` on a bounded pool.

    Each result is stored and saved as soon as it arrives; on an error (or Ctrl-C) pending jobs are
    cancelled, answers already received are still saved, and the error is raised.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, threads))
    futures = [pool.submit(work, *job) for job in jobs]
    stored: set[Future] = set()

    def store_done(done: Iterable[Future]) -> None:
        new = 0
        for fut in done:
            if fut not in stored and fut.done() and not fut.cancelled() and fut.exception() is None:
                qid, r, label, score, by, reason, extra = fut.result()
                store.set(qid, r, label, score, by, reason, **extra)
                stored.add(fut)
                new += 1
        store.save()
        if progress is not None:
            progress.advance(new)

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
