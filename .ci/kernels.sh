#!/usr/bin/env bash
# CI for the Triton kernels beyond pytest (issue 10): the sm_90 / sm_80 ahead-of-time compile
# proof (no GPU; every variant the backend launches must compile, use wgmma on sm_90, not spill,
# fit shared memory) and the GPU suite's CPU rehearsal. Call from .ci/run inside the CI venv.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
python -m glcic_fast.kernels.aot_proof --jobs 2 --markdown "$(mktemp -d)/aot-proof.md"
echo "CI kernels: AOT proof in $(( $(date +%s) - start )) s"
GPU_SUITE_BUDGET_S=${GPU_SUITE_BUDGET_S:-300} bash bench/gpu_suite.sh --rehearse
echo "CI kernels: done in $(( $(date +%s) - start )) s"
