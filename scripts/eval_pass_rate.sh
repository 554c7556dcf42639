#!/usr/bin/env bash
# ToolEval pass rate of the agent's answers: convert each test group's answer files, then judge them.
# CPU only; the time is the judge's. 6 groups × ~150 queries × 7 repeats ≈ 5,000 judge requests:
# ~2-3 h with MAX_EVAL_THREADS=1 (the paper's setting), ~20 min with 8. Interrupted runs resume.
# Variables as in the paper's run_eval_pass.sh; override any of them from the environment.
set -euo pipefail

ORI_ANSWER_PATH=${ORI_ANSWER_PATH:-output_res/multi-llm-agent}              # <group>/<qid>_<method>.json
CONVERTED_ANSWER_PATH=${CONVERTED_ANSWER_PATH:-output_res/converted/multi-llm-agent}
METHOD=${METHOD:-DFS_woFilter_w2}
SAVE_PATH=${SAVE_PATH:-pass_rate_results/multi-llm-agent}
CANDIDATE_MODEL=${CANDIDATE_MODEL:-multi-llm-agent}
DATA_DIR=${DATA_DIR:-data/toolbench/data}                                   # holds test_query_ids/
export API_POOL_FILE=${API_POOL_FILE:-}                                     # key-pool JSON, else $OPENAI_API_KEY
JUDGE_BASE_URL=${JUDGE_BASE_URL:-${OPENAI_BASE_URL:-https://api.openai.com/v1}}
JUDGE_MODEL=${JUDGE_MODEL:-gpt-3.5-turbo}
EVALUATE_TIMES=${EVALUATE_TIMES:-7}
MAX_EVAL_THREADS=${MAX_EVAL_THREADS:-1}

for test_set in G1_instruction G1_category G1_tool G2_category G2_instruction G3_instruction; do
    [ -d "$ORI_ANSWER_PATH/$test_set" ] || { echo "skip $test_set: no $ORI_ANSWER_PATH/$test_set"; continue; }
    alpha-umi tooleval convert \
        --answer_dir "$ORI_ANSWER_PATH/$test_set" \
        --method "$METHOD" \
        --output "$CONVERTED_ANSWER_PATH/$test_set.json" \
        --overwrite
done

alpha-umi tooleval pass-rate \
    --converted_answer_path "$CONVERTED_ANSWER_PATH" \
    --model_name "$CANDIDATE_MODEL" \
    --test_ids "$DATA_DIR/test_query_ids" \
    --save_path "$SAVE_PATH" \
    --judge_base_url "$JUDGE_BASE_URL" \
    --judge_model "$JUDGE_MODEL" \
    --evaluate_times "$EVALUATE_TIMES" \
    --max_eval_threads "$MAX_EVAL_THREADS" \
    "$@"
