"""Where a GLPFT training job stands in its ``--output_dir``: finished, resumable from a checkpoint, or new.

The Trainer writes a checkpoint's ``trainer_state.json`` last, so a ``checkpoint-N`` whose state file is
missing or does not parse, or whose weights are missing or truncated, was cut short while being written:
it is skipped (and named) and the job resumes from the last complete one. A finished job's folder holds
the final weights, ``trainer_state.json`` and ``glpft_args.json`` (the arguments it ran with, written just
before the final model), so a rerun can tell "this job, already done" from "another job, same folder".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glpft.dist import is_rank0
from glpft.formats import FormatError, read_json, write_json_atomic
from glpft.modeling import ModelFolderError, check_model_files, has_weights

log = logging.getLogger(__name__)

ARGS_FILE = "glpft_args.json"
STATE_FILE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")

#: Arguments that change neither the data, the model nor the optimisation (where outputs, logs and
#: checkpoints go, how the job was launched and resumed); every other argument is compared on a rerun.
UNCOMPARED = frozenset(
    {
        "output_dir", "overwrite_output_dir", "resume_from_checkpoint", "logging_dir", "logging_strategy",
        "logging_steps", "logging_first_step", "log_on_each_node", "logging_nan_inf_filter", "log_level",
        "log_level_replica", "disable_tqdm", "report_to", "run_name", "project", "save_strategy",
        "save_steps", "save_on_each_node", "save_total_limit", "save_only_model", "enable_jit_checkpoint",
        "push_to_hub", "ddp_timeout", "local_rank", "use_cpu", "accelerator_config", "cache_dir",
        "dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers",
        "dataloader_prefetch_factor", "dataloader_multiprocessing_context", "skip_memory_metrics",
        "do_train", "do_eval", "do_predict",
    }
)  # fmt: skip
UNCOMPARED_PREFIXES = ("hub_", "trackio_", "_")
PATH_ARGS = ("model_name_or_path", "data_path", "deepspeed")

#: Files of a checkpoint needed only to resume it (optimizer, scheduler, RNG, DeepSpeed/FSDP shards).
RESUME_ONLY = re.compile(r"^(optimizer.*|scheduler\.pt|scaler\.pt|rng_state.*\.pth|latest|zero_to_.*\.py)$")


class OutputDirError(FormatError):
    """An output folder this job must not write into (one line naming the folder and the way out)."""


# --- checkpoints ---------------------------------------------------------------------------------


def read_state(folder: str | os.PathLike) -> dict | None:
    """``trainer_state.json`` of a checkpoint or output folder; None when missing or unreadable."""
    try:
        state = read_json(Path(folder) / STATE_FILE, expect=dict)
    except FormatError:
        return None
    return state if isinstance(state.get("global_step"), int) else None


def _sharded_weights(folder: Path) -> bool:
    """DeepSpeed (``global_step*``) or FSDP (``pytorch_model_fsdp*``) weights the Trainer resumes from."""
    return any(p.name.startswith(("global_step", "pytorch_model_fsdp")) for p in folder.iterdir())


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` cannot be resumed from (e.g. "no trainer_state.json"), or None when complete."""
    folder = Path(folder)
    if not folder.is_dir():
        return "no such folder"
    if not (folder / STATE_FILE).is_file():
        return f"no {STATE_FILE}"
    if read_state(folder) is None:
        return f"{STATE_FILE} is not valid (cut short while written?)"
    if not has_weights(folder) and not _sharded_weights(folder):
        return "no weights"
    try:
        check_model_files(folder)
    except ModelFolderError as e:
        return str(e).removeprefix(f"{folder}{os.sep}")
    return None


def checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-N`` folders of ``out_dir``, by step."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(out_dir: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """(the last complete checkpoint or None, "checkpoint-N (why)" for each later one skipped).

    fixes: transformers picks the highest-numbered folder, so one cut short by a kill made every rerun
    fail with "Can't find a valid checkpoint".
    """
    skipped = []
    for ckpt in reversed(checkpoints(out_dir)):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return ckpt, skipped
        skipped.append(f"{ckpt.name} ({problem})")
    return None, skipped


def is_finished(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir`` holds a final model: whole weights beside a valid trainer_state.json."""
    out = Path(out_dir)
    if read_state(out) is None or not has_weights(out):
        return False
    try:
        check_model_files(out)
    except ModelFolderError:
        return False
    return True


def publish_checkpoint(ckpt: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Copy a checkpoint's model, tokenizer and state into ``out_dir`` as the final model.

    trainer_state.json goes last (via a temporary file), so an interrupted copy is never "finished".
    """
    ckpt, out = Path(ckpt), Path(out_dir)
    if not has_weights(ckpt):
        raise OutputDirError(
            f"{ckpt}: holds the last step but only sharded weights; consolidate them (DeepSpeed's "
            f"zero_to_fp32.py) or pass --overwrite_output_dir True to retrain"
        )
    files = [p for p in sorted(ckpt.iterdir()) if p.is_file() and not RESUME_ONLY.match(p.name)]
    for src in files:
        if src.name != STATE_FILE:
            shutil.copy2(src, out / src.name)
    tmp = out / f".{STATE_FILE}.tmp"
    shutil.copy2(ckpt / STATE_FILE, tmp)
    os.replace(tmp, out / STATE_FILE)


def clear_previous_run(out_dir: str | os.PathLike, keep: str | os.PathLike | None = None) -> list[str]:
    """Remove the checkpoints (but ``keep``), state and argument record of an earlier run
    (``--overwrite_output_dir``): otherwise a later rerun could resume from, or report as finished, the
    old job. Returns what went."""
    out = Path(out_dir)
    removed = []
    for ckpt in checkpoints(out):
        if keep is not None and ckpt.resolve() == Path(keep).resolve():
            continue
        shutil.rmtree(ckpt)
        removed.append(ckpt.name)
    for name in (STATE_FILE, ARGS_FILE):
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(name)
    return removed


# --- the decision ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a job does with its output folder: nothing (``finished``), resume, or start afresh."""

    finished: str | None = None  # the line printed when there is nothing to do
    resume: str | None = None  # checkpoint folder


def plan_run(
    out: str | os.PathLike, record: dict[str, Any], overwrite: bool = False, explicit: str | None = None
) -> Plan:
    """Decide from the output folder whether this job is done, resumes (from which checkpoint) or starts.

    ``record`` is this job's :func:`args_record`, ``overwrite`` its ``--overwrite_output_dir`` and
    ``explicit`` its ``--resume_from_checkpoint``. Raises a one-line OutputDirError for a finished job with
    other arguments, a folder holding a model this job did not write, and an incomplete ``explicit``.
    """
    if explicit and (problem := checkpoint_problem(explicit)):
        raise OutputDirError(f"--resume_from_checkpoint {explicit}: not a complete checkpoint ({problem})")
    if not os.path.isdir(out):
        return Plan(resume=explicit)
    if overwrite:
        if is_rank0() and (removed := clear_previous_run(out, keep=explicit)):
            log.info("--overwrite_output_dir: removed %s of the previous run in %s", ", ".join(removed), out)
        return Plan(resume=explicit)
    if is_finished(out):
        old = read_args_record(out)
        if old is None:
            return Plan(finished=f"{out}: training already finished (arguments not recorded); nothing to do")
        if changes := changed_args(old, record):
            shown = "; ".join(changes[:4]) + (f"; … {len(changes) - 4} more" if len(changes) > 4 else "")
            raise OutputDirError(
                f"{out} holds a model trained with other arguments ({shown}); pass "
                "--overwrite_output_dir True to retrain from scratch, or choose another --output_dir"
            )
        return Plan(finished=f"{out}: training already finished with these arguments; nothing to do")
    if explicit:
        return Plan(resume=explicit)
    last, skipped = last_complete_checkpoint(out)
    if skipped and is_rank0():
        log.warning("skipping incomplete checkpoints in %s: %s", out, ", ".join(skipped))
    if last is None:
        if any(os.path.isfile(os.path.join(out, f)) for f in ("config.json", "adapter_config.json")):
            raise OutputDirError(
                f"{out} already holds a model that is not this job's finished output; "
                "pass --overwrite_output_dir True to retrain"
            )
        return Plan()
    return Plan(resume=str(last))


# --- the argument record -------------------------------------------------------------------------


def _compared(name: str) -> bool:
    return name not in UNCOMPARED and not name.startswith(UNCOMPARED_PREFIXES)


def _normalise_path(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return ",".join(os.path.abspath(p) if os.path.exists(p) else p for p in parts)


def args_record(*arg_objects: Any) -> dict[str, Any]:
    """The compared arguments of a job as JSON values, by field name (local paths made absolute)."""
    record: dict[str, Any] = {}
    for obj in arg_objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        record.update({k: v for k, v in values.items() if _compared(k)})
    for name in PATH_ARGS:
        if name in record:
            record[name] = _normalise_path(record[name])
    return json.loads(json.dumps(record, default=str, sort_keys=True))


def read_args_record(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``glpft_args.json`` of a finished job (None when the job predates it); one-line errors."""
    path = Path(out_dir) / ARGS_FILE
    if not path.exists():
        return None
    return read_json(path, expect=dict)


def write_args_record(out_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    write_json_atomic(Path(out_dir) / ARGS_FILE, record, indent=2)


def changed_args(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``--name old → new`` for each argument both records hold with different values."""
    return [
        f"--{k} {json.dumps(old[k])} → {json.dumps(new[k])}"
        for k in sorted(old.keys() & new.keys())
        if _compared(k) and old[k] != new[k]
    ]
