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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glpft.chat import EndpointUnavailable, public_url
from glpft.formats import FormatError, read_json, write_json_atomic, write_text_atomic
from glpft.prompts import AGENT_ROLES, TRAIN_PREFIX, get_template
from toolbench_multillm import env as envmod
from toolbench_multillm.agents import AlphaUmiAgent, BackboneAgent, OpenAIAgent, Task
from toolbench_multillm.env import ToolBackendError
from toolbench_multillm.generators import load_generators
from toolbench_multillm.search import Agent, Environment, Limits, Search, parse_method
from toolbench_multillm.tools import build_toolset, load_queries

log = logging.getLogger(__name__)

BACKBONES = ("collab_agent_v3", "backbone", "openai_function")


def str2bool(text: str) -> bool:
    """The paper's boolean flags take values (``--planner_use_lora False``)."""
    return str(text).lower() in ("true", "t", "1", "yes", "y")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alpha-umi run-queries", description=__doc__.split("\n")[0])
    g = p.add_argument_group("agent")
    g.add_argument(
        "--backbone_model",
        default="collab_agent_v3",
        help=" | ".join(BACKBONES) + " (chatgpt_function = openai_function)",
    )
    for role in AGENT_ROLES:
        g.add_argument(f"--{role}_model_path", default="")
        g.add_argument(f"--{role}_use_lora", type=str2bool, default=False)
        g.add_argument(
            f"--{role}_device", default=None, help="e.g. cuda:1 or cpu (overrides --device/--use_multi_gpu)"
        )
    g.add_argument("--planner_prompt_type", default="toolbench_planner")
    g.add_argument("--caller_prompt_type", default="toolbench_caller")
    g.add_argument("--summarizer_prompt_type", default="toolbench_summarizer")
    g.add_argument("--model_path", default="", help="the single model of --backbone_model backbone")
    g.add_argument("--lora", action="store_true", help="--model_path … with the adapter at --lora_path")
    g.add_argument("--lora_path", default="")
    g.add_argument("--user_agent_collab", default="true", help="accepted for compatibility; ignored")
    g.add_argument(
        "--prompt_prefix",
        choices=("paper", "train"),
        default="paper",
        help="paper: no 'system: ' prefix (as the original agent); train: as in training",
    )
    g = p.add_argument_group("models and decoding")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N: where all roles go")
    g.add_argument(
        "--use_multi_gpu",
        type=str2bool,
        default=False,
        help="one GPU per role: planner cuda:0, caller cuda:1, summarizer cuda:2",
    )
    g.add_argument(
        "--dtype",
        choices=("auto", "bf16", "fp16", "fp32"),
        default="auto",
        help="auto: bf16 on GPU, fp32 on CPU",
    )
    g.add_argument(
        "--decoding",
        choices=("paper", "greedy"),
        default="paper",
        help="paper: sampling at --temperature (DFSDT siblings need it)",
    )
    g.add_argument("--temperature", type=float, default=0.5)
    g.add_argument("--max_new_tokens", type=int, default=512)
    g.add_argument(
        "--context_length",
        type=int,
        default=4096,
        help="prompt + generation; longer prompts keep their last context_length - max_new_tokens - 8 ids",
    )
    g.add_argument(
        "--keep_bos",
        action="store_true",
        help="keep BOS when a prompt is cut to the context (the original cuts it like any other id)",
    )
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("OpenAI-compatible agent")
    g.add_argument("--openai_base_url", default="http://127.0.0.1:8000/v1")
    g.add_argument("--openai_model", default="gpt-3.5-turbo-16k-0613")
    g.add_argument("--openai_key", default=None, help="default: $OPENAI_API_KEY; never written anywhere")
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


def role_devices(args: argparse.Namespace, n_gpus: int) -> dict[str, str]:
    """Device of each role: explicit ``--<role>_device``, else one GPU per role, else ``--device``."""
    device = args.device
    if device == "auto":
        device = "cuda:0" if n_gpus else "cpu"
    elif device == "cuda":
        device = "cuda:0"
    out = {}
    for i, role in enumerate(AGENT_ROLES):
        explicit = getattr(args, f"{role}_device", None)
        if explicit:
            out[role] = explicit
        elif args.use_multi_gpu and n_gpus and device != "cpu":
            out[role] = f"cuda:{i % n_gpus}"
        else:
            out[role] = device
    return out


def decoding_config(args: argparse.Namespace):
    from glpft.generation import DecodingConfig

    if args.decoding == "greedy":
        return DecodingConfig(max_new_tokens=args.max_new_tokens, seed=args.seed)
    # paper parity: the original agent sampled at temperature 0.5, no top-k/top-p
    return DecodingConfig(
        max_new_tokens=args.max_new_tokens, do_sample=True, temperature=args.temperature, seed=args.seed
    )


def _generators(specs: dict[str, tuple[str, bool, str]], args: argparse.Namespace):
    return load_generators(
        specs, decoding_config(args), args.dtype, args.context_length, args.seed, args.keep_bos
    )


def build_agent(args: argparse.Namespace) -> Any:
    backbone = {"chatgpt_function": "openai_function"}.get(args.backbone_model, args.backbone_model)
    if backbone not in BACKBONES:
        raise ValueError(
            f"unknown --backbone_model {args.backbone_model!r}; choose one of {', '.join(BACKBONES)}"
        )
    if backbone == "openai_function":
        key = args.openai_key or os.environ.get("OPENAI_API_KEY")
        return OpenAIAgent(
            args.openai_base_url,
            args.openai_model,
            key,
            temperature=0.0 if args.decoding == "greedy" else args.temperature,
        )
    import torch

    n_gpus = torch.cuda.device_count()
    devices = role_devices(args, n_gpus)
    prefix = TRAIN_PREFIX if args.prompt_prefix == "train" else ""
    if backbone == "backbone":
        path = args.lora_path if args.lora else args.model_path
        if not path:
            raise ValueError("--backbone_model backbone needs --model_path (or --lora --lora_path)")
        gens = _generators({"backbone": (path, bool(args.lora), devices["planner"])}, args)
        return BackboneAgent(gens["backbone"], prefix=prefix)
    specs = {}
    for role in AGENT_ROLES:
        path = getattr(args, f"{role}_model_path")
        if not path:
            raise ValueError(f"collab_agent_v3 needs --{role}_model_path")
        specs[role] = (path, getattr(args, f"{role}_use_lora"), devices[role])
    templates = {
        "planner": args.planner_prompt_type,
        "caller": args.caller_prompt_type,
        "summarizer": args.summarizer_prompt_type,
    }
    for role, name in templates.items():
        try:
            get_template(name)
        except ValueError as e:
            raise ValueError(f"--{role}_prompt_type: {e}") from None
    gens = _generators(specs, args)
    return AlphaUmiAgent(
        gens["planner"], gens["caller"], gens["summarizer"], prefix=prefix, templates=templates
    )


# --- many queries --------------------------------------------------------------------------------


def answer_path(out_dir: str | os.PathLike, query_id: Any, method: str) -> Path:
    return Path(out_dir) / f"{query_id}_{method}.json"


def prompts_path(out_dir: str | os.PathLike, query_id: Any, method: str) -> Path:
    return Path(out_dir) / f"{query_id}_{method}.prompts.jsonl"


#: Failures of the backends an answer rests on (tools, chat model): the query is not answered.
INFRASTRUCTURE_ERRORS = (ToolBackendError, EndpointUnavailable)


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

    def table(self) -> str:
        rows = [(k.replace("_", " "), v) for k, v in self.__dict__.items() if k != "stopped"]
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
