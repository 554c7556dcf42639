"""The agents of the real-time jobs from command-line flags: the α-UMi roles (or one backbone, or an
OpenAI function-calling model), loaded here or called on an OpenAI-compatible completions server.

Shared by ``alpha-umi run-queries`` and ``alpha-umi serve-agent``: the paper's flag names
(``--planner_model_path``, ``--planner_use_lora``, ``--use_multi_gpu`` …) keep working.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from glpft.constraints import CONSTRAINT_MODES, SERVERS
from glpft.prompts import AGENT_ROLES, TRAIN_PREFIX, get_template
from toolbench_multillm.agents import AlphaUmiAgent, BackboneAgent, OpenAIAgent
from toolbench_multillm.generators import RemoteGenerator, load_generators

BACKBONES = ("collab_agent_v3", "backbone", "openai_function")


def str2bool(text: str) -> bool:
    """The paper's boolean flags take values (``--planner_use_lora False``)."""
    return str(text).lower() in ("true", "t", "1", "yes", "y")


def add_agent_args(p: argparse.ArgumentParser) -> None:
    """The agent, model and decoding flags."""
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
    g.add_argument(
        "--constrained_decoding",
        choices=CONSTRAINT_MODES,
        default="off",
        help="off (paper parity); caller: an offered tool name and a JSON object of its parameters; "
        "all: also the planner ends with exactly one Next: marker",
    )
    g.add_argument(
        "--structured_outputs",
        choices=SERVERS,
        default="serve-models",
        help="--model_backend openai: how the server takes a grammar (vllm: structured_outputs, "
        "vllm-legacy: guided_grammar, sglang: ebnf)",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--model_backend",
        choices=("local", "openai"),
        default="local",
        help="local: load the role models here; openai: call them on an OpenAI-compatible completions "
        "server (--model_base_url; alpha-umi serve-models, vLLM, SGLang), the same prompts as text",
    )
    g.add_argument(
        "--model_base_url", default=None, help="--model_backend openai: e.g. http://127.0.0.1:8000/v1"
    )
    for role in (*AGENT_ROLES, "backbone"):
        g.add_argument(
            f"--{role}_served_model", default=role, help=f"--model_backend openai: the {role}'s model name"
        )
    g = p.add_argument_group("OpenAI-compatible agent")
    g.add_argument("--openai_base_url", default="http://127.0.0.1:8000/v1")
    g.add_argument("--openai_model", default="gpt-3.5-turbo-16k-0613")
    g.add_argument("--openai_key", default=None, help="default: $OPENAI_API_KEY; never written anywhere")


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
    if args.model_backend == "openai":
        from glpft.remote import CompletionsBackend

        if not args.model_base_url:
            raise ValueError("--model_backend openai needs --model_base_url (e.g. http://127.0.0.1:8000/v1)")
        backend = CompletionsBackend(args.model_base_url, os.environ.get("OPENAI_API_KEY"))
        config = decoding_config(args)
        return {
            role: RemoteGenerator(
                backend,
                getattr(args, f"{role}_served_model"),
                config,
                args.context_length,
                args.seed,
                server=args.structured_outputs,
            )
            for role in specs
        }
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
        if not path and args.model_backend == "local":
            raise ValueError("--backbone_model backbone needs --model_path (or --lora --lora_path)")
        gens = _generators({"backbone": (path, bool(args.lora), devices["planner"])}, args)
        return BackboneAgent(gens["backbone"], prefix=prefix)
    specs = {}
    for role in AGENT_ROLES:
        path = getattr(args, f"{role}_model_path")
        if not path and args.model_backend == "local":
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
        gens["planner"],
        gens["caller"],
        gens["summarizer"],
        prefix=prefix,
        templates=templates,
        constrained=args.constrained_decoding,
    )
