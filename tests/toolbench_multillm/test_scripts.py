"""Every script in scripts/ runs with its defaults, in sequence, on the demo's data and a tiny model (CPU).

Only what a CPU box cannot provide is supplied: the base model, the tool server (the demo's tools on
127.0.0.1) and the judge (a scripted OpenAI-compatible server); every path is the scripts' default.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_judge import FakeJudgeServer, pass_reply

REPO = Path(__file__).resolve().parents[2]


def script(name: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": "",
            **env}  # fmt: skip
    cmd = ["bash", str(REPO / "scripts" / name), *args]
    return subprocess.run(cmd, cwd=cwd, env=full, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_scripts_connect_by_default_from_raw_data_to_table2(tiny_model_dir, tmp_path):
    from toolbench_multillm.demo import ToolServerThread
    from toolbench_multillm.demo_data import generate_demo_data

    work = tmp_path / "work"
    data = work / "data" / "toolbench" / "data"
    generate_demo_data(data, seed=0, n_train=24, n_test=4)
    queries = json.loads((data / "queries" / "test.json").read_text())[:2]
    (data / "test_query_ids" / "G1_instruction.json").write_text(
        json.dumps({q["query_id"]: 0 for q in queries})
    )
    # the real-time queries (StableToolBench's place) and the static test set (the α-UMi repo's place)
    qdir = work / "data" / "stabletoolbench" / "solvable_queries" / "test_instruction"
    qdir.mkdir(parents=True)
    (qdir / "G1_instruction.json").write_text(json.dumps(queries))
    proc = subprocess.run(["alpha-umi", "prepro", "--data-dir", str(data / "test"), "--out-dir",
                           str(tmp_path / "test_prepro"), "--no-test-exclusion", "--quiet"], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    static = work / "data" / "glpft" / "toolbench" / "test"
    static.mkdir(parents=True)
    shutil.copy(
        tmp_path / "test_prepro" / "raw_data" / "raw_data_stage_2.json", static / "out_of_domain.json"
    )

    proc = script("prepro_toolbench.sh", work, NUM_PROC="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = script(
        "train_toolbench.sh", work, "--max_steps", "2", LLAMA_PATH=str(tiny_model_dir), MAX_LEN="512"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for role in ("backbone", "planner", "caller", "summarizer"):
        assert (work / "saved_models" / "toolbench" / role / "config.json").exists(), role
    proc = script("infer_toolbench.sh", work, EXTRA_ARGS="--max_new_tokens 8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skip in_domain" in proc.stderr
    assert (work / "output_res" / "toolbench" / "out_of_domain" / "metrics.json").exists()

    with ToolServerThread(tmp_path / "cache.sqlite") as server:
        proc = script("run_realtime.sh", work, "--max_new_tokens", "8", "--max_query_count", "4",
                      SERVICE_URL=server.url)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = work / "output_res" / "multi-llm-agent" / "G1_instruction"
    assert len(list(answers.glob("*_DFS_woFilter_w2.json"))) == 2

    with FakeJudgeServer(respond=lambda req: pass_reply("Solved")) as judge:
        env = {"OPENAI_BASE_URL": judge.base_url, "OPENAI_API_KEY": "sk-test", "EVALUATE_TIMES": "2"}
        proc = script("eval_pass_rate.sh", work, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # ToolEval's reference side (ChatGPT CoT answers) goes where the win-rate script looks for it
        ref = (
            work / "data" / "toolbench" / "reproduction_data" / "model_predictions_converted" / "chatgpt_cot"
        )
        shutil.copytree(work / "output_res" / "converted" / "multi-llm-agent", ref)
        proc = script("eval_win_rate.sh", work, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "results" / "table2.md").exists()
