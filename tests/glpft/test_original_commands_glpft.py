"""The original α-UMi GLPFT commands, run verbatim from GLPFT/ with PYTHONPATH=./, give alpha-umi's outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GLPFT = REPO / "GLPFT"


def original(cmd: str, cwd: Path = GLPFT, **env: str) -> subprocess.CompletedProcess:
    """A command line of the original README, through bash, from its folder, with ``PYTHONPATH=./``."""
    full = {
        **os.environ,
        "PYTHONPATH": "./",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(["bash", "-c", cmd], cwd=cwd, env=full, capture_output=True, text=True, timeout=600)


def alpha_umi(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "toolbench_multillm.cli", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


@pytest.fixture()
def toolbench_data(reference_dir, tmp_path) -> Path:
    """ToolBench's layout: answer/G*_answer from the reference examples and test_query_ids/ (one id)."""
    data = tmp_path / "toolbench" / "data"
    shutil.copytree(reference_dir / "toolbench_data_example" / "answer", data / "answer")
    first = sorted((data / "answer" / "G1_answer").iterdir())[0].name.split("_")[0]
    (data / "test_query_ids").mkdir()
    for group in (
        "G1_category",
        "G1_instruction",
        "G1_tool",
        "G2_category",
        "G2_instruction",
        "G3_instruction",
    ):
        (data / "test_query_ids" / f"{group}.json").write_text(
            json.dumps({first: 1} if group == "G1_tool" else {})
        )
    return data


def test_original_prepro_commands_write_what_alpha_umi_prepro_writes(toolbench_data, tmp_path):
    raw, train = tmp_path / "train" / "raw_data", tmp_path / "train"
    script = f"""set -e
ORI_DATA_DIR={toolbench_data}; RAW_DATA_OUT_DIR={raw}; TRAIN_DATA_OUT_DIR={train}
python process_data/toolbench/prepro_raw_stage_1.py --data_dir $ORI_DATA_DIR --output_path $RAW_DATA_OUT_DIR
python process_data/toolbench/prepro_raw_stage_2.py --input_path $RAW_DATA_OUT_DIR/raw_data_stage_1.json --output_path $RAW_DATA_OUT_DIR
for MODE in 'backbone' 'planner' 'caller' 'summarizer'
do
    python process_data/toolbench/prepro_$MODE.py --input_path $RAW_DATA_OUT_DIR/raw_data_stage_2.json \\
        --output_path $TRAIN_DATA_OUT_DIR/train_$MODE.json --prompt_type toolbench_$MODE
done
"""
    proc = original(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("note (α-UMi drop-in): ") == 3  # stage 1, stage 2 and backbone fixes, once each
    ours = tmp_path / "ours"
    proc = alpha_umi("prepro", "--data-dir", str(toolbench_data), "--out-dir", str(ours), "--quiet")
    assert proc.returncode == 0, proc.stderr
    names = ["raw_data/raw_data_stage_1.json", "raw_data/raw_data_stage_2.json"]
    names += [f"train_{m}.json" for m in ("backbone", "planner", "caller", "summarizer")]
    for name in names:
        assert (train / name).read_bytes() == (ours / name).read_bytes(), name
    assert len(json.loads((raw / "raw_data_stage_1.json").read_text())) >= 10  # every trajectory, not 20


def test_original_prepro_role_script_honours_its_prompt_type_and_reports_bad_ones(toolbench_data, tmp_path):
    proc = original(f"python process_data/toolbench/prepro_planner.py --input_path {tmp_path}/missing.json "
                    f"--output_path {tmp_path}/p.json --prompt_type toolbench_planner")  # fmt: skip
    assert proc.returncode == 2 and "missing.json: no such file" in proc.stderr
    stage2 = tmp_path / "s2.json"
    stage2.write_text(json.dumps([{"tools": [], "instruction": "q", "conversations": []}]))
    proc = original(f"python process_data/toolbench/prepro_caller.py --input_path {stage2} "
                    f"--output_path {tmp_path}/c.json --prompt_type toolbench_v9")  # fmt: skip
    assert proc.returncode == 2 and "unknown prompt type 'toolbench_v9'" in proc.stderr


def test_original_deepspeed_config_names_resolve():
    for name in ("stage2.json", "stage3.json", "stage3-a100.json"):
        cfg = json.loads((GLPFT / "ds_configs" / name).read_text())
        assert cfg["zero_optimization"]["stage"] in (2, 3)


@pytest.mark.slow
def test_original_train_infer_and_evaluate_commands_run_verbatim(reference_dir, tiny_model_dir, tmp_path):
    data = tmp_path / "train_planner.json"
    samples = json.loads((reference_dir / "alpha_umi" / "train-example" / "train_planner.json").read_text())
    data.write_text(json.dumps(samples[:8]))
    out = tmp_path / "saved_models" / "toolbench" / "planner"
    train = f"""python train_mem.py --model_name_or_path {tiny_model_dir} --data_path {data} --output_dir {out} \\
    --num_train_epochs 1 --per_device_train_batch_size 2 --per_device_eval_batch_size 2 \\
    --gradient_accumulation_steps 1 --evaluation_strategy "no" --eval_steps 0 --save_strategy "steps" \\
    --save_steps 500 --save_total_limit 8 --learning_rate 5e-5 --weight_decay 0.01 --warmup_ratio 0.4 \\
    --lr_scheduler_type "cosine" --gradient_checkpointing True --logging_steps 2 --model_max_length 512 \\
    --lazy_preprocess False --report_to none --max_steps 2"""
    proc = original(train)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "config.json").exists() and (out / "trainer_state.json").exists()

    test = tmp_path / "dataset" / "toolbench" / "test" / "out_of_domain.json"
    test.parent.mkdir(parents=True)
    records = json.loads((reference_dir / "alpha_umi" / "test" / "out_of_domain.json").read_text())
    test.write_text(json.dumps(records[:2]))
    lab = tmp_path / "output_res" / "toolbench"
    roles = " ".join(
        f"--{r}_model_name_or_path {out} --{r}_use_lora False" for r in ("planner", "caller", "summarizer")
    )
    infer = f"""python inference_utils/toolbench/infer_pipeline.py {roles} --per_device_eval_batch_size 1 \\
    --data_path {test} --assistant_prompt_type toolbench_planner --caller_prompt_type toolbench_caller \\
    --conclusion_prompt_type toolbench_summarizer --max_input_length 3750 --output_dir {lab}/out_of_domain \\
    --max_new_tokens 8"""
    proc = original(infer)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = tmp_path / "ours"
    flags = [a for r in ("planner", "caller", "summarizer") for a in (f"--{r}_model_name_or_path", str(out))]
    proc = alpha_umi("infer", *flags, "--data_path", str(test), "--output_dir", str(ours), "--max_new_tokens", "8",
                     "--per_device_eval_batch_size", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    predictions = lab / "out_of_domain" / "predictions.json"
    assert predictions.read_text() == (ours / "predictions.json").read_text()

    evaluate = f"python inference_utils/toolbench/evaluate-multi_agent.py --input_path {predictions} " \
               f"--output_path {lab}/out_of_domain/metrics.json"  # fmt: skip
    proc = original(evaluate)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = alpha_umi(
        "evaluate", "--input_path", str(predictions), "--output_path", str(ours / "metrics.json")
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((lab / "out_of_domain" / "metrics.json").read_text()) == json.loads(
        (ours / "metrics.json").read_text()
    )
