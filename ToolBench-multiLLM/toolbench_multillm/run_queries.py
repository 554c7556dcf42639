"""Real-time evaluation: solve ToolBench queries with an agent and a search method, one answer file each.

    alpha-umi run-queries --backbone_model collab_agent_v3 \
        --planner_model_path saved_models/planner --caller_model_path saved_models/caller \
        --summarizer_model_path saved_models/summarizer --use_multi_gpu true \
        --backend server --service_url http://127.0.0.1:8080/rapidapi \
        --method DFS_woFilter_w2 --input_query_file data/solvable_queries/test_instruction/G1_instruction.json \
        --output_answer_file output_res/alpha-umi/G1_instruction

The flags of the paper's ``qa_pipeline.py`` keep working (``--tool_root_dir``, ``--*_use_lora true``,
``--observ_compress_method``, ``--toolbench_key`` …). ``--backbone_model`` is ``collab_agent_v3`` (α-UMi),
``backbone`` (one model, ``--model_path``) or ``openai_function`` (any OpenAI-compatible server).
The ToolBench key (``--toolbench_key`` or ``$TOOLBENCH_KEY``) and the OpenAI key are never logged or written.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glpft.chat import EndpointUnavailable, public_url
from glpft.formats import FormatError, read_json, write_json_atomic, write_text_atomic
from glpft.remote import CompletionsError
from toolbench_multillm import env as envmod
from toolbench_multillm.agent_setup import add_agent_args, build_agent
from toolbench_multillm.agents import Task
from toolbench_multillm.env import ToolBackendError
from toolbench_multillm.search import Agent, Environment, Limits, Search, parse_method
from toolbench_multillm.tools import build_toolset, load_queries

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alpha-umi run-queries", description=__doc__.split("\n")[0])
    add_agent_args(p)
    g = p.add_argument_group("queries and search")
    g.add_argument("--input_query_file", required=True)
    g.add_argument(
        "--output_answer_file", required=True, help="folder of <query_id>_<method>.json answer files"
    )
    g.add_argument(
        "--tool_root_dir", default=None, help="ToolBench toolenv/tools (default: the query file's api_list)"
    )
    g.add_argument(
        "--tool_docs",
        choices=("paper", "training"),
        default="paper",
        help="prompt tool entries as the original agent or as training data",
    )
    g.add_argument("--method", default="CoT@1", help="CoT@<n> or DFS_woFilter_w<width> (DFSDT)")
    g.add_argument("--max_depth", type=int, default=12, help="tree depth (3 nodes per step)")
    g.add_argument("--max_query_count", type=int, default=200)
    g.add_argument("--num_workers", type=int, default=1, help="queries solved in parallel")
    g.add_argument(
        "--max_consecutive_failures",
        type=int,
        default=3,
        help="stop when this many queries in a row failed on their tool backend (it is down)",
    )
    g.add_argument(
        "--save_prompts",
        action="store_true",
        help="write every model input to <query_id>_<method>.prompts.jsonl beside the answer",
    )
    g.add_argument("--rapidapi_key", default="", help="not supported (direct RapidAPI calls)")
    g.add_argument("--use_rapidapi_key", action="store_true", help="not supported")
    envmod.add_env_args(p)
    return p


# --- many queries --------------------------------------------------------------------------------


def answer_path(out_dir: str | os.PathLike, query_id: Any, method: str) -> Path:
    return Path(out_dir) / f"{query_id}_{method}.json"


def prompts_path(out_dir: str | os.PathLike, query_id: Any, method: str) -> Path:
    return Path(out_dir) / f"{query_id}_{method}.prompts.jsonl"


#: Failures of the backends an answer rests on (tools, chat model): the query is not answered.
INFRASTRUCTURE_ERRORS = (ToolBackendError, EndpointUnavailable, CompletionsError)


@dataclass
class RunSummary:
    total: int = 0
    skipped_done: int = 0
    skipped_no_tools: int = 0
    answered: int = 0
    gave_up: int = 0
    no_answer: int = 0  # failed by the model: no final answer within the limits
    failed_infrastructure: int = 0  # the tool backend (or chat endpoint) failed: redone on rerun
    failed: int = 0  # an error of ours: logged, no file, redone on rerun
    not_started: int = 0  # left when the run stopped early
    stopped: str = ""  # why the run stopped early, if it did
    constraints: list[str] = field(default_factory=list)  # what constrained decoding changed

    def table(self) -> str:
        rows = [
            (k.replace("_", " "), v) for k, v in self.__dict__.items() if k not in ("stopped", "constraints")
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v:>6}" for k, v in rows)


def _qid_and_text(query: Any) -> tuple[str, str]:
    if isinstance(query, dict):
        return str(query["query_id"]), query["query"]
    return str(query.query_id), query.query


def is_answered(path: Path) -> bool:
    """An answer file that a rerun keeps: readable and not produced against a failed backend."""
    if not path.exists():
        return False
    try:
        gen = read_json(path, expect=dict).get("answer_generation")
    except FormatError as e:
        log.warning("%s; the query is answered again", e)
        return False
    return isinstance(gen, dict) and not gen.get("infrastructure_error")


def answer_queries(
    queries: Sequence[Any],
    make_env: Callable[[Any], Environment],
    agent: Agent,
    method: str,
    out_dir: str | os.PathLike,
    num_workers: int = 1,
    limits: Limits = Limits(),
    progress: bool = True,
    skip_errors: tuple[type[BaseException], ...] = (LookupError,),
    save_prompts: bool = False,
    max_consecutive_failures: int = 3,
) -> RunSummary:
    """Answer every query that has no kept answer file yet; ``num_workers`` queries at a time.

    ``make_env(query)`` builds the query's environment; one raising ``skip_errors`` (e.g. a tool missing
    from ``tool_root_dir``) skips the query, as ToolBench does. A query during which the tool backend
    (or the chat endpoint) failed is written with ``valid_data: false`` and ``infrastructure_error`` and
    redone on rerun; after ``max_consecutive_failures`` such queries in a row the run stops (the
    backend is down). A query whose search raises anything else is logged and left without a file.
    ``save_prompts`` also writes every model input of the query to ``<query_id>_<method>.prompts.jsonl``
    (one JSON object a line: step, depth, role, text, tokens fed, tokens cut by the context budget).
    """
    parse_method(method)  # fail fast on a bad method
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = RunSummary(total=len(queries))
    todo = []
    for q in queries:
        qid, _ = _qid_and_text(q)
        if is_answered(answer_path(out_dir, qid, method)):
            summary.skipped_done += 1
        else:
            todo.append(q)
    log.info("%d queries, %d already answered, %d to do", len(queries), summary.skipped_done, len(todo))

    stop = threading.Event()
    lock = threading.Lock()
    in_a_row = [0]

    def count(failure: str) -> None:
        with lock:
            in_a_row[0] = in_a_row[0] + 1 if failure else 0
            if in_a_row[0] >= max_consecutive_failures and not stop.is_set():
                summary.stopped = f"{in_a_row[0]} queries in a row failed on their backend; last: {failure}"
                stop.set()

    def one(q: Any) -> tuple[str, str]:
        qid, text = _qid_and_text(q)
        if stop.is_set():
            return "not_started", ""
        try:
            env = make_env(q)
        except skip_errors as e:
            log.warning("query %s skipped: %s", qid, e)
            return "skipped_no_tools", str(e)
        done = Search(agent, Task(text, list(env.functions), list(env.prompt_tools)), env, limits)
        failure = ""
        try:
            done.run(method)
        except INFRASTRUCTURE_ERRORS as e:
            failure = str(e)
            log.warning("query %s not answered: %s", qid, failure)
        data = done.to_json(text)
        gen = data["answer_generation"]
        if failure:
            gen["valid_data"] = False
            gen["infrastructure_error"] = failure
        if save_prompts:
            lines = "".join(json.dumps(r) + "\n" for r in done.prompt_log)
            write_text_atomic(prompts_path(out_dir, qid, method), lines)
        write_json_atomic(answer_path(out_dir, qid, method), data, indent=2)
        count(failure)
        if failure:
            return "failed_infrastructure", failure
        if not gen["valid_data"]:
            return "no_answer", ""
        return ("answered" if gen["finish_type"] == "give_answer" else "gave_up"), ""

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"{method}", unit="query")
    pool = ThreadPoolExecutor(max_workers=max(1, num_workers))
    try:
        futures = {pool.submit(one, q): q for q in todo}
        for fut in as_completed(futures):
            try:
                outcome, _ = fut.result()
            except Exception:
                log.exception("query %s failed", _qid_and_text(futures[fut])[0])
                outcome = "failed"
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if bar is not None:
                bar.set_postfix(answered=summary.answered, infra=summary.failed_infrastructure, refresh=False)
                bar.update(1)
    finally:
        # on Ctrl-C: queries not started yet are dropped; running ones finish and write their files
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    counts = getattr(agent, "constraint_counts", None)
    summary.constraints = counts.lines() if counts is not None else []
    return summary


PROG = "alpha-umi run-queries"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = run(args)
    except (FormatError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(summary.table())
    for line in summary.constraints:
        print(f"constrained decoding ({args.constrained_decoding}): {line}")
    if summary.stopped:
        print(f"{PROG}: stopped early: {summary.stopped}", file=sys.stderr)
    if summary.failed_infrastructure:
        print(
            f"{PROG}: {summary.failed_infrastructure} queries failed on their backend (files marked "
            "infrastructure_error); rerun when it is back to redo them",
            file=sys.stderr,
        )
    if summary.total and summary.skipped_no_tools == summary.total:
        print(f"{PROG}: error: every query was skipped (their tools were not found)", file=sys.stderr)
        return 2
    return 1 if (summary.failed or summary.failed_infrastructure or summary.stopped) else 0


def run(args: argparse.Namespace) -> RunSummary:
    """Check the flags, build the agent and the environments, answer the queries."""
    if args.use_rapidapi_key or args.rapidapi_key:
        raise ValueError(
            "direct RapidAPI calls (--use_rapidapi_key) are not supported; use --backend toolbench or server"
        )
    try:
        parse_method(args.method)
    except ValueError as e:
        raise ValueError(f"--method: {e}") from None
    if args.tool_root_dir and not os.path.isdir(args.tool_root_dir):
        raise ValueError(f"--tool_root_dir {args.tool_root_dir}: no such folder")
    if args.max_consecutive_failures < 1:
        raise ValueError("--max_consecutive_failures must be at least 1")
    queries = load_queries(args.input_query_file)
    client = envmod.client_from_args(args)  # fails fast when the toolbench backend has no key
    log.info(
        "%d queries from %s, method %s, agent %s, tools via %s",
        len(queries),
        args.input_query_file,
        args.method,
        args.backbone_model,
        public_url(client.url),
    )
    agent = build_agent(args)

    def make_env(query):
        return envmod.env_from_args(
            build_toolset(query, args.tool_root_dir, docs=args.tool_docs), client, args
        )

    limits = Limits(max_depth=args.max_depth, max_queries=args.max_query_count)
    return answer_queries(
        queries,
        make_env,
        agent,
        args.method,
        args.output_answer_file,
        args.num_workers,
        limits,
        save_prompts=args.save_prompts,
        max_consecutive_failures=args.max_consecutive_failures,
    )


if __name__ == "__main__":
    sys.exit(main())
