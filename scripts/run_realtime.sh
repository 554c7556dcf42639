#!/usr/bin/env bash
# Real-time evaluation (paper Table 2): α-UMi (planner, caller, summarizer) with DFSDT on the six ToolBench
# test groups, one answer file per query in output_res/$EXP_NAME/<group>/.
# 3 GPUs (one per role, USE_MULTI_GPU=true) for 7B/13B roles, or 1 GPU with USE_MULTI_GPU=false.
# Roughly 1 min per query with 7B roles on A100/H100 (≈ 10-15 h for all ~1,100 queries); the tool
# server's latency adds to that. Interrupted runs resume: answered query ids are skipped.
# Tools: BACKEND=server (default) talks to `alpha-umi serve-tools` at SERVICE_URL (start it first);
# BACKEND=toolbench talks to ToolBench's service with the key in $TOOLBENCH_KEY (never put it on the command line).
# Variables as in the paper's run_infer.sh; override any of them from the environment.
set -euo pipefail

DATA_DIR=${DATA_DIR:-data/toolbench/data}
QUERY_DIR=${QUERY_DIR:-data/stabletoolbench/solvable_queries/test_instruction}  # <group>.json query files
TOOL_ROOT_DIR=${TOOL_ROOT_DIR-$DATA_DIR/toolenv/tools}                # API docs; absent or empty: the query files' api_list
PLAN_PATH=${PLAN_PATH:-saved_models/toolbench/planner}                 # where scripts/train_toolbench.sh writes
CAL_PATH=${CAL_PATH:-saved_models/toolbench/caller}
SUM_PATH=${SUM_PATH:-saved_models/toolbench/summarizer}
USE_LORA=${USE_LORA:-false}
USE_MULTI_GPU=${USE_MULTI_GPU:-true}
EXP_NAME=${EXP_NAME:-multi-llm-agent}
METHOD=${METHOD:-DFS_woFilter_w2}                                     # or CoT@1
BACKEND=${BACKEND:-server}
SERVICE_URL=${SERVICE_URL:-http://127.0.0.1:8080/rapidapi}
NUM_WORKERS=${NUM_WORKERS:-1}
GROUPS_TO_RUN=${GROUPS_TO_RUN:-"G1_instruction G1_category G1_tool G2_instruction G2_category G3_instruction"}

tool_args=()
if [ -n "$TOOL_ROOT_DIR" ] && [ -d "$TOOL_ROOT_DIR" ]; then tool_args=(--tool_root_dir "$TOOL_ROOT_DIR"); fi

for test_set in $GROUPS_TO_RUN; do
    [ -f "$QUERY_DIR/$test_set.json" ] || { echo "skip $test_set: no $QUERY_DIR/$test_set.json"; continue; }
    alpha-umi run-queries \
        --backbone_model collab_agent_v3 \
        "${tool_args[@]}" \
        --planner_model_path "$PLAN_PATH" --planner_use_lora "$USE_LORA" \
        --caller_model_path "$CAL_PATH" --caller_use_lora "$USE_LORA" \
        --summarizer_model_path "$SUM_PATH" --summarizer_use_lora "$USE_LORA" \
        --use_multi_gpu "$USE_MULTI_GPU" \
        --max_observation_length 1024 \
        --observ_compress_method truncate \
        --method "$METHOD" \
        --backend "$BACKEND" --service_url "$SERVICE_URL" \
        --num_workers "$NUM_WORKERS" \
        --input_query_file "$QUERY_DIR/$test_set.json" \
        --output_answer_file "output_res/$EXP_NAME/$test_set" \
        "$@"
done
