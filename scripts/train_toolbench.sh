#!/usr/bin/env bash
# GLPFT: stage 1 trains the backbone on the whole task, stage 2 starts the planner, caller and
# summarizer from it and trains each on its role (paper hyper-parameters; cosine, bf16, 4096 tokens).
# GPUs: written for 8 × A100 80GB per node (the paper's setup), 7B Llama-2 full fine-tuning with
# DeepSpeed ZeRO-3 (use ds_configs/zero3_offload.json on 40GB cards). Multi-node: set NNODES,
# NODE_RANK and MASTER_ADDR on every node.
# Duration: grows with the data; on the full ToolBench set expect on the order of a day for all four
# jobs on one such node. Time a short run first: ./scripts/train_toolbench.sh --max_steps 20
# Extra arguments go to every job (e.g. --packing True, --use_lora True). Jobs resume from the last
# checkpoint in their output folder, so the script can simply be rerun after an interruption.
# Without GPUs (e.g. the demo's tiny models on a laptop) the defaults fall back to one CPU process,
# fp32 and no DeepSpeed; every variable below can still be set by hand.
set -euo pipefail

GPUS=$(python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
LLAMA_PATH=${LLAMA_PATH:?set LLAMA_PATH to the base model folder (e.g. Llama-2-7b-chat-hf)}
DATA_DIR=${DATA_DIR:-data/glpft/toolbench/train}       # train_{backbone,planner,caller,summarizer}.json
SAVE_DIR=${SAVE_DIR:-saved_models/toolbench}
if [ "$GPUS" -gt 0 ]; then
    DS_CONFIG=${DS_CONFIG-GLPFT/ds_configs/zero3.json}
    PRECISION=${PRECISION-"--bf16"}
else
    DS_CONFIG=${DS_CONFIG-}          # CPU: plain PyTorch (set DS_CONFIG to try ZeRO over gloo)
    PRECISION=${PRECISION-}
fi
NNODE=${NNODE:-$([ "$GPUS" -gt 0 ] && echo "$GPUS" || echo 1)}   # processes per node (the paper: 8 GPUs)
MAX_LEN=${MAX_LEN:-4096}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PORT=${PORT:-12345}
BSZ=${BSZ:-6}
GA=${GA:-1}
BB_PATH=${BB_PATH:-$SAVE_DIR/backbone}

# one GLPFT job: <data file> <init model> <output dir> <epochs> <lr> <weight decay> <warmup ratio> [extra…]
glpft() {
    local data=$1 init=$2 out=$3 epochs=$4 lr=$5 wd=$6 warmup=$7
    shift 7
    torchrun --nproc_per_node="$NNODE" --nnodes="$NNODES" --node_rank="$NODE_RANK" \
        --master_addr="$MASTER_ADDR" --master_port="$PORT" -m glpft.train \
        --model_name_or_path "$init" \
        --data_path "$data" \
        --output_dir "$out" \
        --num_train_epochs "$epochs" \
        --per_device_train_batch_size "$BSZ" \
        --per_device_eval_batch_size "$BSZ" \
        --gradient_accumulation_steps "$GA" \
        --evaluation_strategy no \
        --save_strategy steps \
        --save_steps 500 \
        --save_total_limit 8 \
        --learning_rate "$lr" \
        --weight_decay "$wd" \
        --warmup_ratio "$warmup" \
        --lr_scheduler_type cosine \
        --gradient_checkpointing True \
        ${DS_CONFIG:+--deepspeed "$DS_CONFIG"} \
        $PRECISION \
        --logging_steps 2 \
        --model_max_length "$MAX_LEN" \
        --report_to none \
        "$@"
}

# GLPFT stage 1: backbone (2 epochs, lr 5e-5, warmup 0.4)
glpft "$DATA_DIR/train_backbone.json" "$LLAMA_PATH" "$BB_PATH" 2 5e-5 0 0.4 "$@"

# GLPFT stage 2: planner and caller (1 epoch, lr 1e-5, wd 0.01, warmup 0.2), summarizer (2 epochs, warmup 0.4)
# (a LoRA backbone must be merged first: alpha-umi merge-lora --adapter "$BB_PATH" --out "$BB_PATH-merged")
glpft "$DATA_DIR/train_planner.json" "$BB_PATH" "$SAVE_DIR/planner" 1 1e-5 0.01 0.2 "$@"
glpft "$DATA_DIR/train_caller.json" "$BB_PATH" "$SAVE_DIR/caller" 1 1e-5 0.01 0.2 "$@"
glpft "$DATA_DIR/train_summarizer.json" "$BB_PATH" "$SAVE_DIR/summarizer" 2 1e-5 0.01 0.4 "$@"
