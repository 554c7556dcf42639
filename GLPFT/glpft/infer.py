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

import gc
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Any

from glpft import prompts as P
from glpft.data import DataError, expand_data_paths
from glpft.formats import FormatError, iter_json_list, require, write_text_atomic
from glpft.modeling import ModelFolderError

log = logging.getLogger(__name__)

#: Speaker tag of the planner thought in caller / summarizer histories on the static path.
PLANNER_TAG = "planner"


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
    backend: str = field(default="hf", metadata={"help": "hf (built-in batched engine) or vllm"})
    share_prefix_cache: bool = field(
        default=True, metadata={"help": "reuse the KV cache of the prefix shared by steps of a trajectory"}
    )


class InferError(ValueError):
    """A bad argument or input; reported as one line."""


# --- test set → samples -------------------------------------------------------------------------


def read_test_records(data_path: str, limit: int = -1) -> list[dict[str, Any]]:
    """Stage-2 records (``tools``, ``instruction``, ``conversations``) of every file in ``data_path``."""
    records: list[dict[str, Any]] = []
    for path in expand_data_paths(data_path):
        for k, rec in enumerate(iter_json_list(path)):
            where = f"{path}: record {k}"
            require(rec, "tools", list, where)
            require(rec, "instruction", str, where)
            conv = require(rec, "conversations", list, where)
            for j, turn in enumerate(conv):
                require(turn, "from", str, f"{where}: conversations[{j}]")
                require(turn, "value", str, f"{where}: conversations[{j}]")
            records.append(rec)
            if 0 < limit <= len(records):
                return records
    return records


def _has_marker(value: str) -> bool:
    return any(m in value for m in P.NEXT_MARKERS)


def planner_steps(record: dict[str, Any], where: str = "record"):
    """(index j, history text before j) of each assistant turn that carries a ``Next:`` marker."""
    history = ""
    for j, turn in enumerate(record["conversations"]):
        if turn["from"] == "assistant" and _has_marker(turn["value"]):
            yield j, history
        if turn["from"] in P.ROLES:
            history += P.render_turn(turn["from"], turn["value"])


def _next_turn(conv: list[dict[str, str]], j: int, where: str) -> dict[str, str]:
    if j + 1 >= len(conv):
        raise FormatError(f"{where}: conversations[{j}] routes to a next turn but is the last turn")
    return conv[j + 1]


def planner_reference(conv: list[dict[str, str]], j: int, where: str = "record") -> str:
    """``assistant: V</s>next: W</s>`` for caller / conclusion steps, the bare value for give-up."""
    value = conv[j]["value"]
    # paper parity: the original tests "Next: caller" without the final dot here
    if P.NEXT_CALLER.rstrip(".") in value or P.NEXT_CONCLUSION in value:
        nxt = _next_turn(conv, j, where)
        return P.render_turn("assistant", value) + nxt["from"] + ": " + nxt["value"] + P.EOS_TEXT
    return value


def _split(filled: str, history: str, suffix: str, prefix: str) -> tuple[str, str, str]:
    """(head, history, tail) of a prompt whose template has ``{history}`` once: head + history + tail."""
    head, sep, tail = filled.partition("{history}")
    if not sep:
        return prefix + filled + suffix, "", ""
    return prefix + head, history, tail + suffix


def build_planner_samples(
    records: Sequence[dict[str, Any]], prompt_type: str = P.ROLE_TEMPLATE["planner"], prompt_prefix: str = ""
) -> list[dict[str, Any]]:
    """One sample per planner step, in the original's fields (``dispath`` sic); private keys start with _."""
    template = P.get_template(prompt_type)
    samples = []
    for r, rec in enumerate(records):
        builder = P.PromptBuilder(template, rec["tools"])
        conv = rec["conversations"]
        for j, history in planner_steps(rec):
            pieces = _split(builder.base, history, P.ROLE_SUFFIX["planner"], prompt_prefix)
            samples.append(
                {
                    "tools": rec["tools"],
                    "instruction": rec["instruction"],
                    "history": conv[:j],
                    "dispath": history,
                    "model_input": prompt_prefix + builder.build(history) + P.ROLE_SUFFIX["planner"],
                    "reference": planner_reference(conv, j, f"record {r}"),
                    "_idx": len(samples),
                    "_group": r,
                    "_pieces": pieces,
                }
            )
    return samples


def build_backbone_samples(
    records: Sequence[dict[str, Any]], prompt_type: str = P.ROLE_TEMPLATE["backbone"], prompt_prefix: str = ""
) -> list[dict[str, Any]]:
    """The single-LLM baseline over the same steps: backbone prompt and history, backbone target."""
    template = P.get_template(prompt_type)
    samples = []
    for r, rec in enumerate(records):
        builder = P.PromptBuilder(template, rec["tools"])
        conv = rec["conversations"]
        steps = {j for j, _ in planner_steps(rec)}
        history = ""
        for j, turn in enumerate(conv):
            role = turn["from"]
            if role == "assistant":
                target = P.backbone_target(conv, j)
                if j in steps:
                    samples.append(
                        {
                            "tools": rec["tools"],
                            "instruction": rec["instruction"],
                            "history": conv[:j],
                            "dispath": history,
                            "model_input": prompt_prefix + builder.build(history) + P.ROLE_SUFFIX["backbone"],
                            "reference": target,
                            "_idx": len(samples),
                            "_group": r,
                            "_pieces": _split(
                                builder.base, history, P.ROLE_SUFFIX["backbone"], prompt_prefix
                            ),
                        }
                    )
                history += P.render_turn("assistant", target)
            elif role in ("user", "observation"):  # caller/conclusion turns are merged into the target
                history += P.render_turn(role, turn["value"])
    return samples


# --- routing ------------------------------------------------------------------------------------


def route_sample(
    sample: dict[str, Any],
    planner_output: str,
    caller_type: str = P.ROLE_TEMPLATE["caller"],
    summarizer_type: str = P.ROLE_TEMPLATE["summarizer"],
    prompt_prefix: str = "",
) -> str:
    """Cut the planner output and prepare the next role's input; returns "caller", "conclusion" or "give up"."""
    decision = P.parse_planner_output(planner_output)
    if decision.next == "give up":
        sample["predictions"] = decision.thought
        return "give up"
    role, key = (
        ("caller", "model_input_for_caller")
        if decision.next == "caller"
        else ("summarizer", "model_input_for_summarizer")
    )
    template = P.get_template(caller_type if role == "caller" else summarizer_type)
    sample["planner_prediction"] = decision.thought
    history = sample["dispath"] + P.render_turn(PLANNER_TAG, decision.thought)
    # paper parity: {thought} is substituted before {history}
    filled = P.PromptBuilder(template, sample["tools"]).base.replace("{thought}", decision.thought)
    sample[key] = prompt_prefix + filled.replace("{history}", history) + P.ROLE_SUFFIX[role]
    sample["_pieces"] = _split(filled, history, P.ROLE_SUFFIX[role], prompt_prefix)
    return decision.next


def prediction_string(route: str, thought: str, output: str) -> str:
    """The α-UMi prediction of one step (``asssitant: `` sic)."""
    if route == "give up":
        return thought
    speaker = "caller" if route == "caller" else "conclusion"
    return P.PRED_PREFIX + thought + P.EOS_TEXT + speaker + ": " + output


#: generate(role, samples, input_key) -> decoded, cleaned outputs
GenerateFn = Callable[[str, list[dict[str, Any]], str], list[str]]


def run_pipeline(
    samples: list[dict[str, Any]], generate: GenerateFn, data_args: DataArguments, prefix: str = ""
):
    """Planner on all samples, routing, then caller and summarizer; returns (callers, give-ups, summaries)."""
    planner_out = generate("planner", samples, "model_input")
    callers, give_ups, summaries = [], [], []
    for sample, out in zip(samples, planner_out):
        route = route_sample(
            sample, out, data_args.caller_prompt_type, data_args.summarizer_prompt_type, prefix
        )
        {"caller": callers, "conclusion": summaries, "give up": give_ups}[route].append(sample)
    for role, group, key, route in (
        ("caller", callers, "model_input_for_caller", "caller"),
        ("summarizer", summaries, "model_input_for_summarizer", "conclusion"),
    ):
        if group:
            for sample, out in zip(group, generate(role, group, key)):
                sample["predictions"] = prediction_string(route, sample["planner_prediction"], out)
    return callers, give_ups, summaries


# --- models and generation ----------------------------------------------------------------------


def encode_prompt(tokenizer, sample: dict[str, Any], text: str, max_len: int, truncation: str) -> list[int]:
    """Token ids of a prompt (with the tokenizer's BOS, if any), cut to ``max_len`` tokens."""
    ids = tokenizer.encode(text)
    if len(ids) <= max_len:
        return ids
    if truncation == "history":
        head, history, tail = sample.get("_pieces", ("", "", ""))
        head_ids = tokenizer.encode(head)
        tail_ids = tokenizer.encode(tail, add_special_tokens=False)
        budget = max_len - len(head_ids) - len(tail_ids)
        if history and budget > 0:
            hist = tokenizer.encode(history, add_special_tokens=False)
            return head_ids + hist[len(hist) - budget :] + tail_ids
    # paper parity: keep the last max_len tokens (drops BOS and the tool docs first)
    return ids[-max_len:]


class RoleModels:
    """Loads role models on demand; frees those no later role needs unless ``keep_all``."""

    def __init__(self, model_args: ModelArguments, infer_args: InferArguments, device):
        self.model_args, self.infer_args, self.device = model_args, infer_args, device
        self.loaded: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def spec(self, role: str) -> tuple[str, bool]:
        path = getattr(self.model_args, f"{role}_model_name_or_path")
        if not path:
            raise InferError(f"--{role}_model_name_or_path is required")
        return path, bool(getattr(self.model_args, f"{role}_use_lora"))

    def get(self, role: str, later_roles: Sequence[str] = ()):
        import torch

        from glpft.modeling import load_model_and_tokenizer

        key = self.spec(role)
        needed = {key} | {self.spec(r) for r in later_roles}
        if not self.model_args.load_all_models:
            for k in [k for k in self.loaded if k not in needed]:
                del self.loaded[k]
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        if key not in self.loaded:
            dtype = None
            if self.infer_args.bf16_full_eval:
                dtype = torch.bfloat16
            elif self.infer_args.fp16_full_eval:
                dtype = torch.float16
            log.info("loading %s model from %s", role, key[0])
            self.loaded[key] = load_model_and_tokenizer(
                key[0], key[1], dtype=dtype, device=self.device,
                attn_implementation=self.model_args.attn_implementation,
            )  # fmt: skip
        return self.loaded[key]


ROLE_SEED = {"planner": 0, "caller": 1, "summarizer": 2, "backbone": 3}


def make_generate_fn(
    models: RoleModels, data_args: DataArguments, infer_args: InferArguments, role_order: Sequence[str]
) -> GenerateFn:
    """The GenerateFn of the chosen backend: tokenize, generate, decode, clean."""
    from glpft.generation import DecodingConfig, generate
    from glpft.modeling import stop_token_ids

    def run(role: str, samples: list[dict[str, Any]], key: str) -> list[str]:
        later = list(role_order[role_order.index(role) + 1 :])
        if infer_args.backend == "vllm":  # vLLM loads the weights itself: only tokenizer + config here
            from transformers import GenerationConfig

            from glpft.modeling import load_tokenizer

            path, use_lora = models.spec(role)
            tokenizer = load_tokenizer(path, use_lora)
            try:
                gen_config = GenerationConfig.from_pretrained(path)
            except OSError:
                gen_config = GenerationConfig()
            model = SimpleNamespace(generation_config=gen_config)
        else:
            model, tokenizer = models.get(role, later)
        ids = [
            encode_prompt(tokenizer, s, s[key], data_args.max_input_length, data_args.truncation)
            for s in samples
        ]
        if infer_args.decoding == "paper":
            config = DecodingConfig.paper(model, infer_args.max_new_tokens, infer_args.seed)
        else:
            config = DecodingConfig(max_new_tokens=infer_args.max_new_tokens, seed=infer_args.seed)
        # one seed per (sample, role): outputs do not depend on batching or the number of processes
        seeds = [infer_args.seed * 1_000_003 + 4 * s["_idx"] + ROLE_SEED[role] for s in samples]
        stop = stop_token_ids(tokenizer, model if infer_args.backend == "hf" else None)
        start = time.perf_counter()
        if infer_args.backend == "vllm":
            outs = _vllm_generate(models.spec(role)[0], ids, config, seeds, stop, infer_args)
        else:
            outs = generate(
                model, ids, stop_ids=stop, pad_id=tokenizer.pad_token_id, config=config,
                batch_size=infer_args.per_device_eval_batch_size, groups=[s["_group"] for s in samples],
                share_prefix=infer_args.share_prefix_cache, seeds=seeds, progress=_is_rank0(),
            )  # fmt: skip
        log.info("%s: %d samples in %.1fs", role, len(samples), time.perf_counter() - start)
        return [P.clean_generation(tokenizer.decode(o, skip_special_tokens=True)) for o in outs]

    return run


def _vllm_generate(path, ids, config, seeds, stop, infer_args) -> list[list[int]]:
    """vLLM backend (optional dependency); the same prompts, decoding settings and per-sample seeds."""
    from vllm import LLM, SamplingParams

    dtype = "bfloat16" if infer_args.bf16_full_eval else ("float16" if infer_args.fp16_full_eval else "auto")
    llm = LLM(model=path, dtype=dtype, seed=infer_args.seed, enable_prefix_caching=True)
    params = [
        SamplingParams(
            temperature=config.temperature if config.do_sample else 0.0,
            top_k=config.top_k if (config.do_sample and config.top_k > 0) else -1,
            top_p=config.top_p if config.do_sample else 1.0,
            max_tokens=config.max_new_tokens,
            stop_token_ids=list(stop),
            seed=seed,
        )
        for seed in seeds
    ]
    outs = llm.generate([{"prompt_token_ids": p} for p in ids], params)
    result = [list(o.outputs[0].token_ids) for o in outs]
    del llm, outs  # free the GPU for the next role
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return [r[: next((k for k, t in enumerate(r) if t in stop), len(r))] for r in result]


# --- distributed --------------------------------------------------------------------------------


def _world() -> tuple[int, int, int]:
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def _is_rank0() -> bool:
    return _world()[0] == 0


def _public(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if not k.startswith("_")}


def infer(model_args: ModelArguments, data_args: DataArguments, infer_args: InferArguments) -> str | None:
    """Run static inference for this process's shard; rank 0 gathers and writes predictions.json."""
    import torch

    check_args(model_args, data_args, infer_args)
    rank, world, local_rank = _world()
    out_path = os.path.join(infer_args.output_dir, "predictions.json")
    if os.path.exists(out_path) and not infer_args.overwrite_output_dir:
        raise InferError(f"{out_path} exists; pass --overwrite_output_dir to replace it")
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend=backend)
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(infer_args.seed)

    records = read_test_records(data_args.data_path, data_args.num_infer_samples)
    prefix = P.TRAIN_PREFIX if infer_args.prompt_prefix else ""
    backbone = bool(model_args.backbone_model_name_or_path)
    if backbone:
        samples = build_backbone_samples(records, data_args.backbone_prompt_type, prefix)
    else:
        samples = build_planner_samples(records, data_args.planner_prompt_type, prefix)
    mine = [s for s in samples if s["_group"] % world == rank]  # shard by trajectory (prefix reuse)
    if _is_rank0():
        log.info("%d trajectories → %d steps; %d processes", len(records), len(samples), world)

    start = time.perf_counter()
    models = RoleModels(model_args, infer_args, device)
    if backbone:
        gen = make_generate_fn(models, data_args, infer_args, ["backbone"])
        for s, out in zip(mine, gen("backbone", mine, "model_input") if mine else []):
            s["predictions"] = out
        parts = {"backbone": [(s["_idx"], _public(s)) for s in mine]}
    else:
        gen = make_generate_fn(models, data_args, infer_args, ["planner", "caller", "summarizer"])
        callers, give_ups, summaries = run_pipeline(mine, gen, data_args, prefix) if mine else ([], [], [])
        parts = {
            "caller": [(s["_idx"], _public(s)) for s in callers],
            "give up": [(s["_idx"], _public(s)) for s in give_ups],
            "conclusion": [(s["_idx"], _public(s)) for s in summaries],
        }
    del models
    elapsed = time.perf_counter() - start

    if world > 1:
        gathered: list[Any] = [None] * world if rank == 0 else None
        torch.distributed.gather_object(parts, gathered, dst=0)
    else:
        gathered = [parts]
    path = None
    if rank == 0:
        merged: dict[str, list] = {k: [] for k in parts}
        for g in gathered:
            for k, rows in g.items():
                merged[k] += rows
        # paper parity: caller steps, then give-up steps, then conclusion steps
        final = [row for k in merged for _, row in sorted(merged[k], key=lambda x: x[0])]
        os.makedirs(infer_args.output_dir, exist_ok=True)
        write_text_atomic(out_path, json.dumps(final, indent=4))  # the original's json.dump(indent=4)
        path = out_path
        counts = Counter({k: len(v) for k, v in merged.items()})
        print(
            f"wrote {len(final)} predictions to {out_path} "
            f"({', '.join(f'{k}: {v}' for k, v in counts.items())}; {elapsed:.1f}s, "
            f"{len(mine) / max(elapsed, 1e-9):.2f} steps/s on rank 0)"
        )
    if world > 1:
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
    if infer_args.backend not in ("hf", "vllm"):
        raise InferError(f"--backend must be hf or vllm, got {infer_args.backend!r}")
    if infer_args.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise InferError("--backend vllm: vllm is not installed (pip install 'alpha-umi[vllm]')")
        if _world()[1] > 1:
            raise InferError("--backend vllm runs in one process: launch without torchrun")
    if model_args.use_logit_smooth:
        raise InferError("--use_logit_smooth is not supported")
    roles = ["backbone"] if model_args.backbone_model_name_or_path else ["planner", "caller", "summarizer"]
    for role in roles:
        path = getattr(model_args, f"{role}_model_name_or_path")
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
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO if _is_rank0() else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    model_args, data_args, infer_args = parse_args(argv)
    if _is_rank0():
        log.info(
            "arguments: %s", json.dumps({**asdict(model_args), **asdict(data_args), **asdict(infer_args)})
        )
    try:
        infer(model_args, data_args, infer_args)
    except (InferError, FormatError, DataError, ModelFolderError) as e:
        print(f"alpha-umi infer: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
