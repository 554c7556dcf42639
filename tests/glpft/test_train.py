"""GLPFT training entry point: flags, errors, a few real optimizer steps, resume, DeepSpeed configs, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from glpft.train import main, parse_args

REPO = Path(__file__).resolve().parents[2]
DS_CONFIGS = REPO / "GLPFT" / "ds_configs"

PAPER_FLAGS = (
    "--num_train_epochs 2 --per_device_train_batch_size 6 --per_device_eval_batch_size 6 "
    "--gradient_accumulation_steps 1 --evaluation_strategy no --eval_steps 0 --save_strategy steps "
    "--save_steps 500 --save_total_limit 8 --learning_rate 5e-5 --weight_decay 0.01 --warmup_ratio 0.4 "
    "--lr_scheduler_type cosine --gradient_checkpointing True --logging_steps 2 "
    "--model_max_length 4096 --report_to none --lazy_preprocess True"
).split()


def role_file(path: Path, n: int = 24) -> Path:
    """A small role-sample file shaped like the real ones (long prompt, short target)."""
    rows = [
        {
            "tools": [],
            "history": [],
            "input": "user: What is the weather in Paris?</s>" * (1 + i % 3) + " assistant: ",
            "target": "I should call the weather api. Next: caller." if i % 2 else "Next: conclusion.",
        }
        for i in range(n)
    ]
    path.write_text(json.dumps(rows))
    return path


def train_argv(model_dir, data, out, *extra: str) -> list[str]:
    return [
        "--model_name_or_path", str(model_dir), "--data_path", str(data), "--output_dir", str(out),
        "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--logging_steps", "1",
        "--model_max_length", "96", "--report_to", "none", "--save_strategy", "no", "--seed", "0",
        "--dataloader_pin_memory", "False", *extra,
    ]  # fmt: skip


def losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> bool:
    assert before.keys() == after.keys() and all(t.numel() > 0 for t in after.values())
    return any(not torch.equal(before[k], after[k].to(before[k].dtype)) for k in before)


def test_paper_flags_parse_with_their_old_spellings(tiny_model_dir, tmp_path):
    data = role_file(tmp_path / "d.json")
    argv = [
        "--model_name_or_path",
        str(tiny_model_dir),
        "--data_path",
        str(data),
        "--output_dir",
        str(tmp_path),
    ]
    model_args, data_args, lora_args, train_args, notes = parse_args(
        argv + PAPER_FLAGS + ["--bf16", "--use_cpu", "True"]
    )
    assert train_args.eval_strategy == "no" and train_args.lr_scheduler_type == "cosine"
    assert train_args.warmup_steps == 0.4
    assert getattr(train_args, "activation_checkpointing", None) or train_args.gradient_checkpointing
    assert train_args.bf16 and train_args.weight_decay == 0.01 and train_args.save_total_limit == 8
    assert data_args.model_max_length == 4096 and data_args.lazy_preprocess and not lora_args.use_lora
    assert any("--evaluation_strategy" in n for n in notes)
    _, data_args, _, train_args, _ = parse_args(
        argv + ["--max_num_sample_per_data", "5", "--max_num_sample_ratio", "0.5"]
    )
    assert (data_args.max_num_sample_per_data, data_args.max_num_sample_ratio) == (5, 0.5)
    assert train_args.group_by_length and not data_args.packing


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--model_name_or_path": "/nonexistent/model"}, "no such model folder"),
        ({"--data_path": "/nonexistent/data.json"}, "no such file or folder"),
        ({"--no_such_flag": "1"}, "unknown arguments: --no_such_flag"),
        ({"--packing": "True", "--pad_to_max_length": "True"}, "exclude each other"),
        ({"--output_dir": None}, "--output_dir is required"),
    ],
)
def test_wrong_paths_and_flags_give_one_line_errors(tiny_model_dir, tmp_path, capsys, change, message):
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), tmp_path / "out", "--max_steps", "1")
    flags = dict(zip(argv[::2], argv[1::2]))
    flags.update(change)
    argv = [x for flag, value in flags.items() if value is not None for x in (flag, value)]
    assert message in one_line_error(capsys, argv)


def one_line_error(capsys, argv: list[str]) -> str:
    """Run `alpha-umi train argv`; assert exit status 2 and one stderr line; return it."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alpha-umi train: error: ") and "\n" not in err, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--packing", "True"]], ids=["dynamic", "packing"])
def test_a_few_steps_reduce_loss_change_weights_and_save_a_loadable_model(tiny_model_dir, tmp_path, mode):
    out = tmp_path / "out"
    data = role_file(tmp_path / "d.json")
    assert main(train_argv(tiny_model_dir, data, out, "--max_steps", "8", *mode)) == 0
    loss = losses(out)
    assert len(loss) == 8 and loss[-1] < loss[0]
    assert changed(weights(tiny_model_dir), weights(out))
    assert (out / "loss_curve.png").stat().st_size > 0
    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).pad_token_id is not None


@pytest.mark.parametrize(
    "mode",
    [[], ["--packing", "True"], ["--use_lora", "True"], ["--gradient_accumulation_steps", "2"]],
    ids=["dynamic", "packing", "lora", "accumulation"],
)
def test_label_logits_only_gives_the_loss_and_weights_of_the_full_lm_head(
    tiny_model_dir, tmp_path, mode, monkeypatch
):
    # the LM head runs only where a label is; the loss, and so the trained weights, must not change
    import functools

    from transformers import LlamaForCausalLM

    kept = []
    forward = LlamaForCausalLM.forward

    @functools.wraps(forward)
    def spy(self, *args, **kwargs):
        kept.append(kwargs.get("logits_to_keep"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", spy)
    data = role_file(tmp_path / "d.json")
    runs = {}
    for flag in ("True", "False"):
        out = tmp_path / flag
        argv = train_argv(tiny_model_dir, data, out, "--max_steps", "3", "--label_logits_only", flag, *mode)
        kept.clear()
        assert main(argv) == 0
        runs[flag] = out
        # on: a few positions per batch (the targets), off: every position
        assert all(isinstance(k, torch.Tensor) and 0 < k.numel() < 96 for k in kept) == (flag == "True"), kept
    assert losses(runs["True"]) == pytest.approx(losses(runs["False"]), rel=1e-5)
    assert len(losses(runs["True"])) == 3
    if "--use_lora" not in mode:
        a, b = weights(runs["True"]), weights(runs["False"])
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.slow
def test_tokenizer_without_bos_or_pad_trains_and_saves_a_pad_token(tiny_model_no_bos_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        main(train_argv(tiny_model_no_bos_dir, role_file(tmp_path / "d.json"), out, "--max_steps", "2")) == 0
    )
    assert AutoTokenizer.from_pretrained(out).pad_token == "<unk>"


def kill_after(out: Path, step: int) -> None:
    """Make ``out`` look like a job killed just after writing checkpoint-``step``: no final files, no
    later checkpoints."""
    for name in ("model.safetensors", "trainer_state.json", "glpft_args.json", "loss_curve.png"):
        (out / name).unlink(missing_ok=True)
    for ckpt in out.glob("checkpoint-*"):
        if int(ckpt.name.split("-")[1]) > step:
            shutil.rmtree(ckpt)


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    data = role_file(tmp_path / "d.json")
    argv = train_argv(tiny_model_dir, data, out, "--save_strategy", "steps", "--save_steps", "2")
    assert main(argv + ["--max_steps", "4"]) == 0
    first = losses(out)
    kill_after(out, 2)  # was: a finished 2-step job rerun with --max_steps 4 (now refused: other arguments)
    assert main(argv + ["--max_steps", "4"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and (out / "checkpoint-4").is_dir()
    assert losses(out)[:2] == first[:2] and len(losses(out)) == 4  # steps 1-2 come from the checkpoint


def test_deepspeed_flag_without_deepspeed_is_a_one_line_error(tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # find_spec → None, import → ImportError
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), tmp_path / "out", "--max_steps", "1")
    err = one_line_error(capsys, argv + ["--deepspeed", str(DS_CONFIGS / "zero2.json")])
    assert "--deepspeed needs DeepSpeed, which is not installed" in err
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_a_finished_model_without_the_flag(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), out, "--max_steps", "1")
    assert "--overwrite_output_dir" in one_line_error(capsys, argv)
    assert (out / "config.json").read_text() == "{}"


def ds_config_files() -> list[Path]:
    return sorted(DS_CONFIGS.rglob("*.json"))


def test_every_deepspeed_config_parses_and_keeps_the_trainer_schedule():
    files = ds_config_files()
    assert {f.name for f in files} >= {"zero2.json", "zero3.json", "zero3_offload.json"}
    for f in files:
        cfg = json.loads(f.read_text())
        assert "scheduler" not in cfg, f"{f.name}: a DeepSpeed scheduler overrides --lr_scheduler_type"
        assert cfg["bf16"]["enabled"] == "auto", f"{f.name}: bf16 must follow --bf16"
        assert (
            cfg["train_micro_batch_size_per_gpu"] == "auto" and cfg["gradient_accumulation_steps"] == "auto"
        )
        zero = cfg["zero_optimization"]
        assert zero["stage"] in (2, 3)
        if zero["stage"] == 3:
            assert zero["stage3_gather_16bit_weights_on_model_save"] is True, f.name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_deepspeed() -> bool:
    try:
        import deepspeed  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("ds", [None, "fsdp", "zero2.json", "zero3.json"])
def test_torchrun_two_cpu_processes_train(tiny_model_dir, tmp_path, ds):
    if ds and ds.endswith(".json") and not has_deepspeed():
        pytest.skip("deepspeed is not installed (pip install 'alpha-umi[deepspeed]')")
    out = tmp_path / "out"
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), out, "--max_steps", "3")
    argv += ["--lr_scheduler_type", "cosine", "--warmup_ratio", "0.3"]
    if ds == "fsdp":
        argv += ["--fsdp", "full_shard auto_wrap"]
    elif ds:
        argv += ["--deepspeed", str(DS_CONFIGS / ds)]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd + ["-m", "glpft.train"] + argv, capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["train_batch_size"] == 4
    # two ranks × 4 samples a step: 3 steps are one epoch of the 23 training samples (one rank alone: 0.5)
    assert state["epoch"] == pytest.approx(1.0)
    lrs = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert lrs[-1] < max(lrs)  # the Trainer's cosine schedule, not a DeepSpeed one
    assert changed(weights(tiny_model_dir), weights(out))  # ZeRO-3: gathered, non-empty weights
    out = proc.stdout + proc.stderr
    assert "loss=" in out and out.count("trained 3 steps in") == 1  # the progress bar of rank 0 only
