"""The original α-UMi GLPFT entry points, with their flags, mapped onto this project's jobs.

The scripts at the original paths (``GLPFT/process_data/toolbench/prepro_*.py``, ``GLPFT/train_mem.py``,
``GLPFT/inference_utils/toolbench/infer_pipeline.py``, ``evaluate-*.py``) are a few lines calling these,
so the original README's commands run verbatim::

    cd GLPFT; export PYTHONPATH=./
    python process_data/toolbench/prepro_raw_stage_1.py --data_dir $ORI_DATA_DIR --output_path $RAW_DATA_OUT_DIR
    python process_data/toolbench/prepro_raw_stage_2.py --input_path $RAW_DATA_OUT_DIR/raw_data_stage_1.json \\
        --output_path $RAW_DATA_OUT_DIR
    python process_data/toolbench/prepro_planner.py --input_path $RAW_DATA_OUT_DIR/raw_data_stage_2.json \\
        --output_path $TRAIN_DATA_OUT_DIR/train_planner.json --prompt_type toolbench_planner
    torchrun --nproc_per_node=8 train_mem.py --model_name_or_path … --deepspeed ds_configs/stage3-a100.json …
    torchrun --nproc_per_node=8 inference_utils/toolbench/infer_pipeline.py --planner_model_name_or_path … …
    python inference_utils/toolbench/evaluate-multi_agent.py --input_path …/predictions.json --output_path …

There is no second implementation here: each function parses the original's flags and calls the job.
Where the original had a defect, the fixed behaviour applies and the script says so once.
"""

from __future__ import annotations

import argparse
import os
import sys

from glpft import prompts as P

NOTE = "note (α-UMi drop-in): "


def _note(text: str) -> None:
    print(NOTE + text, file=sys.stderr)


def prepro_stage1(argv: list[str] | None = None) -> int:
    """``prepro_raw_stage_1.py --data_dir D --output_path OUT``: ``OUT/raw_data_stage_1.json``."""
    from glpft.prepro import run_and_report

    ap = argparse.ArgumentParser(prog="prepro_raw_stage_1.py", description=prepro_stage1.__doc__)
    ap.add_argument("--data_dir", required=True, help="ToolBench data: answer/G*_answer and test_query_ids/")
    ap.add_argument("--output_path", required=True, help="folder for raw_data_stage_1.json")
    args = ap.parse_args(argv)
    _note("every trajectory is written (the original kept only the first 20)")
    target = os.path.join(args.output_path, "raw_data_stage_1.json")
    return run_and_report("prepro_raw_stage_1.py", data_dir=args.data_dir, targets={"stage1": target})


def prepro_stage2(argv: list[str] | None = None) -> int:
    """``prepro_raw_stage_2.py --input_path raw_data_stage_1.json --output_path OUT``."""
    from glpft.prepro import run_and_report

    ap = argparse.ArgumentParser(prog="prepro_raw_stage_2.py", description=prepro_stage2.__doc__)
    ap.add_argument("--input_path", required=True, help="raw_data_stage_1.json")
    ap.add_argument("--output_path", required=True, help="folder for raw_data_stage_2.json")
    args = ap.parse_args(argv)
    _note("dict-typed Finish arguments no longer crash; assistant messages without a call are counted")
    target = os.path.join(args.output_path, "raw_data_stage_2.json")
    return run_and_report("prepro_raw_stage_2.py", stage1_file=args.input_path, targets={"stage2": target})


def prepro_role(role: str, argv: list[str] | None = None) -> int:
    """``prepro_<role>.py --input_path raw_data_stage_2.json --output_path train_<role>.json --prompt_type T``."""
    from glpft.prepro import run_and_report

    prog = f"prepro_{role}.py"
    ap = argparse.ArgumentParser(prog=prog, description=f"GLPFT {role} training data from stage-2 data.")
    ap.add_argument("--input_path", required=True, help="raw_data_stage_2.json")
    ap.add_argument("--output_path", required=True, help=f"train_{role}.json to write")
    ap.add_argument("--prompt_type", default=P.ROLE_TEMPLATE[role], help=f"default {P.ROLE_TEMPLATE[role]}")
    args = ap.parse_args(argv)
    if "," in args.input_path:
        print(
            f"{prog}: error: --input_path: give one stage-2 file (got a comma-separated list)",
            file=sys.stderr,
        )
        return 2
    if role == "backbone":
        _note("give-up samples get the prompt of their own history (the original reused a stale one)")
    return run_and_report(
        prog,
        stage2_file=args.input_path,
        targets={role: args.output_path},
        templates={role: args.prompt_type},
    )


def train_mem(argv: list[str] | None = None) -> int:
    """``train_mem.py`` / ``train.py`` / ``train_lora.py`` with the paper's flags: ``glpft.train``."""
    from glpft import train

    return train.main(argv)


def infer_pipeline(argv: list[str] | None = None) -> int:
    """``inference_utils/toolbench/infer_pipeline.py`` with the paper's flags: ``glpft.infer``."""
    from glpft import infer

    return infer.main(argv)


def evaluate(mode: str, argv: list[str] | None = None) -> int:
    """``evaluate-multi_agent.py`` / ``evaluate-backbone.py --input_path P --output_path M``."""
    from glpft import metrics

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--mode" not in argv:
        argv += ["--mode", mode]
    return metrics.main(argv)
