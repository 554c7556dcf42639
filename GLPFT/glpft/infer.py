"""Static inference (DESIGN §3.6): planner on every gold step → caller / summarizer → predictions.json.

    alpha-umi infer --planner_model_name_or_path P --caller_model_name_or_path C \\
        --summarizer_model_name_or_path S --data_path test/out_of_domain.json --output_dir runs/ood
    torchrun --nproc_per_node 8 -m glpft.infer <same flags>        # each rank a shard; rank 0 writes
    alpha-umi infer --backbone_model_name_or_path B --data_path … --output_dir …   # single-LLM baseline

Then ``alpha-umi evaluate --input_path runs/ood/predictions.json --output_path runs/ood/metrics.json``
(``--mode backbone`` for the baseline). Paper behaviour is the default except decoding:

- ``--decoding greedy`` (default) is deterministic; ``--decoding paper`` samples like the original
  (``do_sample=True``, the checkpoint's generation config, 512 new tokens) but seeded per sample.
- The original feeds prompts *without* the training-time ``"system: "`` prefix; ``--prompt_prefix``
  adds it (training-consistent).
- Prompts over ``--max_input_length`` tokens (3750) keep their last tokens (``--truncation left``,
  paper parity: this drops the BOS and the tool docs first); ``--truncation history`` drops the
  oldest history instead and keeps BOS, tool docs and the instructions.
- The caller / summarizer history ends with ``planner: <thought></s>`` (the static path's speaker
  tag; training histories and the real-time agent say ``assistant: ``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from glpft import prompts as P
from glpft.chat import EndpointUnavailable
from glpft.data import DataError
from glpft.dist import is_rank0, world
from glpft.engines import GenerateFn, RoleModels, make_generate_fn
from glpft.formats import FormatError, write_text_atomic
from glpft.modeling import ModelFolderError
from glpft.remote import CompletionsError
from glpft.steps import StaticStep, build_steps, prediction_string, read_test_records, route

log = logging.getLogger(__name__)


# --- arguments ----------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    planner_model_name_or_path: str | None = field(default=None, metadata={"help": "planner model folder"})
    caller_model_name_or_path: str | None = field(default=None, metadata={"help": "caller model folder"})
    summarizer_model_name_or_path: str | None = field(
        default=None, metadata={"help": "summarizer model folder"}
    )
    backbone_model_name_or_path: str | None = field(
        default=None, metadata={"help": "single-LLM baseline: run this backbone instead of the three roles"}
    )
    planner_use_lora: bool = False
    caller_use_lora: bool = False
    summarizer_use_lora: bool = False
    backbone_use_lora: bool = False
    use_logit_smooth: bool = field(default=False, metadata={"help": "not supported (original's wrapper)"})
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, flash_attention_2"})
    load_all_models: bool = field(
        default=False, metadata={"help": "keep every role model loaded (default: one role at a time)"}
    )


@dataclass
class DataArguments:
    data_path: str = field(default=None, metadata={"help": "comma-separated stage-2 test files or folders"})
    max_input_length: int = field(default=3750, metadata={"help": "prompt tokens kept (see --truncation)"})
    num_infer_samples: int = field(default=-1, metadata={"help": "use only the first N trajectories"})
    planner_prompt_type: str = field(
        default=P.ROLE_TEMPLATE["planner"], metadata={"aliases": ["--assistant_prompt_type"]}
    )
    caller_prompt_type: str = field(default=P.ROLE_TEMPLATE["caller"])
    summarizer_prompt_type: str = field(
        default=P.ROLE_TEMPLATE["summarizer"], metadata={"aliases": ["--conclusion_prompt_type"]}
    )
    backbone_prompt_type: str = field(default=P.ROLE_TEMPLATE["backbone"])
    truncation: str = field(
        default="left",
        metadata={"help": "left (paper: keep the last tokens) or history (drop oldest history first)"},
    )


@dataclass
class InferArguments:
    output_dir: str = field(default=None, metadata={"help": "predictions.json is written here"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace an existing predictions.json"}
    )
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "generation batch size per process"})
    bf16_full_eval: bool = False
    fp16_full_eval: bool = False
    decoding: str = field(default="greedy", metadata={"help": "greedy, or paper (seeded sampling)"})
    seed: int = 42
    max_new_tokens: int = 512
    prompt_prefix: bool = field(default=False, metadata={"help": 'add the training-time "system: " prefix'})
    backend: str = field(
        default="hf",
        metadata={
            "help": "hf (built-in batched engine), vllm, or openai: an OpenAI-compatible completions server "
            "(--base_url; each --<role>_model_name_or_path is then the served model name, default the role)"
        },
    )
    base_url: str | None = field(
        default=None,
        metadata={"help": "--backend openai: e.g. http://127.0.0.1:8000/v1 (alpha-umi serve-models, vLLM)"},
    )
    api_key_env: str = field(
        default="OPENAI_API_KEY", metadata={"help": "--backend openai: env var of the key"}
    )
    concurrency: int = field(default=8, metadata={"help": "--backend openai: requests in flight"})
    constrained_decoding: str = field(
        default="off",
        metadata={
            "help": "off (paper parity), caller (an offered tool and JSON arguments of its parameters), or "
            "all (also the planner: exactly one Next: marker)"
        },
    )
    structured_outputs: str = field(
        default="serve-models",
        metadata={
            "help": "--backend openai: the server's grammar field: serve-models, vllm, vllm-legacy, sglang"
        },
    )
    share_prefix_cache: bool = field(
        default=True, metadata={"help": "reuse the KV cache of the prefix shared by steps of a trajectory"}
    )
    save_prompts: bool = field(
        default=False,
        metadata={"help": "also write prompts.jsonl beside predictions.json: every model input, exactly"},
    )


class InferError(ValueError):
    """A bad argument or input; reported as one line."""


# --- the pipeline ------------------------------------------------------------------------------


def run_pipeline(
    steps: list[StaticStep],
    generate: GenerateFn,
    templates: dict[str, str] | None = None,
    prefix: str = "",
) -> dict[str, list[StaticStep]]:
    """Planner on every step, routing, then caller and summarizer; the steps grouped by route."""
    by_route: dict[str, list[StaticStep]] = {"caller": [], "give up": [], "conclusion": []}
    for step, out in zip(steps, generate("planner", steps, [s.prompt for s in steps])):
        by_route[route(step, out, templates, prefix)].append(step)
    for role, name in (("caller", "caller"), ("summarizer", "conclusion")):
        group = by_route[name]
        if group:
            for step, out in zip(group, generate(role, group, [s.next_prompt for s in group])):
                step.prediction = prediction_string(name, step.thought, out)
    return by_route


class PromptLog:
    """Every model input of this process: role, sample index, its trajectory, the exact text, ids fed."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, role: str, step: StaticStep, prompt: P.Prompt, tokens: int | None) -> None:
        row = {
            "role": role,
            "sample": step.index,
            "trajectory": step.group,
            "text": prompt.text,
            "tokens": tokens,
        }
        self.rows.append((step.index, row))


def _templates(data_args: DataArguments) -> dict[str, str]:
    return {
        "caller": data_args.caller_prompt_type,
        "summarizer": data_args.summarizer_prompt_type,
    }


def infer(model_args: ModelArguments, data_args: DataArguments, infer_args: InferArguments) -> str | None:
    """Run static inference for this process's shard; rank 0 gathers and writes predictions.json."""
    import torch

    check_args(model_args, data_args, infer_args)
    w = world()
    out_path = os.path.join(infer_args.output_dir, "predictions.json")
    prompts_path = os.path.join(infer_args.output_dir, "prompts.jsonl")
    if os.path.exists(out_path) and not infer_args.overwrite_output_dir:
        raise InferError(f"{out_path} exists; pass --overwrite_output_dir to replace it")
    if w.size > 1 and not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(w.local_rank)
        torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    device = f"cuda:{w.local_rank}" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(infer_args.seed)

    records = read_test_records(data_args.data_path, data_args.num_infer_samples)
    prefix = P.TRAIN_PREFIX if infer_args.prompt_prefix else ""
    backbone = bool(model_args.backbone_model_name_or_path)
    if backbone:
        steps = build_steps(records, "backbone", data_args.backbone_prompt_type, prefix)
        roles = ["backbone"]
    else:
        steps = build_steps(records, "multi_agent", data_args.planner_prompt_type, prefix)
        roles = list(P.AGENT_ROLES)
    mine = [s for s in steps if s.group % w.size == w.rank]  # shard by trajectory (prefix reuse)
    if w.is_main:
        log.info("%d trajectories → %d steps; %d processes", len(records), len(steps), w.size)

    start = time.perf_counter()
    dtype = (
        torch.bfloat16
        if infer_args.bf16_full_eval
        else (torch.float16 if infer_args.fp16_full_eval else None)
    )
    specs = {
        r: (getattr(model_args, f"{r}_model_name_or_path"), getattr(model_args, f"{r}_use_lora"))
        for r in roles
    }
    models = RoleModels(specs, device, dtype, model_args.attn_implementation, model_args.load_all_models)
    remote = None
    if infer_args.backend == "openai":
        from glpft.remote import CompletionsBackend

        key = os.environ.get(infer_args.api_key_env)
        remote = CompletionsBackend(infer_args.base_url, key, concurrency=infer_args.concurrency)
    log_prompts = PromptLog() if infer_args.save_prompts else None
    gen = make_generate_fn(
        models, roles, backend=infer_args.backend, decoding=infer_args.decoding,
        max_new_tokens=infer_args.max_new_tokens, seed=infer_args.seed,
        max_input_length=data_args.max_input_length, truncation=data_args.truncation,
        batch_size=infer_args.per_device_eval_batch_size, share_prefix=infer_args.share_prefix_cache,
        bf16=infer_args.bf16_full_eval, fp16=infer_args.fp16_full_eval, on_encoded=log_prompts, remote=remote,
        constrained=infer_args.constrained_decoding, server=infer_args.structured_outputs,
    )  # fmt: skip
    if backbone:
        for s, out in zip(mine, gen("backbone", mine, [s.prompt for s in mine]) if mine else []):
            s.prediction = out
        parts = {"backbone": [(s.index, s.record()) for s in mine]}
    else:
        by_route = run_pipeline(mine, gen, _templates(data_args), prefix) if mine else {}
        parts = {
            k: [(s.index, s.record()) for s in by_route.get(k, [])]
            for k in ("caller", "give up", "conclusion")
        }
    prompt_rows = log_prompts.rows if log_prompts else []
    if infer_args.constrained_decoding != "off" and w.is_main:
        changed = ", ".join(
            f"{role} {gen.changed[role] if infer_args.backend == 'hf' else '?'}/{n}"
            for role, n in gen.constrained.items()
        )
        print(
            f"constrained decoding ({infer_args.constrained_decoding}): outputs the grammar changed: {changed or 'none'}"
        )
    del models
    elapsed = time.perf_counter() - start

    if w.size > 1:
        gathered: list[Any] = [None] * w.size if w.is_main else None
        torch.distributed.gather_object((parts, prompt_rows), gathered, dst=0)
    else:
        gathered = [(parts, prompt_rows)]
    path = None
    if w.is_main:
        merged: dict[str, list] = {k: [] for k in parts}
        all_prompts: list[tuple[int, dict[str, Any]]] = []
        for g_parts, g_prompts in gathered:
            for k, rows in g_parts.items():
                merged[k] += rows
            all_prompts += g_prompts
        # paper parity: caller steps, then give-up steps, then conclusion steps
        final = [row for k in merged for _, row in sorted(merged[k], key=lambda x: x[0])]
        os.makedirs(infer_args.output_dir, exist_ok=True)
        write_text_atomic(out_path, json.dumps(final, indent=4))  # the original's json.dump(indent=4)
        if infer_args.save_prompts:
            order = {r: i for i, r in enumerate(roles)}
            all_prompts.sort(key=lambda x: (order[x[1]["role"]], x[0]))
            write_text_atomic(prompts_path, "".join(json.dumps(r) + "\n" for _, r in all_prompts))
        path = out_path
        counts = Counter({k: len(v) for k, v in merged.items()})
        print(
            f"wrote {len(final)} predictions to {out_path} "
            f"({', '.join(f'{k}: {v}' for k, v in counts.items())}; {elapsed:.1f}s, "
            f"{len(mine) / max(elapsed, 1e-9):.2f} steps/s on rank 0)"
        )
    if w.size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return path


def check_args(model_args: ModelArguments, data_args: DataArguments, infer_args: InferArguments) -> None:
    """Validate arguments with one-line errors before any model is loaded."""
    import importlib.util

    from glpft.modeling import resolve_model_folder

    if not data_args.data_path:
        raise InferError("--data_path is required")
    if not infer_args.output_dir:
        raise InferError("--output_dir is required")
    if infer_args.decoding not in ("greedy", "paper"):
        raise InferError(f"--decoding must be greedy or paper, got {infer_args.decoding!r}")
    if data_args.truncation not in ("left", "history"):
        raise InferError(f"--truncation must be left or history, got {data_args.truncation!r}")
    from glpft.constraints import CONSTRAINT_MODES, SERVERS

    if infer_args.constrained_decoding not in CONSTRAINT_MODES:
        raise InferError(f"--constrained_decoding must be one of {', '.join(CONSTRAINT_MODES)}")
    if infer_args.structured_outputs not in SERVERS:
        raise InferError(f"--structured_outputs must be one of {', '.join(SERVERS)}")
    if infer_args.constrained_decoding != "off":
        if infer_args.backend == "vllm":
            raise InferError(
                "--constrained_decoding with --backend vllm: serve with vLLM and use --backend openai"
            )
        if model_args.backbone_model_name_or_path:
            raise InferError("--constrained_decoding constrains the α-UMi caller and planner, not a backbone")
    if infer_args.backend not in ("hf", "vllm", "openai"):
        raise InferError(f"--backend must be hf, vllm or openai, got {infer_args.backend!r}")
    if infer_args.backend == "openai":
        if not infer_args.base_url:
            raise InferError("--backend openai needs --base_url (e.g. http://127.0.0.1:8000/v1)")
        if data_args.truncation != "left":
            raise InferError(
                "--backend openai: the server cuts prompts on the left; --truncation history needs hf"
            )
        for role in ("planner", "caller", "summarizer", "backbone"):
            if getattr(model_args, f"{role}_use_lora"):
                raise InferError(f"--backend openai: --{role}_use_lora is the server's business; drop it")
    if infer_args.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise InferError("--backend vllm: vllm is not installed (pip install 'alpha-umi[vllm]')")
        if world().size > 1:
            raise InferError("--backend vllm runs in one process: launch without torchrun")
    if model_args.use_logit_smooth:
        raise InferError("--use_logit_smooth is not supported")
    roles = ["backbone"] if model_args.backbone_model_name_or_path else ["planner", "caller", "summarizer"]
    for role in roles:
        path = getattr(model_args, f"{role}_model_name_or_path")
        if infer_args.backend == "openai":
            setattr(model_args, f"{role}_model_name_or_path", path or role)  # the served model's name
            continue
        if not path:
            raise InferError(f"--{role}_model_name_or_path is required")
        resolve_model_folder(path, getattr(model_args, f"{role}_use_lora"))
        if infer_args.backend == "vllm" and getattr(model_args, f"{role}_use_lora"):
            raise InferError("--backend vllm: merge LoRA adapters first (alpha-umi merge-lora)")
    for name in ("planner", "caller", "summarizer", "backbone"):
        P.get_template(getattr(data_args, f"{name}_prompt_type"))


def parse_args(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, InferArguments]:
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, InferArguments), prog="alpha-umi infer")
    *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if rest:
        raise InferError(f"unknown arguments: {' '.join(rest)}")
    return tuple(parsed)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO if is_rank0() else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        model_args, data_args, infer_args = parse_args(argv)
        if is_rank0():
            log.info(
                "arguments: %s", json.dumps({**asdict(model_args), **asdict(data_args), **asdict(infer_args)})
            )
        infer(model_args, data_args, infer_args)
    except (InferError, FormatError, DataError, ModelFolderError, EndpointUnavailable, CompletionsError) as e:
        print(f"alpha-umi infer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
