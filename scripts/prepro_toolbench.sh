#!/usr/bin/env bash
# ToolBench raw answers → GLPFT training data (stage 1, stage 2, train_{backbone,planner,caller,summarizer}.json).
# CPU only. The full ToolBench answer set (~126k trajectories) takes minutes with NUM_PROC=16.
# Variables as in the paper's README; override any of them from the environment.
set -euo pipefail

ORI_DATA_DIR=${ORI_DATA_DIR:-data/toolbench/data}              # holds answer/G*_answer and test_query_ids/
TRAIN_DATA_OUT_DIR=${TRAIN_DATA_OUT_DIR:-data/glpft/toolbench/train}
RAW_DATA_OUT_DIR=${RAW_DATA_OUT_DIR:-$TRAIN_DATA_OUT_DIR/raw_data}
NUM_PROC=${NUM_PROC:-8}

alpha-umi prepro \
    --data-dir "$ORI_DATA_DIR" \
    --out-dir "$TRAIN_DATA_OUT_DIR" \
    --raw-dir "$RAW_DATA_OUT_DIR" \
    --num-proc "$NUM_PROC" \
    "$@"
