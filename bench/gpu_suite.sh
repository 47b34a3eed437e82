#!/usr/bin/env bash
# glcic-fast GPU suite: THE one command to run on a machine with an NVIDIA GPU.
#
#     bash bench/gpu_suite.sh            # from the repository root (or anywhere: it cd's there)
#     bash bench/gpu_suite.sh --dry-run  # print the plan, run nothing (works without a GPU)
#
# Starts from a bare machine that has torch and triton (plus numpy, onnx, onnxruntime,
# safetensors, opencv, matplotlib, pytest, pytest-benchmark) but not this package, and no
# network. In under 10 minutes it:
#   1. checks that PyTorch sees a CUDA GPU (without one: a message and exit status 2);
#   2. installs the package: pip install --no-deps --no-build-isolation -e .
#   3. runs every test (pytest tests/ -q): kernel parity and backend parity run on CUDA there;
#   4. runs the per-layer kernel benchmark bench/bench_layers.py, if present;
#   5. runs `glcic-fast bench --device cuda` for every backend at 256x256 / 512x512 and
#      batch 1 / 8 / 32, in network, end-to-end and device-resident modes.
# Results go to bench/results/<gpu-name-slug>-<YYYY-MM-DD>{.json,.md,.png,-pytest.log,
# -layers.*,-suite.log}; commit them. Exit status: 0 when every step passed, else 1 (every step
# still runs, so one failing test does not cost the latency tables).
#
# Environment knobs: PYTHON (interpreter; default: python3, else python), GPU_SUITE_BUDGET_S
# (total seconds, default 540), OUT (if set, a folder the results are also copied to: the
# device tool returns only what is written under $OUT), PYTEST_TIMEOUT_S (default 240), LAYERS_TIMEOUT_S (default 100).
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_suite.sh: error: unknown argument '$arg' (only --dry-run and --help)" >&2; exit 2 ;;
  esac
done

BUDGET_S=${GPU_SUITE_BUDGET_S:-540}
PYTEST_TIMEOUT_S=${PYTEST_TIMEOUT_S:-240}
LAYERS_TIMEOUT_S=${LAYERS_TIMEOUT_S:-100}
START_S=$SECONDS
fail() { echo "gpu_suite.sh: error: $*" >&2; exit 2; }
remaining() { echo $(( BUDGET_S - (SECONDS - START_S) )); }

# --- 1. interpreter, torch, GPU ------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "${PYTHON:-}" ] || fail "no Python with PyTorch found (tried python3, python); set PYTHON=/path/to/python"
"$PYTHON" -c "import torch" 2>/dev/null || fail "$PYTHON cannot import torch; install PyTorch with CUDA support first"

GPU_NAME=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>/dev/null)
if [ -z "$GPU_NAME" ] && [ "$DRY_RUN" = 0 ]; then
  torch_info=$("$PYTHON" -c "import torch; print(f'torch {torch.__version__}, CUDA build {torch.version.cuda}')" 2>/dev/null)
  fail "no CUDA GPU is visible to PyTorch ($torch_info). This suite needs an NVIDIA GPU; on a CPU run
  glcic-fast bench --device cpu   (and: python -m pytest tests/ -q)"
fi
SLUG=$(printf '%s' "${GPU_NAME:-no-gpu-dry-run}" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
STEM="bench/results/${SLUG}-$(date +%Y-%m-%d)"

PYTEST_CMD=("$PYTHON" -m pytest tests/ -q -rs -p no:cacheprovider)
BENCH_CMD=("$PYTHON" -m glcic_fast.bench --device cuda
  --backends torch-fp16,torch-bf16,torch-fp32,triton,triton-bf16,onnxruntime,tensorrt,torch-compile
  --sizes 256x256,512x512 --batch-sizes 1,8,32 --mode all
  --warmup 2 --iters 5 --min-time 0.25 --max-iters 300 --no-progress
  --json "$STEM.json" --markdown "$STEM.md" --plot "$STEM.png")

if [ "$DRY_RUN" = 1 ]; then
  echo "plan (GPU: ${GPU_NAME:-none visible}; results: $STEM.*; budget ${BUDGET_S}s):"
  echo "  $PYTHON -m pip install --no-deps --no-build-isolation -e ."
  echo "  timeout ${PYTEST_TIMEOUT_S}s ${PYTEST_CMD[*]} | tee $STEM-pytest.log"
  [ -f bench/bench_layers.py ] && echo "  timeout ${LAYERS_TIMEOUT_S}s $PYTHON bench/bench_layers.py (--json $STEM-layers.json --markdown $STEM-layers.md --time-budget N, where it takes them)"
  echo "  ${BENCH_CMD[*]} --time-budget <what is left>"
  exit 0
fi

mkdir -p bench/results
# On a lent GPU machine only files under $OUT come back: copy the results there on any exit.
copy_out() { if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then cp -f "$STEM"* "$OUT"/ 2>/dev/null; fi; }
trap copy_out EXIT
exec > >(tee "$STEM-suite.log") 2>&1
echo "== glcic-fast GPU suite: $GPU_NAME, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
"$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| cudnn', torch.backends.cudnn.version())"
"$PYTHON" -c "import triton; print('triton', triton.__version__)" 2>/dev/null || echo "triton: not importable"
status=0

# --- 2. install ----------------------------------------------------------------------------
echo "== [$(( SECONDS - START_S ))s] install"
if ! timeout 120 "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e .; then
  # No pip or setuptools here: lay the package out as it installs (kernels/ and train/ are
  # subpackages of glcic_fast) in a temporary tree on PYTHONPATH.
  echo "gpu_suite.sh: pip install failed; using a PYTHONPATH package tree instead" >&2
  SITE=$(mktemp -d)/site && mkdir -p "$SITE" && cp -r glcic_fast "$SITE/" \
    && cp -r kernels "$SITE/glcic_fast/kernels" && cp -r train "$SITE/glcic_fast/train" \
    || { echo "gpu_suite.sh: error: could not lay out the package" >&2; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" -c "import glcic_fast.bench" || { echo "gpu_suite.sh: error: glcic_fast does not import after install" >&2; exit 1; }

# --- 3. tests (kernel parity, backend parity, everything else) on CUDA --------------------
echo "== [$(( SECONDS - START_S ))s] tests: ${PYTEST_CMD[*]}"
timeout -k 10 "$PYTEST_TIMEOUT_S" "${PYTEST_CMD[@]}" 2>&1 | tee "$STEM-pytest.log"
rc=${PIPESTATUS[0]}
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "gpu_suite.sh: tests stopped after ${PYTEST_TIMEOUT_S}s (PYTEST_TIMEOUT_S)" | tee -a "$STEM-pytest.log"
fi
[ "$rc" = 0 ] || { echo "gpu_suite.sh: tests failed (exit $rc); see $STEM-pytest.log"; status=1; }

# --- 4. per-layer kernel benchmark ---------------------------------------------------------
if [ -f bench/bench_layers.py ]; then
  layers_timeout=$(( $(remaining) - 150 ))  # keep at least 150 s for the network benchmark
  [ "$layers_timeout" -gt "$LAYERS_TIMEOUT_S" ] && layers_timeout=$LAYERS_TIMEOUT_S
  if [ "$layers_timeout" -lt 20 ]; then
    echo "gpu_suite.sh: no time left for bench/bench_layers.py; skipped"; status=1
  else
    help=$("$PYTHON" bench/bench_layers.py --help 2>&1 || true)
    layer_args=()
    case "$help" in *--json*) layer_args+=(--json "$STEM-layers.json") ;; esac
    case "$help" in *--markdown*) layer_args+=(--markdown "$STEM-layers.md") ;; esac
    case "$help" in *--time-budget*) layer_args+=(--time-budget "$(( layers_timeout - 15 ))") ;; esac
    echo "== [$(( SECONDS - START_S ))s] per-layer benchmark: bench/bench_layers.py ${layer_args[*]}"
    timeout -k 10 "$layers_timeout" "$PYTHON" bench/bench_layers.py "${layer_args[@]}" 2>&1 | tee "$STEM-layers.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "gpu_suite.sh: bench/bench_layers.py failed (exit $rc)"; status=1; }
  fi
else
  echo "== bench/bench_layers.py not present; per-layer benchmark skipped"
fi

# --- 5. whole-network latency, every backend ----------------------------------------------
left=$(remaining)
if [ "$left" -lt 60 ]; then
  echo "gpu_suite.sh: only ${left}s left of ${BUDGET_S}s; running the network benchmark anyway with a 60 s budget"
  left=60
fi
# Cases not started within --time-budget are recorded as skipped; `timeout` sends SIGTERM,
# on which the bench stops and still writes what it measured.
echo "== [$(( SECONDS - START_S ))s] network benchmark (${left}s left)"
timeout -k 20 "$(( left - 10 ))" "${BENCH_CMD[@]}" --time-budget "$(( left - 45 ))"
rc=$?
[ "$rc" = 0 ] || { echo "gpu_suite.sh: glcic-fast bench exited $rc (errors, or stopped by the time limit)"; status=1; }

echo "== [$(( SECONDS - START_S ))s] done (exit $status). Results:"
ls -l "$STEM"* 2>/dev/null
exit "$status"
