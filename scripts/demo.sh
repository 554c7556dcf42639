#!/usr/bin/env bash
# The embedded end-to-end demo: the whole α-UMi chain on a CPU, no downloads.
# CPU only (2 cores): about 8 minutes by default, under a minute with QUICK=1.
set -euo pipefail

OUT=${OUT:-runs/demo}
SEED=${SEED:-0}
ARGS=(--out "$OUT" --seed "$SEED")
[ "${QUICK:-0}" = "1" ] && ARGS+=(--quick)

alpha-umi demo "${ARGS[@]}" "$@"
