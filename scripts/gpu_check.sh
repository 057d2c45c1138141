#!/usr/bin/env bash
# On a CUDA machine: a few fp32 training and search steps of configs/paper.yaml on the CPU and on the GPU,
# from the same weights and fabricated batches; prints the losses of both, their relative difference and
# the derived plans, and exits 1 on a large difference (3 when CUDA is not available: nothing compared).
#   scripts/gpu_check.sh [--device cuda:N] [--steps 3] [--batch 4] [--tolerance 0.02] [--config FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" scripts/gpu_check.py "$@"
