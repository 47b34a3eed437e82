#!/usr/bin/env bash
# glcic-fast GPU suite: THE one command to run on a machine with an NVIDIA GPU.
#
#     bash bench/gpu_suite.sh             # from the repository root (or anywhere: it cd's there)
#     bash bench/gpu_suite.sh --rehearse  # every step on this CPU: Triton's interpreter, tiny sizes
#     bash bench/gpu_suite.sh --dry-run   # print the plan, run nothing
#
# Starts from a bare machine that has torch and triton (plus numpy, pytest, ...) but not this
# package, and no network. Steps, in order of value (a GPU is lent rarely and briefly, so what
# matters most runs first), the whole suite capped at GPU_SUITE_BUDGET_S (480 s):
#   1. install: pip install --no-deps --no-build-isolation -e .
#   2. precompile: every launch plan's Triton kernels, compiled in parallel processes (one per
#      plan/size/batch; the GPU machine has 16 cores), so later steps find them in the cache;
#   3. parity of the production kernels: exactly the tiles the backend launches at 256x256,
#      batch 1 and 32, both plans, fp16/bf16, against torch in fp32, with the negative controls;
#   4. latency first: triton (both plans, with the latency model beside) and torch fp16 eager,
#      256x256, batch 1 and 32;
#   5. the rest: every other test, per-layer tables (both plans, model beside measured), the
#      network at 512x512, torch.compile, and `glcic-fast bench` over every backend.
# Each step writes its results as it ends and copies them to $OUT (when set: the device tool
# returns only what is there), so a stopped run still returns what it measured. Results:
# bench/results/<gpu-slug>-<date>-*. Exit status 0 when every step passed, else 1 (every step
# still runs); 2 when it cannot start. --rehearse runs the same steps and scripts on a CPU
# (TRITON_INTERPRET=1, tiny sizes, small test selections), results under a temporary folder.
#
# Environment: PYTHON (default python3, else python), GPU_SUITE_BUDGET_S (480), OUT,
# GPU_SUITE_JOBS (parallel compiles; default: all cores).
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
MODE=gpu
for arg in "$@"; do
  case "$arg" in
    --dry-run) MODE=dry ;;
    --rehearse) MODE=rehearse ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_suite.sh: error: unknown argument '$arg' (--rehearse, --dry-run, --help)" >&2; exit 2 ;;
  esac
done

BUDGET_S=${GPU_SUITE_BUDGET_S:-480}
JOBS=${GPU_SUITE_JOBS:-$(nproc 2>/dev/null || echo 4)}
START_S=$SECONDS
fail() { echo "gpu_suite.sh: error: $*" >&2; exit 2; }
remaining() { echo $(( BUDGET_S - (SECONDS - START_S) )); }

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "${PYTHON:-}" ] || fail "no Python with PyTorch found (tried python3, python); set PYTHON=/path/to/python"

# --- what each mode runs -------------------------------------------------------------------
if [ "$MODE" = rehearse ]; then
  export TRITON_INTERPRET=1
  GPU_NAME="cpu-rehearsal"
  RESULTS=$(mktemp -d)
  # bf16: the torch backend has no fp16 convolutions on the CPU
  SIZES_FIRST=4; SIZES_REST=4; BATCHES_FIRST=1; BATCHES_REST=1; DTYPE=bf16; DEVICE=cpu
  PRECOMPILE_SIZES=4
  LAYER_ARGS=(--rehearse --layers 1,13,17)
  NET_ARGS=(--rehearse)
  # the production tiles once each, on a small image (the negative controls and the rest of
  # the kernel tests run in CI's own pytest run)
  PARITY_TESTS=(tests/test_kernels_plans.py -k "production")
  REST_TESTS=(tests/test_kernels_plans.py -k "committed or bench_variant")
  # one timed call each: the command and its report are what is rehearsed, not the numbers
  BENCH_BACKENDS=triton-small-batch,torch-fp32; BENCH_SIZES=4x4; BENCH_BATCHES=1; BENCH_DEVICE=cpu
  BENCH_CALLS=(--warmup 0 --iters 1)
  COMPILE_ARG=()
else
  GPU_NAME=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>/dev/null)
  if [ -z "$GPU_NAME" ] && [ "$MODE" = gpu ]; then
    fail "no CUDA GPU is visible to PyTorch. This suite needs an NVIDIA GPU; on a CPU run
  bash bench/gpu_suite.sh --rehearse   (the same steps in Triton's interpreter)"
  fi
  RESULTS=bench/results
  SIZES_FIRST=256; SIZES_REST=512; BATCHES_FIRST=1,32; BATCHES_REST=1,32; DTYPE=fp16; DEVICE=cuda
  PRECOMPILE_SIZES=$SIZES_FIRST,$SIZES_REST
  LAYER_ARGS=(); NET_ARGS=(); COMPILE_ARG=(--compile)
  PARITY_TESTS=(tests/test_kernels_plans.py tests/test_kernels.py)
  REST_TESTS=(tests/ --deselect tests/test_kernels_plans.py --deselect tests/test_kernels.py)
  BENCH_BACKENDS=triton,triton-small-batch,torch-fp16,torch-compile,torch-bf16,triton-bf16,torch-fp32,onnxruntime,tensorrt
  BENCH_SIZES=256x256,512x512; BENCH_BATCHES=1,8,32; BENCH_DEVICE=cuda
  BENCH_CALLS=(--warmup 1 --iters 3)
fi
SLUG=$(printf '%s' "${GPU_NAME:-no-gpu}" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
STEM="$RESULTS/${SLUG}-$(date +%Y-%m-%d)"

if [ "$MODE" = dry ]; then
  echo "plan (GPU: ${GPU_NAME:-none visible}; results: $STEM-*; budget ${BUDGET_S}s; $JOBS compile jobs):"
  echo "  1. $PYTHON -m pip install --no-deps --no-build-isolation -e ."
  echo "  2. $PYTHON bench/bench_layers.py --precompile --jobs $JOBS --sizes $PRECOMPILE_SIZES --batches $BATCHES_FIRST"
  echo "  3. $PYTHON -m pytest ${PARITY_TESTS[*]}"
  echo "  4. $PYTHON bench/bench_layers.py --no-layers --sizes $SIZES_FIRST --batches $BATCHES_FIRST (both plans, torch eager)"
  echo "  5. $PYTHON -m pytest ${REST_TESTS[*]}; bench_layers.py per layer + 512 + --compile; glcic_fast.bench --backends $BENCH_BACKENDS"
  exit 0
fi

mkdir -p "$RESULTS"
copy_out() { if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then cp -f "$STEM"* "$OUT"/ 2>/dev/null; fi; return 0; }
trap copy_out EXIT
exec > >(tee "$STEM-suite.log") 2>&1
echo "== glcic-fast GPU suite ($MODE): $GPU_NAME, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), budget ${BUDGET_S}s"
command -v nvidia-smi >/dev/null 2>&1 && [ "$MODE" = gpu ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PYTHON" -c "import sys, torch, triton; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| triton', triton.__version__)"
status=0

# step NAME SECONDS_WANTED CMD...: runs CMD under a timeout of min(wanted, what is left - 5),
# logs to $STEM-NAME.log, copies results out; a failure or timeout marks the suite failed.
step() {
  local name=$1 want=$2; shift 2
  local left; left=$(( $(remaining) - 5 ))
  local limit=$(( want < left ? want : left ))
  if [ "$limit" -lt 10 ]; then
    echo "== [$(( SECONDS - START_S ))s] $name: skipped, ${left}s left of ${BUDGET_S}s"; status=1; return
  fi
  echo "== [$(( SECONDS - START_S ))s] $name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$STEM-$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "gpu_suite.sh: $name stopped after ${limit}s"; fi
  [ "$rc" = 0 ] || { echo "gpu_suite.sh: $name failed (exit $rc); see $STEM-$name.log"; status=1; }
  copy_out
}

PYTEST=("$PYTHON" -m pytest -q -rs -p no:cacheprovider)
LAYERS=("$PYTHON" bench/bench_layers.py --dtype "$DTYPE")

# --- 1. install ----------------------------------------------------------------------------
step install 120 "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .
"$PYTHON" -c "import glcic_fast.kernels, glcic_fast.bench" || { echo "gpu_suite.sh: error: glcic_fast does not import" >&2; exit 1; }

# --- 2. compile every plan's kernels in parallel --------------------------------------------
step precompile 150 "${LAYERS[@]}" "${NET_ARGS[@]}" --precompile --jobs "$JOBS" \
  --sizes "$PRECOMPILE_SIZES" --batches "$BATCHES_FIRST"

# --- 3. parity of the production kernels ---------------------------------------------------
step parity 120 "${PYTEST[@]}" "${PARITY_TESTS[@]}"

# --- 4. latency first: triton (both plans) and torch fp16 at 256x256, batch 1 and 32 ---------
step latency 90 "${LAYERS[@]}" "${NET_ARGS[@]}" --no-layers --sizes "$SIZES_FIRST" --batches "$BATCHES_FIRST" \
  --json "$STEM-latency.json" --markdown "$STEM-latency.md" --time-budget 70

# --- 5. the rest ---------------------------------------------------------------------------
step tests 90 "${PYTEST[@]}" "${REST_TESTS[@]}"
step layers 90 "${LAYERS[@]}" "${LAYER_ARGS[@]}" --no-network --sizes "$SIZES_FIRST" --batches "$BATCHES_FIRST" \
  --json "$STEM-layers.json" --markdown "$STEM-layers.md" --time-budget 75
step network-rest 60 "${LAYERS[@]}" "${NET_ARGS[@]}" --no-layers --sizes "$SIZES_REST" --batches "$BATCHES_REST" \
  "${COMPILE_ARG[@]}" --json "$STEM-network-rest.json" --markdown "$STEM-network-rest.md" --time-budget 45
left=$(( $(remaining) - 15 ))
step bench "$left" "$PYTHON" -m glcic_fast.bench --device "$BENCH_DEVICE" --backends "$BENCH_BACKENDS" \
  --sizes "$BENCH_SIZES" --batch-sizes "$BENCH_BATCHES" --mode network "${BENCH_CALLS[@]}" --max-iters 100 \
  --no-progress --time-budget "$(( left > 40 ? left - 30 : 10 ))" --json "$STEM-bench.json" --markdown "$STEM-bench.md"

echo "== [$(( SECONDS - START_S ))s] done (exit $status). Results:"
ls -l "$STEM"* 2>/dev/null
[ "$MODE" = rehearse ] && echo "gpu_suite.sh: rehearsal results in $RESULTS"
exit "$status"
