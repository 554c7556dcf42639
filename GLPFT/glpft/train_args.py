"""The arguments of ``alpha-umi train`` that are this project's own, and its concise ``--help``.

Kept apart from :mod:`glpft.train` so that ``alpha-umi train --help`` answers without importing the
Trainer (seconds of imports); every ``transformers.TrainingArguments`` flag also works there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from glpft.lora import DTYPES, LoraArguments

PROG = "alpha-umi train"


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "base model folder (stage 1) or the trained backbone (stage 2)"}
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "sdpa, eager, flash_attention_2 … (default: flash_attention_2 when installed on GPU)"
        },
    )
    model_dtype: str | None = field(
        default=None,
        metadata={
            "help": "dtype the weights are loaded in: float32 (default; mixed precision comes from --bf16) "
            "or bfloat16/float16 (default for LoRA with --bf16)",
            "choices": DTYPES,
        },
    )


@dataclass
class DataArguments:
    data_path: str | None = field(
        default=None, metadata={"help": "role sample files (.json/.jsonl) or folders, comma-separated"}
    )
    model_max_length: int = field(default=4096, metadata={"help": "tokens per sample; longer keep their end"})
    lazy_preprocess: bool = field(default=False, metadata={"help": "tokenise samples on first use"})
    max_num_sample_per_data: int = field(default=0, metadata={"help": "cap on samples per file (0: all)"})
    max_num_sample_ratio: float = field(
        default=0.0, metadata={"help": "fraction of each file to use (0: all)"}
    )
    eval_ratio: float = field(
        default=0.02, metadata={"help": "share of each file held out for evaluation (paper: 0.02)"}
    )
    packing: bool = field(
        default=False, metadata={"help": "pack several samples per row (no cross attention)"}
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "pad every sample to model_max_length (the original recipe)"}
    )
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "round batch widths up (e.g. 8)"})


#: The Trainer flags a GLPFT job usually sets (``--help-all`` lists all of transformers' own).
COMMON_TRAINER_FLAGS = (
    ("--output_dir DIR", "where checkpoints and the final model go (required)"),
    ("--num_train_epochs N / --max_steps N", "length of the job"),
    ("--per_device_train_batch_size N", "batch size per process; --gradient_accumulation_steps N"),
    ("--learning_rate LR --lr_scheduler_type cosine", "optimiser schedule (paper: cosine)"),
    ("--warmup_ratio R", "warm-up fraction (paper spelling; translated to --warmup_steps)"),
    ("--weight_decay W", "AdamW weight decay"),
    ("--bf16 True / --fp16 True", "mixed precision on GPUs"),
    ("--deepspeed CFG", "GLPFT/ds_configs/{zero2,zero3,zero3_offload,stage2,stage3,stage3-a100}.json"),
    ("--fsdp 'full_shard auto_wrap'", "FSDP instead of DeepSpeed"),
    ("--gradient_checkpointing True", "activation checkpointing (paper spelling)"),
    (
        "--save_strategy steps --save_steps N --save_total_limit K",
        "checkpoints (a rerun resumes from the last complete one)",
    ),
    ("--logging_steps N --report_to none", "loss logging"),
    ("--overwrite_output_dir True", "retrain a finished job from scratch"),
    ("--seed N", "everything is seeded"),
)


def concise_help() -> str:
    """``--help``: this project's flags and the common Trainer flags, not transformers' 600 lines."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser((ModelArguments, DataArguments, LoraArguments), prog=PROG)
    parser.description = "GLPFT training: one causal LM fine-tuned on one role dataset."
    width = max(len(f) for f, _ in COMMON_TRAINER_FLAGS)
    lines = [f"  {f:<{width}}  {h}" for f, h in COMMON_TRAINER_FLAGS]
    return (
        parser.format_help()
        + "\ncommon Trainer flags (every transformers.TrainingArguments flag works; --help-all lists them):\n"
        + "\n".join(lines)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """``alpha-umi train``: the concise help without the heavy imports, else :func:`glpft.train.main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if ("-h" in argv or "--help" in argv) and "--help-all" not in argv:
        print(concise_help())
        return 0
    from glpft.train import main as train_main

    return train_main(argv)
