"""LoRA / QLoRA for GLPFT (peft) and ``alpha-umi merge-lora``, which writes a merged full model.

    alpha-umi merge-lora --adapter saved_models/toolbench/backbone-lora --out saved_models/toolbench/backbone
    # --base PATH overrides the base model recorded in the adapter's adapter_config.json

A merged folder is an ordinary checkpoint: stage 2 (planner / caller / summarizer) starts from it
exactly as from a fully fine-tuned backbone.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from glpft.formats import FormatError

DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class LoraArguments:
    """LoRA flags of ``alpha-umi train`` (off by default: the paper fine-tunes all weights)."""

    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    q_lora: bool = field(
        default=False, metadata={"help": "QLoRA: 4-bit NF4 base weights (needs CUDA + bitsandbytes)"}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA input"})
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "comma-separated module names, or 'all-linear'"},
    )


def target_modules(spec: str) -> str | list[str]:
    spec = spec.strip()
    return spec if spec == "all-linear" else [m.strip() for m in spec.split(",") if m.strip()]


def quantization_config(args: LoraArguments, compute_dtype):
    """BitsAndBytes 4-bit config for ``--q_lora``; a one-line FormatError where it cannot run."""
    if not args.q_lora:
        return None
    import torch

    if not torch.cuda.is_available():
        raise FormatError("--q_lora needs a CUDA GPU (bitsandbytes 4-bit)")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise FormatError("--q_lora needs bitsandbytes (pip install 'alpha-umi[qlora]')") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def wrap_lora(model, args: LoraArguments, gradient_checkpointing: bool = False):
    """Return ``model`` with trainable LoRA adapters (frozen base), ready for the Trainer."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.q_lora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        # the frozen embeddings output no grad; checkpointed blocks need an input that requires one
        model.enable_input_require_grads()
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=target_modules(args.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def is_adapter_dir(path: str | os.PathLike) -> bool:
    """True for a folder holding a peft adapter but no full model (it must be merged first)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def merge_lora(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    base: str | os.PathLike | None = None,
    dtype: str = "float32",
) -> Path:
    """Load base + adapter, fold the adapter into the weights and save a plain model + tokenizer.

    Damaged or missing inputs raise a one-line ModelFolderError naming the file.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from glpft.modeling import LOAD_ERRORS, ModelFolderError, adapter_base, check_model_files, first_line

    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file():
        raise ModelFolderError(f"{adapter_dir} holds no adapter_config.json")
    recorded = adapter_base(adapter_dir)  # a truncated adapter_config.json names itself here
    base = base or recorded
    if not (Path(base) / "config.json").is_file():
        raise ModelFolderError(f"base model folder not found: {base!r} (use --base)")
    check_model_files(adapter_dir)
    check_model_files(base)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except LOAD_ERRORS as e:
        raise ModelFolderError(f"cannot merge {adapter_dir} into {base}: {first_line(e)}") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base
    AutoTokenizer.from_pretrained(tok_src).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="alpha-umi merge-lora", description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="folder written by `alpha-umi train --use_lora`")
    ap.add_argument("--out", required=True, help="output folder for the merged model")
    ap.add_argument("--base", default=None, help="base model folder (default: the adapter's record)")
    ap.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype of the merged weights")
    ap.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    args = ap.parse_args(argv)
    if Path(args.out).is_dir() and any(Path(args.out).iterdir()) and not args.overwrite:
        ap.error(f"--out {args.out} is not empty (pass --overwrite)")
    try:
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise FormatError(f"--out {args.out} is a file, not a folder")
        out = merge_lora(args.adapter, args.out, args.base, args.dtype)
    except FormatError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"merged model written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
