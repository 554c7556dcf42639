"""GLPFT training: one causal LM fine-tuned on one role dataset (backbone, planner, caller or summarizer).

Stage 1 trains the backbone on ``train_backbone.json``; stage 2 starts three copies from it and
trains each on its role's file (``scripts/train_toolbench.sh`` runs all four with the paper's
hyper-parameters). Launch, e.g. on 8 GPUs with DeepSpeed ZeRO-3:

    torchrun --nproc_per_node=8 -m glpft.train \\
        --model_name_or_path meta-llama/Llama-2-7b-hf --data_path data/train/train_backbone.json \\
        --output_dir saved_models/toolbench/backbone --num_train_epochs 2 --learning_rate 5e-5 \\
        --warmup_ratio 0.4 --lr_scheduler_type cosine --bf16 --model_max_length 4096 \\
        --deepspeed GLPFT/ds_configs/zero3.json --gradient_checkpointing True

DeepSpeed configs: ``GLPFT/ds_configs/zero2.json``, ``zero3.json``, ``zero3_offload.json`` (the paper's
A100 setting); without DeepSpeed use FSDP, e.g. ``--fsdp "full_shard auto_wrap"``. LoRA: ``--use_lora
True`` (``--q_lora True`` for 4-bit), then ``alpha-umi merge-lora`` before stage 2. Paper parity: each
file keeps 2% aside for evaluation (``--eval_ratio 0`` trains on everything).

``alpha-umi train …`` takes the same flags (one process, or under torchrun). The paper's flag spellings
keep working on current transformers (``--evaluation_strategy``, ``--warmup_ratio``,
``--gradient_checkpointing``, ``--lazy_preprocess``). Batching is dynamic padding with length-grouped
batches by default; ``--packing`` packs several samples per row and ``--pad_to_max_length`` reproduces
the original pad-everything-to-4096 recipe. The final folder loads with ``AutoModelForCausalLM`` /
``AutoTokenizer`` and holds ``trainer_state.json``, ``loss_curve.png`` and ``glpft_args.json``.

Rerunning the same command is always safe (``glpft.resume``): a killed job resumes from its last
*complete* ``checkpoint-*`` (one cut short while being written is skipped); a finished job is left as it
is (exit 0), or refused when the arguments differ (exit 2); ``--overwrite_output_dir True`` retrains from
scratch. Bad flags, folders and files are one-line errors with exit status 2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import HfArgumentParser, Trainer
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from glpft.data import (
    IGNORE_INDEX,
    DataError,
    GLPFTCollator,
    PackedDataset,
    RoleDataset,
    SampleEncoder,
    ensure_pad_token,
    expand_data_paths,
    load_role_data,
)
from glpft.dist import is_rank0, world
from glpft.formats import FormatError, read_json
from glpft.lora import LoraArguments, is_adapter_dir, quantization_config, wrap_lora
from glpft.modeling import LOAD_ERRORS, check_model_files, first_line
from glpft.resume import args_record, plan_run, publish_checkpoint, read_state, write_args_record
from glpft.train_args import PROG, DataArguments, ModelArguments, concise_help

log = logging.getLogger("glpft.train")


class TrainError(FormatError):
    """A bad flag, model folder, config or output folder of a training job (one line, exit status 2)."""


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    cache_dir: str | None = field(default=None)
    group_by_length: bool = field(
        default=True, metadata={"help": "batch samples of similar length together (dynamic padding)"}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "train from scratch even if --output_dir holds checkpoints or a finished model"},
    )
    label_logits_only: bool = field(
        default=True,
        metadata={
            "help": "compute the LM head only at positions that carry a label (role targets; prompts are "
            "masked): the same loss with less time and memory; False computes logits everywhere"
        },
    )


#: paper spelling → current transformers field; applied where the installed transformers has the new
#: field and the old one is gone (or deprecated).
FLAG_ALIASES = {
    "evaluation_strategy": "eval_strategy",
    "warmup_ratio": "warmup_steps",  # transformers 5: a float in [0, 1) is a ratio
    "gradient_checkpointing": "activation_checkpointing",
}
DEPRECATED_FIELDS = {"gradient_checkpointing"}
ARG_TYPES = (ModelArguments, DataArguments, LoraArguments, TrainingArguments)


def rewrite_aliases(argv: list[str]) -> tuple[list[str], list[str]]:
    """Translate the paper's flag spellings to the installed transformers' names; return notes."""
    fields = {f.name for t in ARG_TYPES for f in dataclasses.fields(t)}
    out, notes = [], []
    for arg in argv:
        name, eq, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        new = FLAG_ALIASES.get(name)
        if new and new in fields and (name not in fields or name in DEPRECATED_FIELDS):
            arg = f"--{new}{eq}{value}"
            notes.append(
                f"--{name} is spelled --{new} in transformers {transformers.__version__}; translated"
            )
        out.append(arg)
    return out, list(dict.fromkeys(notes))


def configure_cpu_distributed(train_kwargs: dict) -> None:
    """Make torchrun work on a GPU-less box (tests, CI): gloo DDP, or DeepSpeed over gloo.

    accelerate only treats a torchrun job as distributed on CPU when told to (``use_cpu``), and only
    starts DeepSpeed's process group on accelerators; without this every CPU rank trains alone.
    """
    import torch

    if torch.cuda.is_available() or world().size < 2:
        return
    if not train_kwargs.get("deepspeed"):
        train_kwargs["use_cpu"] = True
        return
    from accelerate import PartialState

    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        PartialState(backend="gloo")
    finally:
        del os.environ["ACCELERATE_USE_DEEPSPEED"]
    train_kwargs["accelerator_config"] = {"use_configured_state": True}


def parse_args(argv: list[str]):
    """Dataclasses from the command line, with aliases translated and one-line errors."""
    argv, notes = rewrite_aliases(argv)
    parser = HfArgumentParser(ARG_TYPES, prog=PROG)
    namespace, rest = parser.parse_known_args(argv)
    if rest:
        raise TrainError(f"unknown arguments: {' '.join(rest)}")
    values = vars(namespace)
    kwargs = [{f.name: values.pop(f.name) for f in dataclasses.fields(t) if f.init} for t in ARG_TYPES]
    # fail fast, before any process group starts
    if not any(a.split("=")[0] in ("--output_dir", "--output-dir") for a in argv):
        raise TrainError("--output_dir is required")
    if not kwargs[0]["model_name_or_path"]:
        raise TrainError("--model_name_or_path is required")
    check_model_path(kwargs[0]["model_name_or_path"])
    if not kwargs[1]["data_path"]:
        raise TrainError("--data_path is required")
    expand_data_paths(kwargs[1]["data_path"])
    if kwargs[1]["packing"] and kwargs[1]["pad_to_max_length"]:
        raise TrainError("--packing and --pad_to_max_length exclude each other")
    if kwargs[3]["deepspeed"]:
        read_deepspeed_config(kwargs[3]["deepspeed"])  # TrainingArguments parses it next
    configure_cpu_distributed(kwargs[3])
    try:
        model_args, data_args, lora_args, train_args = (t(**kw) for t, kw in zip(ARG_TYPES, kwargs))
    except (ValueError, OSError, ImportError) as e:
        raise TrainError(first_line(e)) from None
    if data_args.pad_to_max_length:
        train_args.group_by_length = False  # paper parity: the original samples batches at random
    return model_args, data_args, lora_args, train_args, notes


class LossProgress(ProgressCallback):
    """The Trainer's progress bar (steps, elapsed, ETA) with the latest loss and learning rate in it,
    instead of a ``{'loss': …}`` dict printed every logging step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and self.training_bar is not None and logs):
            return
        shown = {
            k: f"{logs[k]:.4g}"
            for k in ("loss", "learning_rate", "eval_loss")
            if isinstance(logs.get(k), float)
        }
        if shown:
            self.training_bar.set_postfix(shown, refresh=False)
        if "train_runtime" in logs:  # the end-of-training summary is worth one line
            self.training_bar.write(
                f"trained {state.global_step} steps in {logs['train_runtime']:.0f}s, "
                f"train_loss {logs.get('train_loss', float('nan')):.4g}"
            )


class GLPFTTrainer(Trainer):
    """Trainer whose length-grouped sampler reads the lengths our datasets already know, and whose
    loss runs the LM head only where a label is (``--label_logits_only``)."""

    _logits_to_keep: bool | None = None

    def _accepts_logits_to_keep(self, model) -> bool:
        if self._logits_to_keep is None:
            import inspect

            inner = self.accelerator.unwrap_model(model)
            inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
            self._logits_to_keep = "logits_to_keep" in inspect.signature(inner.forward).parameters
        return self._logits_to_keep

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        if (
            not getattr(self.args, "label_logits_only", False)
            or return_outputs
            or labels is None
            or self.label_smoother is not None
            or self.compute_loss_func is not None
            or not self._accepts_logits_to_keep(model)
        ):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        import torch
        import torch.nn.functional as F

        # position t predicts token t + 1: keep the positions where any row of the batch has a label
        shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
        keep = (shifted != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, logits_to_keep=keep)
        logits = outputs.logits.float()
        target = shifted[:, keep].to(logits.device)
        total = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            target.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        # the reductions of Trainer.compute_loss: over the accumulated batch when it counts the items
        if self.model_accepts_loss_kwargs and num_items_in_batch is not None:
            loss = total / torch.as_tensor(num_items_in_batch, device=total.device)
            if self.args.average_tokens_across_devices:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        else:
            loss = total / (target != IGNORE_INDEX).sum().clamp(min=1)
        return loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if getattr(self.args, "group_by_length", False) and hasattr(dataset, "lengths"):
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=dataset.lengths
            )
        return super()._get_train_sampler(train_dataset)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # fixes: the final train_loss adds only this rank's loss since the last logging step, so without a
        # logging step it was rank 0's loss alone. Each rank holds (mean of ranks until the last logging
        # step + its own remainder) / steps; the mean over ranks is the loss of the whole batch.
        if "train_loss" in logs and self.args.world_size > 1:
            import torch

            value = torch.tensor(float(logs["train_loss"]), device=self.args.device)
            logs["train_loss"] = self.accelerator.reduce(value, reduction="mean").item()
        super().log(logs, start_time)


# --- building blocks -------------------------------------------------------------------------------


def check_model_path(path: str) -> None:
    """One-line errors for a missing folder, an unmerged LoRA adapter or damaged model files."""
    if os.path.isdir(path):
        if is_adapter_dir(path):
            raise TrainError(
                f"{path} is a LoRA adapter; merge it first (alpha-umi merge-lora --adapter {path} --out …)"
            )
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise TrainError(f"--model_name_or_path {path} holds no config.json")
        check_model_files(path)  # a truncated config.json or model.safetensors names itself here
    elif path.startswith((".", "/", "~")) or path.count("/") != 1 or os.path.exists(path):
        # not a folder and not shaped like a hub id ("org/name")
        raise TrainError(f"--model_name_or_path: no such model folder: {path}")


def load_tokenizer(model_args: ModelArguments, data_args: DataArguments, cache_dir: str | None):
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            model_args.model_name_or_path,
            cache_dir=cache_dir,
            model_max_length=data_args.model_max_length,
            padding_side="right",
        )
    except LOAD_ERRORS as e:
        raise TrainError(
            f"cannot load the tokenizer of {model_args.model_name_or_path!r}: {first_line(e)}"
        ) from None
    name = model_args.model_name_or_path
    try:
        note = ensure_pad_token(tokenizer)
    except DataError as e:
        raise TrainError(f"{name}: {e}") from None
    if note:
        log.info(note)
    if tokenizer.eos_token_id is None:
        raise TrainError(f"{name}: the tokenizer has no eos token; GLPFT targets end with EOS")
    return tokenizer


def load_model(
    model_args: ModelArguments, lora_args: LoraArguments, train_args: TrainingArguments, tokenizer
):
    """The causal LM in float32 (or bf16 for LoRA + --bf16), LoRA-wrapped when asked."""
    import torch

    if model_args.model_dtype:
        dtype = getattr(torch, model_args.model_dtype)
    elif (lora_args.use_lora or lora_args.q_lora) and train_args.bf16:
        dtype = torch.bfloat16
    else:
        dtype = torch.float32
    attn = model_args.attn_implementation
    if attn is None and torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            attn = "flash_attention_2"
        except ImportError:
            attn = None
    kwargs = {"dtype": dtype, "cache_dir": train_args.cache_dir}
    if attn:
        kwargs["attn_implementation"] = attn
    qcfg = quantization_config(lora_args, torch.bfloat16 if train_args.bf16 else torch.float32)
    if qcfg is not None:
        kwargs["quantization_config"] = qcfg
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, **kwargs)
    except LOAD_ERRORS as e:
        raise TrainError(f"cannot load model {model_args.model_name_or_path!r}: {first_line(e)}") from None
    model.config.use_cache = False
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if lora_args.use_lora or lora_args.q_lora:
        checkpointing = (
            getattr(train_args, "activation_checkpointing", None) or train_args.gradient_checkpointing
        )
        model = wrap_lora(model, lora_args, bool(checkpointing))
        if is_rank0():
            model.print_trainable_parameters()
    return model


def build_datasets(data_args: DataArguments, tokenizer, seed: int, flash: bool):
    """(train dataset, eval dataset or None, collator) for the chosen batching mode."""
    train_rows, eval_rows = load_role_data(
        data_args.data_path,
        data_args.max_num_sample_per_data,
        data_args.max_num_sample_ratio,
        data_args.eval_ratio,
        seed,
    )
    if not train_rows:
        raise DataError(f"--data_path {data_args.data_path}: no training samples")
    encoder = SampleEncoder(tokenizer, data_args.model_max_length)
    lazy = data_args.lazy_preprocess and not data_args.packing
    if data_args.lazy_preprocess and data_args.packing:
        log.info("--packing needs exact lengths: tokenising up front despite --lazy_preprocess")
    train_ds = RoleDataset(train_rows, encoder, lazy=lazy)
    eval_ds = RoleDataset(eval_rows, encoder, lazy=lazy) if eval_rows else None
    mode = "packed" if data_args.packing else "max_length" if data_args.pad_to_max_length else "dynamic"
    if mode == "packed":
        n_samples = len(train_ds)
        train_ds = PackedDataset(train_ds, data_args.model_max_length)
        eval_ds = PackedDataset(eval_ds, data_args.model_max_length) if eval_ds is not None else None
        log.info(
            "packing: %d samples → %d rows of ≤%d tokens",
            n_samples,
            len(train_ds),
            data_args.model_max_length,
        )
    log.info(
        "#train %d, #eval %d, mean length %.0f tokens, batching: %s",
        len(train_rows),
        len(eval_rows),
        sum(train_ds.lengths) / max(1, len(train_rows)),
        mode,
    )
    collator = GLPFTCollator(
        pad_token_id=tokenizer.pad_token_id,
        mode=mode,
        max_len=data_args.model_max_length,
        pad_to_multiple_of=data_args.pad_to_multiple_of,
        flatten=flash and mode == "packed",
    )
    return train_ds, eval_ds, collator


def read_deepspeed_config(cfg: str | dict) -> dict:
    """The ``--deepspeed`` config, with one-line errors when DeepSpeed is missing or the file is bad."""
    if importlib.util.find_spec("deepspeed") is None:
        raise TrainError(
            "--deepspeed needs DeepSpeed, which is not installed (pip install 'alpha-umi[deepspeed]')"
        )
    if isinstance(cfg, dict):
        return cfg
    if not os.path.isfile(cfg):
        raise TrainError(f"--deepspeed: no such config file: {cfg}")
    return read_json(cfg, expect=dict)


def check_deepspeed_config(train_args: TrainingArguments) -> None:
    """fixes: under ZeRO-3 the final save must gather 16-bit weights, or the weights are empty."""
    if not train_args.deepspeed:
        return
    cfg = read_deepspeed_config(train_args.deepspeed)
    zero = cfg.get("zero_optimization", {})
    zero = zero if isinstance(zero, dict) else {}
    gather = zero.get(
        "stage3_gather_16bit_weights_on_model_save", zero.get("gather_16bit_weights_on_model_save")
    )
    if zero.get("stage") == 3 and gather is not True:
        raise TrainError(
            f"--deepspeed {train_args.deepspeed}: ZeRO-3 config must set "
            "stage3_gather_16bit_weights_on_model_save: true (otherwise the final model is saved without weights)"
        )
    if "scheduler" in cfg and train_args.lr_scheduler_type != "linear":
        log.warning(
            "the DeepSpeed config's own scheduler overrides --lr_scheduler_type %s",
            train_args.lr_scheduler_type,
        )


def planned_steps(trainer: Trainer) -> int:
    """The optimizer steps this job runs in all (``--max_steps``, else epochs × steps per epoch)."""
    return trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1]


def plot_loss(log_history: list[dict], path: str | os.PathLike) -> Path | None:
    """Training (and eval) loss against step, as a PNG; None when no loss was logged."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


# --- entry point -----------------------------------------------------------------------------------


def train(model_args, data_args, lora_args, train_args) -> Path:
    """Run one GLPFT job and write the final model, trainer_state.json, loss_curve.png, glpft_args.json.

    A finished job (same arguments) returns at once, printing one line; see :func:`plan_run`.
    """
    transformers.set_seed(train_args.seed)
    check_deepspeed_config(train_args)
    out = Path(train_args.output_dir)
    record = args_record(model_args, data_args, lora_args, train_args)
    plan = plan_run(out, record, train_args.overwrite_output_dir, train_args.resume_from_checkpoint)
    if plan.finished:
        if is_rank0():
            print(plan.finished, flush=True)
        return out
    resume = plan.resume
    tokenizer = load_tokenizer(model_args, data_args, train_args.cache_dir)
    model = load_model(model_args, lora_args, train_args, tokenizer)
    flash = str(getattr(model.config, "_attn_implementation", "")).startswith("flash")
    train_ds, eval_ds, collator = build_datasets(data_args, tokenizer, train_args.seed, flash)
    trainer = GLPFTTrainer(
        model=model,
        args=train_args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if train_args.eval_strategy != "no" else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    if not train_args.disable_tqdm:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(LossProgress)
    if resume:
        done, total = read_state(resume)["global_step"], planned_steps(trainer)
        if done > total:
            raise TrainError(
                f"{resume} is at step {done}, past this job's last step ({total}); pass "
                "--overwrite_output_dir True to retrain, or choose another --output_dir"
            )
        if done == total:
            # fixes: resuming from the last step's checkpoint trained one extra step (at learning rate 0)
            log.info(
                "%s already holds the last step (%d of %d): it becomes the final model", resume, done, total
            )
            if trainer.is_world_process_zero():
                write_args_record(out, record)
                publish_checkpoint(resume, out)
                finish(read_state(out)["log_history"], out)
            return out
        log.info("resuming from %s (step %d of %d)", resume, done, total)
    trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        write_args_record(out, record)  # before the final files: their state file marks "finished"
    trainer.save_model(train_args.output_dir)  # ZeRO-3: consolidates the 16-bit weights first
    trainer.save_state()  # trainer_state.json, last
    if trainer.is_world_process_zero():
        finish(trainer.state.log_history, out)
    return out


def finish(log_history: list[dict], out: Path) -> None:
    png = plot_loss(log_history, out / "loss_curve.png")
    log.info("model saved to %s%s", out, f"; loss curve {png}" if png else "")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help-all" in argv:
        argv = ["--help"]
    elif "-h" in argv or "--help" in argv:
        print(concise_help())
        return 0
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if is_rank0() else logging.WARNING,
    )
    try:
        model_args, data_args, lora_args, train_args, notes = parse_args(argv)
        transformers.utils.logging.set_verbosity(train_args.get_process_log_level())
        for note in notes:
            log.info(note)
        train(model_args, data_args, lora_args, train_args)
    except FormatError as e:  # TrainError, DataError, ModelFolderError, a bad JSON file
        if is_rank0():
            print(f"{PROG}: error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
