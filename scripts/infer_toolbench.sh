#!/usr/bin/env bash
# Static evaluation (paper Table 1): planner → caller / summarizer on every gold step of the in-domain and
# out-of-domain test sets, then the paper's metrics (Plan ACC, Act. EM, Hallu., Arg. F1, ROUGE-L).
# NNODE GPUs, one shard each (the paper: 8). Each domain is ~1.5k steps; with 7B roles in bf16 on
# 8 A100/H100 expect roughly 5-15 minutes per domain (estimate; greedy, batched, 512 new tokens max).
# Variables as in the paper's inference_toolbench.sh; override any of them from the environment.
# Single-LLM baseline: BACKBONE_PATH=saved_models/toolbench/backbone bash scripts/infer_toolbench.sh
set -euo pipefail

GPUS=$(python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
NNODE=${NNODE:-$([ "$GPUS" -gt 0 ] && echo "$GPUS" || echo 1)}   # processes (the paper: 8 GPUs)
PRECISION=${PRECISION-$([ "$GPUS" -gt 0 ] && echo --bf16_full_eval || true)}
PORT=${PORT:-12345}

PLAN_PATH=${PLAN_PATH:-saved_models/toolbench/planner}            # where scripts/train_toolbench.sh writes
CAL_PATH=${CAL_PATH:-saved_models/toolbench/caller}
SUM_PATH=${SUM_PATH:-saved_models/toolbench/summarizer}
BACKBONE_PATH=${BACKBONE_PATH:-}                       # set → single-LLM baseline instead of the three roles

TEST_DIR=${TEST_DIR:-data/glpft/toolbench/test}        # in_domain.json, out_of_domain.json (α-UMi repo: GLPFT/dataset/toolbench/test/)
LAB_DIR=${LAB_DIR:-output_res/toolbench}
P_TYPE_PLAN=${P_TYPE_PLAN:-toolbench_planner}
P_TYPE_CAL=${P_TYPE_CAL:-toolbench_caller}
P_TYPE_SUM=${P_TYPE_SUM:-toolbench_summarizer}
P_TYPE_BACKBONE=${P_TYPE_BACKBONE:-toolbench_backbone}
BATCH_SIZE=${BATCH_SIZE:-8}                            # the paper ran 1; outputs are the same under greedy
DECODING=${DECODING:-greedy}                           # paper = seeded sampling as the original
OVERWRITE=${OVERWRITE:-false}                          # true → replace existing predictions/metrics
EXTRA_ARGS=${EXTRA_ARGS:-}                             # e.g. "--prompt_prefix --truncation history"

INFER_OVERWRITE=() EVAL_OVERWRITE=()
if [ "$OVERWRITE" = true ]; then INFER_OVERWRITE=(--overwrite_output_dir); EVAL_OVERWRITE=(--overwrite); fi

DOMAINS=${DOMAINS:-"in_domain out_of_domain"}
found=0
for DOMAIN in $DOMAINS; do
    if [ ! -f "$TEST_DIR/$DOMAIN.json" ]; then
        echo "skip $DOMAIN: no $TEST_DIR/$DOMAIN.json (the α-UMi repository's GLPFT/dataset/toolbench/test/)" >&2
        continue
    fi
    found=1
    if [ -n "$BACKBONE_PATH" ]; then
        MODELS=(--backbone_model_name_or_path "$BACKBONE_PATH" --backbone_prompt_type "$P_TYPE_BACKBONE")
        MODE=backbone
    else
        MODELS=(--planner_model_name_or_path "$PLAN_PATH" --planner_use_lora False
                --caller_model_name_or_path "$CAL_PATH" --caller_use_lora False
                --summarizer_model_name_or_path "$SUM_PATH" --summarizer_use_lora False
                --assistant_prompt_type "$P_TYPE_PLAN" --caller_prompt_type "$P_TYPE_CAL"
                --conclusion_prompt_type "$P_TYPE_SUM")
        MODE=multi_agent
    fi
    # shellcheck disable=SC2086
    torchrun --nproc_per_node="$NNODE" --master_port="$PORT" -m glpft.infer \
        "${MODELS[@]}" \
        --per_device_eval_batch_size "$BATCH_SIZE" \
        --data_path "$TEST_DIR/$DOMAIN.json" \
        $PRECISION \
        --decoding "$DECODING" \
        --max_input_length 3750 \
        --output_dir "$LAB_DIR/$DOMAIN" \
        "${INFER_OVERWRITE[@]}" $EXTRA_ARGS

    alpha-umi evaluate \
        --input_path "$LAB_DIR/$DOMAIN/predictions.json" \
        --output_path "$LAB_DIR/$DOMAIN/metrics.json" \
        --mode "$MODE" "${EVAL_OVERWRITE[@]}"
done
if [ "$found" = 0 ]; then echo "infer_toolbench.sh: no test set found in $TEST_DIR" >&2; exit 2; fi
