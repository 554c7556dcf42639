"""Rerunning a training job is always safe (glpft.resume): cut-short checkpoints are skipped, the last
step is never trained twice, a finished job is left alone, and torchrun's final train_loss is right."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import free_port, kill_after, losses, role_file, train_argv, weights

from glpft.resume import args_record, changed_args, checkpoint_problem, last_complete_checkpoint
from glpft.train import main, parse_args


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its mtime and bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fake_checkpoint(folder: Path, model_dir: Path, step: int) -> Path:
    """A complete-looking checkpoint: the tiny model's files and a trainer_state.json."""
    folder.mkdir(parents=True)
    for f in model_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return folder


def test_checkpoint_problems_are_named(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    good = fake_checkpoint(out / "checkpoint-2", tiny_model_dir, 2)
    assert checkpoint_problem(good) is None
    (out / "checkpoint-10").mkdir()  # numeric order, not text order
    no_state = fake_checkpoint(out / "checkpoint-4", tiny_model_dir, 4)
    (no_state / "trainer_state.json").unlink()
    cut = fake_checkpoint(out / "checkpoint-6", tiny_model_dir, 6)
    (cut / "trainer_state.json").write_text('{"global_step": 6, "log_hi')
    torn = fake_checkpoint(out / "checkpoint-8", tiny_model_dir, 8)
    data = (torn / "model.safetensors").read_bytes()
    (torn / "model.safetensors").write_bytes(data[: len(data) // 2])
    assert checkpoint_problem(out / "checkpoint-10") == "no trainer_state.json"
    assert checkpoint_problem(no_state) == "no trainer_state.json"
    assert "trainer_state.json is not valid" in checkpoint_problem(cut)
    assert checkpoint_problem(torn).startswith("model.safetensors: truncated")
    bare = fake_checkpoint(tmp_path / "bare", tiny_model_dir, 2)
    (bare / "model.safetensors").unlink()
    assert checkpoint_problem(bare) == "no weights"
    last, skipped = last_complete_checkpoint(out)
    assert last == good
    assert [s.split()[0] for s in skipped] == [
        "checkpoint-10",
        "checkpoint-8",
        "checkpoint-6",
        "checkpoint-4",
    ]


def test_argument_changes_are_named_and_output_flags_are_not_compared(tiny_model_dir, tmp_path, monkeypatch):
    data = role_file(tmp_path / "d.json")

    def record(*extra):
        return args_record(*parse_args(train_argv(tiny_model_dir, data, tmp_path / "o", *extra))[:4])

    base = record()
    assert changed_args(base, record("--logging_steps", "7", "--save_strategy", "steps")) == []
    assert changed_args(base, record("--learning_rate", "1e-4")) == ["--learning_rate 0.003 → 0.0001"]
    monkeypatch.chdir(tmp_path)  # the same data file named by a relative path is the same argument
    assert changed_args(base, args_record(*parse_args(train_argv(tiny_model_dir, "d.json", "o"))[:4])) == []


@pytest.mark.slow
def test_a_checkpoint_cut_short_is_skipped_and_the_job_resumes_from_the_last_complete_one(
    tiny_model_dir, tmp_path, caplog
):
    out = tmp_path / "out"
    argv = train_argv(
        tiny_model_dir, role_file(tmp_path / "d.json"), out, "--save_strategy", "steps", "--save_steps", "2"
    )
    argv += ["--max_steps", "4"]
    assert main(argv) == 0
    whole = losses(out)
    # killed while writing checkpoint-4 (weights written, state not yet) and checkpoint-6 (nothing yet)
    kill_after(out, 4)
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    (out / "checkpoint-6").mkdir()
    with caplog.at_level(logging.INFO, logger="glpft"):
        assert main(argv) == 0  # was: "Can't find a valid checkpoint at …/checkpoint-6"
    text = caplog.text
    assert "skipping incomplete checkpoints" in text and "checkpoint-6 (no trainer_state.json)" in text
    assert f"resuming from {out / 'checkpoint-2'} (step 2 of 4)" in text
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and len(losses(out)) == 4
    assert losses(out)[:2] == whole[:2]  # from the checkpoint, not retrained
    assert losses(out)[2:] == pytest.approx(whole[2:], rel=1e-4)  # the same steps 3-4 as uninterrupted


@pytest.mark.slow
def test_resuming_from_the_final_checkpoint_trains_no_extra_step(tiny_model_dir, tmp_path, caplog):
    out = tmp_path / "out"
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), out, "--save_strategy", "steps")
    argv += ["--save_steps", "2", "--max_steps", "2", "--lr_scheduler_type", "constant"]
    assert main(argv) == 0
    kill_after(out, 2)  # killed after the last checkpoint, before the final model was written
    with caplog.at_level(logging.INFO, logger="glpft"):
        assert main(argv) == 0
    assert "already holds the last step (2 of 2)" in caplog.text
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and max(h["step"] for h in state["log_history"]) == 2  # was: 3
    final, ckpt = weights(out), weights(out / "checkpoint-2")
    assert all(torch.equal(final[k], ckpt[k]) for k in ckpt)
    assert (out / "glpft_args.json").is_file() and (out / "loss_curve.png").is_file()
    assert not (out / "optimizer.pt").exists()
    assert main(argv) == 0  # and now it is a finished job


@pytest.mark.slow
def test_rerunning_a_finished_job_leaves_it_alone_unless_arguments_change_or_overwrite_is_asked(
    tiny_model_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), out, "--max_steps", "2")
    argv += ["--save_strategy", "steps", "--save_steps", "1"]
    assert main(argv) == 0
    assert json.loads((out / "glpft_args.json").read_text())["max_steps"] == 2
    before = snapshot(out)
    capsys.readouterr()

    assert main(argv + ["--logging_steps", "5"]) == 0  # an output-only flag: the same job
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{out}: training already finished with these arguments; nothing to do"]
    assert snapshot(out) == before

    assert main(argv + ["--learning_rate", "1e-4", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--learning_rate 0.003 → 0.0001" in err and "--seed 0 → 3" in err
    assert "--overwrite_output_dir" in err and snapshot(out) == before

    assert main(argv + ["--max_steps", "1", "--overwrite_output_dir", "True"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and len(losses(out)) == 1  # from scratch, not from checkpoint-2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert json.loads((out / "glpft_args.json").read_text())["max_steps"] == 1


DRIVER = """
import sys
from glpft.train import main
argv, out = sys.argv[1:-1], sys.argv[-1]
assert main(argv + ["--output_dir", out + "-logged", "--logging_steps", "1"]) == 0
assert main(argv + ["--output_dir", out + "-quiet", "--logging_steps", "100"]) == 0
"""


@pytest.mark.slow
def test_torchrun_final_train_loss_is_the_mean_over_ranks_without_a_logging_step(tiny_model_dir, tmp_path):
    # one torchrun job trains twice: logging every step (train_loss from losses averaged over ranks)
    # and never (train_loss from each rank's own sum; it was rank 0's alone)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    argv = train_argv(tiny_model_dir, role_file(tmp_path / "d.json"), tmp_path / "unused", "--max_steps", "2")
    argv = argv[: argv.index("--output_dir")] + argv[argv.index("--output_dir") + 2 :]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd + [str(driver), *argv, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def final(name: str) -> dict:
        state = json.loads((tmp_path / name / "trainer_state.json").read_text())
        return state["log_history"][-1]

    logged, quiet = final("out-logged"), final("out-quiet")
    steps = json.loads((tmp_path / "out-logged" / "trainer_state.json").read_text())["log_history"][:-1]
    assert logged["train_loss"] == pytest.approx(sum(h["loss"] for h in steps) / 2, rel=1e-5)
    assert quiet["train_loss"] == pytest.approx(logged["train_loss"], rel=1e-5)
