"""Raw ToolBench answers → stage 1 → stage 2 → the four GLPFT role datasets (train_<role>.json).

    alpha-umi prepro --data-dir data/toolbench --out-dir data/glpft [--num-proc 8]
    alpha-umi prepro --stage1-file data/glpft/raw_data/raw_data_stage_1.json --out-dir data/glpft
    alpha-umi prepro --stage2-file data/glpft/raw_data/raw_data_stage_2.json --out-dir data/glpft

Writes ``<out>/raw_data/raw_data_stage_{1,2}.json`` and ``<out>/train_{backbone,planner,caller,summarizer}.json``
as JSON lists byte-compatible with the original pipeline. Trajectories stream through one at a time
(bounded batches when ``--num-proc`` > 1), so memory does not grow with the size of the answer set.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import Pool
from typing import Any

from tqdm import tqdm

from glpft import prompts as P
from glpft.formats import (
    FormatError,
    JsonListWriter,
    RoleSample,
    Stage1Record,
    Stage2Record,
    Turn,
    check_stage2,
    check_tools,
    dumps_row,
    iter_json_list,
    read_json,
    require,
)
from glpft.parsing import FINISH_NAME, observation_from_content, parse_finish

logger = logging.getLogger(__name__)

#: How an assistant message without a function call is handled (see stage2_from_stage1).
TEXT_ONLY_POLICIES = ("drop", "merge")


# --- stage 1 ---------------------------------------------------------------------------------


def stage1_from_answer(answer: Any, where: str) -> Stage1Record:
    """One ToolBench answer file's content → a stage-1 record (the last train_messages chain)."""
    gen = require(answer, "answer_generation", dict, where)
    if "train_messages" not in gen:
        raise FormatError(
            f"{where}: missing field 'answer_generation.train_messages'", "missing 'train_messages'"
        )
    messages = gen["train_messages"]
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], list):
        raise FormatError(
            f"{where}: 'answer_generation.train_messages' should be a non-empty list of message lists",
            "bad 'train_messages'",
        )
    query = require(gen, "query", str, where)
    functions = require(gen, "function", list, where)
    tools = [
        P.tool_entry(f, f"{where}: function[{i}]")
        for i, f in enumerate(functions)
        if not (isinstance(f, dict) and f.get("name") == FINISH_NAME)
    ]
    return {"tools": tools, "instruction": query, "chains": messages[-1]}


# --- stage 2 ---------------------------------------------------------------------------------


def stage2_from_stage1(
    record: Stage1Record, where: str, text_only: str = "drop", stats: Counter | None = None
) -> Stage2Record:
    """A stage-1 record → role-tagged conversation (DESIGN §3.3).

    An assistant message without a function call carries no route, so it cannot become a planner,
    caller or backbone step. The original dropped it without a word; we count it in the summary and,
    with ``text_only="merge"``, keep its text by prepending it to the next assistant message's thought.
    The default ``drop`` keeps byte parity with the published data.
    """
    stats = stats if stats is not None else Counter()
    instruction = require(record, "instruction", str, where)
    chains = require(record, "chains", list, where)
    conv: list[Turn] = [{"from": "user", "value": instruction}]
    pending = ""
    for i, msg in enumerate(chains[2:], start=2):
        at = f"{where}: chains[{i}]"
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise FormatError(f"{at}: malformed message (no 'role')", "malformed message")
        role = msg["role"]
        if role == "assistant":
            content = msg.get("content")
            if content is not None and not isinstance(content, str):
                raise FormatError(
                    f"{at}: assistant 'content' should be a string or null", "malformed message"
                )
            call = msg.get("function_call")
            if not call:
                stats["text_only_assistant"] += 1
                if text_only == "merge" and content:
                    pending += content + "\n"
                continue
            if not isinstance(call, dict) or not isinstance(call.get("name"), str) or "arguments" not in call:
                raise FormatError(
                    f"{at}: malformed function_call (needs 'name' and 'arguments')", "malformed message"
                )
            span = pending + (content + "\n" if content is not None else "")
            pending = ""
            if call["name"] == FINISH_NAME:
                finish = parse_finish(call["arguments"], fallback="stage2", content=content)
                if finish.gives_up:
                    conv.append({"from": "assistant", "value": span + " " + P.NEXT_GIVE_UP})
                else:
                    conv.append({"from": "assistant", "value": span + " " + P.NEXT_CONCLUSION})
                    conv.append({"from": "conclusion", "value": finish.final_answer})
            else:
                conv.append({"from": "assistant", "value": span + " " + P.NEXT_CALLER})
                conv.append(
                    {"from": "caller", "value": P.caller_turn(call["name"], P.as_text(call["arguments"]))}
                )
        elif role == "user":
            conv.append({"from": "user", "value": P.as_text(msg.get("content") or "")})
        elif role == "function":
            conv.append({"from": "observation", "value": observation_from_content(msg.get("content"))})
        else:
            stats["other_role_message"] += 1
    return {"tools": record["tools"], "instruction": instruction, "conversations": conv}


# --- role samples ----------------------------------------------------------------------------


def role_samples(
    record: Stage2Record, stats: Counter | None = None, templates: dict[str, str] | None = None
) -> dict[str, list[RoleSample]]:
    """The four GLPFT role datasets' samples of one stage-2 record (DESIGN §3.4); ``templates`` maps a
    role to a prompt-type name (the original scripts' ``--prompt_type``)."""
    stats = stats if stats is not None else Counter()
    tools, conv = record["tools"], record["conversations"]
    out: dict[str, list[RoleSample]] = {r: [] for r in P.MODEL_ROLES}
    # paper parity: training data fills {thought} after {history}, and says "assistant: " for the planner
    prompts = P.RolePrompts(tools, templates, thought_first=False)
    full = P.history_prefixes(conv, "full")  # planner, summarizer
    caller = P.history_prefixes(conv, "caller")  # hallucinated caller turns left out
    backbone = P.history_prefixes(conv, "backbone")  # merged thought + action turns

    def add(role: str, i: int, history: str, target: str, thought: str | None = None) -> None:
        text = prompts.build(role, history, thought).text
        out[role].append({"tools": tools, "history": conv[:i], "input": text, "target": target})

    for i, turn in enumerate(conv):
        speaker, value = turn["from"], turn["value"]
        nxt = conv[i + 1]["from"] if i + 1 < len(conv) else None
        if speaker == "assistant":
            give_up = P.NEXT_GIVE_UP in value
            hallucinated = nxt == "caller" and P.HALLUCINATED_CALL in conv[i + 1]["value"]
            routed = give_up or nxt in ("conclusion", "caller")
            if routed and not hallucinated:
                add("planner", i, full[i], value)
                if nxt != "caller":
                    stats["give_up" if give_up else "finish"] += 1
            elif not routed:
                stats["assistant_without_route"] += 1
            if routed:
                # fixes: the original reused the previous step's (stale) prompt for give-up samples
                # and crashed when give-up was the very first step; every prompt is built from this
                # step's own history.
                add("backbone", i, backbone[i], P.backbone_target(conv, i))
        elif speaker == "caller" and P.HALLUCINATED_CALL not in value:
            add("caller", i, caller[i - 1], value, thought=conv[i - 1]["value"])
        elif speaker == "conclusion" and value != "none":
            add("summarizer", i, full[i - 1], value, thought=conv[i - 1]["value"])
    return out


# --- driver ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one trajectory produced: rows already serialised, so workers do the JSON encoding."""

    stage1: str | None = None
    stage2: str | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    stats: Counter = field(default_factory=Counter)
    skipped: tuple[str, str] | None = None  # (reason, one-line message)
    excluded: bool = False


@dataclass(frozen=True)
class Options:
    """What every worker needs to know besides its input (picklable for ``--num-proc``)."""

    text_only: str = "drop"
    test_ids: frozenset[str] | None = None
    templates: tuple[tuple[str, str], ...] = ()
    outputs: frozenset[str] = frozenset(("stage1", "stage2", *P.MODEL_ROLES))


def _samples(stage2: Stage2Record, opts: Options, out: Outcome) -> Outcome:
    roles = [r for r in P.MODEL_ROLES if r in opts.outputs]
    if roles:
        samples = role_samples(stage2, out.stats, dict(opts.templates) or None)
        out.samples = {r: [dumps_row(s) for s in samples[r]] for r in roles}
    return out


def _finish(stage1: Stage1Record, stage2_where: str, opts: Options, keep_stage1: bool) -> Outcome:
    out = Outcome()
    stage2 = stage2_from_stage1(stage1, stage2_where, opts.text_only, out.stats)
    out.stage1 = dumps_row(stage1) if keep_stage1 and "stage1" in opts.outputs else None
    out.stage2 = dumps_row(stage2) if "stage2" in opts.outputs else None
    return _samples(stage2, opts, out)


def process_answer_file(task: tuple[str, Options]) -> Outcome:
    """Read, validate and convert one raw answer file (runs in worker processes)."""
    path, opts = task
    if opts.test_ids is not None and os.path.basename(path).split("_")[0] in opts.test_ids:
        return Outcome(excluded=True)
    try:
        answer = read_json(path)
        return _finish(stage1_from_answer(answer, path), path, opts, keep_stage1=True)
    except FormatError as e:
        return Outcome(skipped=(e.reason, str(e)))


def process_stage1_record(task: tuple[Any, str, Options]) -> Outcome:
    record, where, opts = task
    try:
        check_tools(require(record, "tools", list, where), where)
        return _finish(record, where, opts, keep_stage1=False)
    except FormatError as e:
        return Outcome(skipped=(e.reason, str(e)))


def process_stage2_record(task: tuple[Any, str, Options]) -> Outcome:
    record, where, opts = task
    try:
        out = Outcome()
        return _samples(check_stage2(record, where), opts, out)
    except FormatError as e:
        return Outcome(skipped=(e.reason, str(e)))


def list_answer_files(data_dir: str) -> list[str]:
    """``<data>/answer/<group>/*.json`` in sorted group, then sorted file-name order."""
    answer_dir = os.path.join(data_dir, "answer")
    if not os.path.isdir(answer_dir):
        raise FormatError(f"{answer_dir}: no such directory (expected <data-dir>/answer/G*_answer/*.json)")
    files = []
    for group in sorted(os.listdir(answer_dir)):
        gdir = os.path.join(answer_dir, group)
        if os.path.isdir(gdir):
            files += [os.path.join(gdir, f) for f in sorted(os.listdir(gdir)) if f.endswith(".json")]
    return files


def load_test_ids(ids_dir: str) -> frozenset[str]:
    """Query ids to exclude: the keys of every ``<ids_dir>/*.json`` object."""
    if not os.path.isdir(ids_dir):
        raise FormatError(
            f"{ids_dir}: test query ids not found (pass --test-ids-dir, or --no-test-exclusion to keep every query)"
        )
    ids: set[str] = set()
    for name in sorted(os.listdir(ids_dir)):
        if name.endswith(".json"):
            obj = read_json(os.path.join(ids_dir, name), expect=(dict, list))
            ids.update(str(k) for k in obj)
    return frozenset(ids)


def _batched(it: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(it)
    while batch := list(itertools.islice(it, n)):
        yield batch


@dataclass
class Summary:
    read: int = 0
    kept: int = 0
    excluded: int = 0
    skipped: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    samples: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        rows = [
            ("trajectories read", self.read),
            ("kept", self.kept),
            ("test ids excluded", self.excluded),
            ("skipped (bad input)", sum(self.skipped.values())),
        ]
        rows += [(f"  skipped: {k}", v) for k, v in sorted(self.skipped.items())]
        rows += [
            ("finish steps", self.stats["finish"]),
            ("give-up steps", self.stats["give_up"]),
            ("text-only assistant messages", self.stats["text_only_assistant"]),
            ("assistant steps without a route", self.stats["assistant_without_route"]),
        ]
        rows += [(f"train_{r} samples", self.samples[r]) for r in P.MODEL_ROLES]
        width = max(len(k) for k, _ in rows)
        return [f"{k:<{width}}  {v}" for k, v in rows]


def default_targets(out_dir: str, raw_dir: str | None = None, source: str = "data_dir") -> dict[str, str]:
    """Where each output goes: ``<raw>/raw_data_stage_{1,2}.json`` and ``<out>/train_<role>.json``
    (no stage-1 file from a stage-1 input, no stage-2 file from a stage-2 input)."""
    raw_dir = raw_dir or os.path.join(out_dir, "raw_data")
    targets = {}
    if source == "data_dir":
        targets["stage1"] = os.path.join(raw_dir, "raw_data_stage_1.json")
    if source != "stage2_file":
        targets["stage2"] = os.path.join(raw_dir, "raw_data_stage_2.json")
    return targets | {r: os.path.join(out_dir, f"train_{r}.json") for r in P.MODEL_ROLES}


def run(
    out_dir: str | None = None,
    data_dir: str | None = None,
    stage1_file: str | None = None,
    test_ids_dir: str | None = None,
    exclude_test_ids: bool = True,
    num_proc: int = 1,
    text_only: str = "drop",
    overwrite: bool = False,
    progress: bool = True,
    raw_dir: str | None = None,
    stage2_file: str | None = None,
    targets: dict[str, str] | None = None,
    templates: dict[str, str] | None = None,
) -> Summary:
    """Run the pipeline from raw answers (``data_dir``), a stage-1 or a stage-2 file; write ``targets``
    (output name → path; default :func:`default_targets`). Bad inputs are logged by path and reason,
    then skipped. ``templates`` maps roles to prompt-type names."""
    sources = {"data_dir": data_dir, "stage1_file": stage1_file, "stage2_file": stage2_file}
    given = [k for k, v in sources.items() if v is not None]
    if len(given) != 1:
        raise ValueError("give exactly one of data_dir, stage1_file or stage2_file")
    if targets is None:
        if out_dir is None:
            raise ValueError("give out_dir or targets")
        targets = default_targets(out_dir, raw_dir, given[0])
    for role, name in (templates or {}).items():
        P.get_template(name)  # one-line error for an unknown prompt type
        if role not in P.MODEL_ROLES:
            raise ValueError(f"unknown role {role!r} for a prompt type")
    opts = Options(
        text_only=text_only, templates=tuple(sorted((templates or {}).items())), outputs=frozenset(targets)
    )
    if data_dir is not None:
        files = list_answer_files(data_dir)
        test_ids = (
            load_test_ids(test_ids_dir or os.path.join(data_dir, "test_query_ids"))
            if exclude_test_ids
            else None
        )
        opts = dataclasses.replace(opts, test_ids=test_ids)
        tasks: Iterable[Any] = ((p, opts) for p in files)
        worker, total = process_answer_file, len(files)
    else:
        source = stage1_file or stage2_file
        worker = process_stage1_record if stage1_file else process_stage2_record
        tasks = ((rec, f"{source}: item[{i}]", opts) for i, rec in enumerate(iter_json_list(source)))
        total = None
    inputs = {os.path.abspath(p) for p in (stage1_file, stage2_file) if p}
    existing = [p for p in targets.values() if os.path.exists(p) and os.path.abspath(p) not in inputs]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: output exists (pass --overwrite to replace it)")

    summary = Summary()
    writers = {k: JsonListWriter(p) for k, p in targets.items()}
    pool = Pool(num_proc) if num_proc > 1 else None
    try:
        bar = tqdm(total=total, unit="traj", desc="prepro", disable=not progress)
        for batch in _batched(tasks, max(1, num_proc) * 16):
            results = pool.map(worker, batch) if pool else map(worker, batch)
            for res in results:
                summary.read += 1
                bar.update(1)
                if res.excluded:
                    summary.excluded += 1
                    continue
                if res.skipped:
                    reason, message = res.skipped
                    summary.skipped[reason] += 1
                    logger.warning("skipped %s", message)
                    continue
                summary.kept += 1
                summary.stats.update(res.stats)
                if res.stage1 is not None:
                    writers["stage1"].write_serialised(res.stage1)
                if res.stage2 is not None:
                    writers["stage2"].write_serialised(res.stage2)
                for role, rows in res.samples.items():
                    for row in rows:
                        writers[role].write_serialised(row)
                    summary.samples[role] += len(rows)
        bar.close()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        if pool:
            pool.close()
            pool.join()
    for w in writers.values():
        w.close()
    return summary


def run_and_report(prog: str, strict: bool = False, **kwargs: Any) -> int:
    """:func:`run` for a command line: the summary table, one-line errors, the exit status."""
    try:
        summary = run(**kwargs)
    except (FormatError, FileExistsError, ValueError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    targets = kwargs.get("targets") or {}
    print(f"outputs in {kwargs.get('out_dir') or ', '.join(targets.values())}")
    if not summary.kept:
        source = kwargs.get("stage1_file") or kwargs.get("stage2_file") or kwargs.get("data_dir")
        print(f"{prog}: error: {source}: no usable trajectory ({summary.read} read)", file=sys.stderr)
        return 1
    return 1 if strict and summary.skipped else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alpha-umi prepro", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data-dir", "--data_dir", help="ToolBench data dir holding answer/G*_answer and test_query_ids/"
    )
    src.add_argument("--stage1-file", "--stage1_file", help="start from an existing raw_data_stage_1.json")
    src.add_argument(
        "--stage2-file", "--stage2_file", help="start from an existing raw_data_stage_2.json (role data only)"
    )
    ap.add_argument("--out-dir", "--out_dir", required=True, help="output dir (raw_data/ and train_*.json)")
    ap.add_argument(
        "--raw-dir", "--raw_dir", help="where raw_data_stage_{1,2}.json go (default <out-dir>/raw_data)"
    )
    ap.add_argument(
        "--test-ids-dir", help="folder of test query id files (default <data-dir>/test_query_ids)"
    )
    ap.add_argument("--no-test-exclusion", action="store_true", help="keep queries of the test sets too")
    ap.add_argument("--num-proc", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument(
        "--text-only-assistant",
        choices=TEXT_ONLY_POLICIES,
        default="drop",
        help="assistant messages without a function call: drop (paper parity, counted) or merge into the next thought",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace existing output files")
    ap.add_argument("--strict", action="store_true", help="exit non-zero when any input was skipped")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.num_proc < 1:
        ap.error("--num-proc must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    return run_and_report(
        "alpha-umi prepro",
        strict=args.strict,
        out_dir=args.out_dir,
        data_dir=args.data_dir,
        stage1_file=args.stage1_file,
        stage2_file=args.stage2_file,
        test_ids_dir=args.test_ids_dir,
        exclude_test_ids=not args.no_test_exclusion,
        num_proc=args.num_proc,
        text_only=args.text_only_assistant,
        overwrite=args.overwrite,
        progress=not args.quiet,
        raw_dir=args.raw_dir,
    )


if __name__ == "__main__":
    sys.exit(main())
