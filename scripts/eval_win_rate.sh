#!/usr/bin/env bash
# ToolEval win rate of the agent vs ChatGPT CoT (the paper's reference), then the Table 2 report.
# CPU only; the time is the judge's. Needs the agent's pass-rate labels (scripts/eval_pass_rate.sh);
# computes ChatGPT CoT's pass rate first (~5,000 judge requests), then asks the judge only where the two
# pass labels agree: ~1-3 h with MAX_EVAL_THREADS=1 (the paper's setting), ~20 min with 8. Resumable.
# Variables as in the paper's run_eval_prefer.sh; override any of them from the environment.
set -euo pipefail

REF_CONVERTED_ANSWER_PATH=${REF_CONVERTED_ANSWER_PATH:-data/toolbench/reproduction_data/model_predictions_converted/chatgpt_cot}
REFERENCE_MODEL=${REFERENCE_MODEL:-chatgpt_cot}
REF_PASS_RATE_PATH=${REF_PASS_RATE_PATH:-pass_rate_results/chatgpt_cot}
OUTPUT_CONVERTED_ANSWER_PATH=${OUTPUT_CONVERTED_ANSWER_PATH:-output_res/converted/multi-llm-agent}
CANDIDATE_MODEL=${CANDIDATE_MODEL:-multi-llm-agent}
OUTPUT_PASS_RATE_PATH=${OUTPUT_PASS_RATE_PATH:-pass_rate_results/multi-llm-agent}
SAVE_PATH=${SAVE_PATH:-win_rate_results}
REPORT=${REPORT:-results/table2}                                            # writes table2.md + table2.png
DATA_DIR=${DATA_DIR:-data/toolbench/data}                                   # holds test_query_ids/
export API_POOL_FILE=${API_POOL_FILE:-}                                     # key-pool JSON, else $OPENAI_API_KEY
JUDGE_BASE_URL=${JUDGE_BASE_URL:-${OPENAI_BASE_URL:-https://api.openai.com/v1}}
JUDGE_MODEL=${JUDGE_MODEL:-gpt-3.5-turbo}
EVALUATE_TIMES=${EVALUATE_TIMES:-7}
MAX_EVAL_THREADS=${MAX_EVAL_THREADS:-1}
JUDGE=(--judge_base_url "$JUDGE_BASE_URL" --judge_model "$JUDGE_MODEL"
       --evaluate_times "$EVALUATE_TIMES" --max_eval_threads "$MAX_EVAL_THREADS" --test_ids "$DATA_DIR/test_query_ids")

alpha-umi tooleval pass-rate \
    --converted_answer_path "$REF_CONVERTED_ANSWER_PATH" \
    --model_name "$REFERENCE_MODEL" \
    --save_path "$REF_PASS_RATE_PATH" \
    "${JUDGE[@]}"

alpha-umi tooleval win-rate \
    --candidate_converted_path "$OUTPUT_CONVERTED_ANSWER_PATH" \
    --candidate_model "$CANDIDATE_MODEL" \
    --reference_converted_path "$REF_CONVERTED_ANSWER_PATH" \
    --reference_model "$REFERENCE_MODEL" \
    --candidate_pass_rate_path "$OUTPUT_PASS_RATE_PATH" \
    --reference_pass_rate_path "$REF_PASS_RATE_PATH" \
    --save_path "$SAVE_PATH" \
    "${JUDGE[@]}" \
    "$@"

alpha-umi tooleval report \
    --results "$OUTPUT_PASS_RATE_PATH" "$REF_PASS_RATE_PATH" "$SAVE_PATH" \
    --output "$REPORT"
