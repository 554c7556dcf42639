"""The original α-UMi ToolBench-multiLLM commands, run from ToolBench-multiLLM/ with PYTHONPATH=./,
give the same files as alpha-umi (a local tool server stands in for RapidAPI, a scripted judge for GPT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_judge import FakeJudgeServer, pass_reply

from toolbench_multillm.compat import _judge_flags

REPO = Path(__file__).resolve().parents[2]
TB = REPO / "ToolBench-multiLLM"


def original(cmd: str, **env: str) -> subprocess.CompletedProcess:
    full = {
        **os.environ,
        "PYTHONPATH": "./",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(["bash", "-c", cmd], cwd=TB, env=full, capture_output=True, text=True, timeout=900)


def alpha_umi(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    return subprocess.run([sys.executable, "-m", "toolbench_multillm.cli", *args], env=full, capture_output=True,
                          text=True, timeout=900)  # fmt: skip


def tool_root(tmp_path: Path) -> Path:
    """ToolBench's toolenv/tools layout for the demo's Weather Table tool."""
    from toolbench_multillm.demo_apis import api_docs

    docs = api_docs(["Weather Table"])
    root = tmp_path / "toolenv" / "tools"
    (root / "Weather").mkdir(parents=True)
    api_list = [
        {k: d[k] for k in ("required_parameters", "optional_parameters", "method")}
        | {"name": d["api_name"], "description": d["api_description"]}
        for d in docs
    ]
    (root / "Weather" / "weather_table.json").write_text(
        json.dumps({"tool_name": "Weather Table", "api_list": api_list})
    )
    return root


def test_evaluator_names_become_the_judge_model():
    assert _judge_flags(["--evaluator", "tooleval_gpt-3.5-turbo_default", "--x"]) == [
        "--x",
        "--judge_model",
        "gpt-3.5-turbo",
    ]
    assert _judge_flags(["--evaluator=tooleval_gpt-4_normalized", "--judge_model", "m"]) == [
        "--judge_model",
        "m",
    ]


@pytest.mark.slow
def test_original_real_time_and_tooleval_commands_run_verbatim(tiny_model_dir, tmp_path):
    from toolbench_multillm.demo import ToolServerThread
    from toolbench_multillm.demo_apis import api_docs

    root = tool_root(tmp_path)
    api = [{k: d[k] for k in ("category_name", "tool_name", "api_name")} for d in api_docs(["Weather Table"])]
    queries = tmp_path / "G1_instruction.json"
    queries.write_text(json.dumps([{"query_id": i, "query": f"Weather in Paris, day {i}?", "api_list": api}
                                   for i in (1, 2)]))  # fmt: skip
    m = str(tiny_model_dir)
    run = f"""python toolbench/inference/qa_pipeline.py --backbone_model collab_agent_v3 --tool_root_dir {root}/ \\
    --user_agent_collab True --planner_model_path {m} --planner_use_lora False --caller_model_path {m} \\
    --caller_use_lora False --summarizer_model_path {m} --summarizer_use_lora False --use_multi_gpu True \\
    --max_observation_length 1024 --observ_compress_method truncate --method DFS_woFilter_w2 \\
    --input_query_file {queries} --output_answer_file {tmp_path}/output_res/multi-llm-agent/G1_instruction \\
    --toolbench_key $TBKEY --max_new_tokens 8 --max_query_count 4"""
    with ToolServerThread(tmp_path / "cache.sqlite") as server:
        env = {"TOOLBENCH_SERVICE_URL": server.url, "TBKEY": "tb-secret-key"}
        proc = original(run, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        ours = tmp_path / "ours"
        flags = (
            run.split("qa_pipeline.py", 1)[1].replace("\\\n", " ").replace("$TBKEY", "tb-secret-key").split()
        )
        flags[flags.index("--output_answer_file") + 1] = str(ours)
        proc = alpha_umi("run-queries", *flags, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    answers = tmp_path / "output_res" / "multi-llm-agent" / "G1_instruction"
    for i in (1, 2):
        mine = json.loads((answers / f"{i}_DFS_woFilter_w2.json").read_text())
        assert mine == json.loads((ours / f"{i}_DFS_woFilter_w2.json").read_text())
        assert "tb-secret-key" not in json.dumps(mine)

    converted = tmp_path / "output_res" / "converted" / "multi-llm-agent"
    proc = original(f"mkdir -p {converted}; python toolbench/tooleval/convert_to_answer_format.py --answer_dir {answers} "
                    f"--method DFS_woFilter_w2 --output {converted}/G1_instruction.json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = alpha_umi("tooleval", "convert", "--answer_dir", str(answers), "--method", "DFS_woFilter_w2", "--output",
                     str(tmp_path / "c.json"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((converted / "G1_instruction.json").read_text()) == json.loads(
        (tmp_path / "c.json").read_text()
    )

    ids = tmp_path / "data" / "test_query_ids"
    ids.mkdir(parents=True)
    (ids / "G1_instruction.json").write_text(json.dumps({"1": 0, "2": 0}))
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps([{"api_key": "sk-pool-key"}]))
    with FakeJudgeServer(respond=lambda req: pass_reply("Solved")) as judge:
        env = {"OPENAI_BASE_URL": judge.base_url, "API_POOL_FILE": str(pool)}
        cmd = f"""python toolbench/tooleval/eval_pass_rate.py --converted_answer_path {converted} \\
        --save_path {tmp_path}/pass_rate_results/multi-llm-agent --reference_model multi-llm-agent \\
        --test_ids {ids} --max_eval_threads 1 --evaluate_times 7"""
        proc = original(cmd, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # (answers without a Finish step are Unsolved without asking; any request carries the pool key)
        assert all(h["Authorization"] == "Bearer sk-pool-key" for h in judge.headers)
        summary = json.loads((tmp_path / "pass_rate_results" / "multi-llm-agent" /
                              "multi-llm-agent_pass_rate_summary.json").read_text())  # fmt: skip
        assert summary["groups"]["G1_instruction"]["n_queries"] == 2
        cmd = f"""python toolbench/tooleval/eval_preference.py --ref_converted_answer_path {converted} \\
        --output_converted_answer_path {converted} --reference_model multi-llm-agent --output_model again \\
        --test_ids {ids} --save_path {tmp_path}/win_rate_results \\
        --ref_pass_rate_result_path {tmp_path}/pass_rate_results/multi-llm-agent \\
        --output_pass_rate_result_path {tmp_path}/pass_rate_results/multi-llm-agent \\
        --max_eval_threads 1 --use_pass_rate true --evaluate_times 7"""
        proc = original(cmd, **env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert list((tmp_path / "win_rate_results").glob("*win_rate_summary.json"))
