#!/usr/bin/env bash
# glcic-fast: THE one command that trains a model at the paper's scale on a lent GPU.
#
#     bash train/gpu_train.sh [BUDGET_S]          # default 480 s (8 minutes), all included
#     bash train/gpu_train.sh --rehearse          # the same steps on a CPU, tiny sizes, seconds (CI)
#
# Before (on a machine with the package registries, once): build the photo pack, and send it
# with the working tree (it is an ignored path, ~15 MiB):
#     python -m glcic_fast.train.photos build --out .photos
#     device run: command "bash train/gpu_train.sh 420", carry [".photos"]
#
# Steps (each writes into $OUT as it goes, so a run stopped at any point returns its last
# snapshot; at most 8 files, as the device tool returns):
#   1. checks the GPU, installs the package (pip install --no-deps --no-build-isolation -e .);
#   2. trains: `glcic-fast train --time-budget` on .photos/train, 256x256 crops, one 96-128 px
#      hole in a 128 px region, batch 64, ADADELTA, MSE phase; photos decoded once and kept on
#      the GPU, bf16 autocast, channels-last; validates on .photos/val every 60 s and exports the
#      best snapshot (fp16)                        -> $OUT/model.safetensors, log.jsonl, summary.json
#   3. evaluates it on .photos/test at 256x256 (the paper's holes) and at 128x128, against mean
#      fill, Telea, Navier-Stokes (and FSR_FAST where OpenCV's contrib modules are installed), and
#      draws the demo picture (a test photo at 256 with an object-sized hole, input | mask | result)
#                                                  -> $OUT/eval.json, eval.md, demo.png
#   4. a model card draft from all of the above                            -> $OUT/MODEL_CARD.md
#   everything printed                                                     -> $OUT/train.log
#
# Knobs (environment): OUT (default: runs/gpu-out), PHOTOS (default: .photos; a rehearsal makes
# a tiny synthetic pack unless PHOTOS is set), PYTHON,
# BATCH (64), EVAL_RESERVE_S (time kept for steps 3-5; default 75).
# Exit status: 0 when training produced a model and the evaluation ran, else 1 (2: bad setup).
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 2

REHEARSE=0
BUDGET_S=480
for arg in "$@"; do
  case "$arg" in
    --rehearse) REHEARSE=1; BUDGET_S=${BUDGET_S_REHEARSE:-90} ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    ''|*[!0-9]*) echo "gpu_train.sh: error: unknown argument '$arg' (BUDGET_S in seconds, --rehearse, --help)" >&2; exit 2 ;;
    *) BUDGET_S=$arg ;;
  esac
done
[ "$BUDGET_S" -le 480 ] || { echo "gpu_train.sh: error: BUDGET_S is at most 480 (8 minutes)" >&2; exit 2; }
START_S=$SECONDS
OUT=${OUT:-runs/gpu-out}
mkdir -p "$OUT"
LOG="$OUT/train.log"
: > "$LOG"
say() { echo "[gpu_train $(( SECONDS - START_S ))s] $*" | tee -a "$LOG" >&2; }
fail() { say "error: $*"; exit 2; }
run_logged() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import torch" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
[ -n "${PYTHON:-}" ] || fail "no Python with PyTorch found; set PYTHON=/path/to/python"

# --- 1. device and package --------------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then
  DEVICE=cpu; SIZE=64; LOCAL=32; HOLE_MIN=24; HOLE_MAX=32; BATCH=${BATCH:-2}; VAL_EVERY=8; EVAL_SIZES=trained,96
  EVAL_RESERVE_S=${EVAL_RESERVE_S:-45}; HOLES_PER_IMAGE=1; EXTRA=(--threads 2)
else
  GPU=$("$PYTHON" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>/dev/null)
  [ -n "$GPU" ] || fail "no CUDA GPU visible to PyTorch; on a CPU use --rehearse"
  say "GPU: $GPU"
  DEVICE=cuda; SIZE=256; LOCAL=128; HOLE_MIN=96; HOLE_MAX=128; BATCH=${BATCH:-64}; VAL_EVERY=60; EVAL_SIZES=trained,128
  EVAL_RESERVE_S=${EVAL_RESERVE_S:-75}; HOLES_PER_IMAGE=4; EXTRA=()
fi
here=$("$PYTHON" -c "import glcic_fast, os; print(os.path.realpath(os.path.dirname(glcic_fast.__file__)))" 2>/dev/null)
if [ "$here" != "$(realpath glcic_fast)" ]; then
  say "installing glcic-fast from $(pwd)"
  run_logged "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . || fail "pip install -e . failed"
fi

# --- photos --------------------------------------------------------------------------------------
if [ "$REHEARSE" = 1 ] && [ -z "${PHOTOS:-}" ]; then  # a rehearsal makes its own tiny pack unless given one
  PHOTOS=$(mktemp -d)/photos
  run_logged "$PYTHON" -m glcic_fast.train.photos synthetic --out "$PHOTOS" --per-split 4 || fail "synthetic photos failed"
fi
PHOTOS=${PHOTOS:-.photos}
for split in train val test; do
  [ -d "$PHOTOS/$split" ] || fail "$PHOTOS/$split missing: build the pack first (python -m glcic_fast.train.photos build --out .photos) and carry .photos"
done


# --- 2. train --------------------------------------------------------------------------------
TRAIN_S=$(( BUDGET_S - (SECONDS - START_S) - EVAL_RESERVE_S ))
[ "$TRAIN_S" -ge 10 ] || fail "budget too small: $TRAIN_S s left for training"
say "training for $TRAIN_S s on $DEVICE ($SIZE px, batch $BATCH)"
RUN_DIR=$(mktemp -d)/run
run_logged "$PYTHON" -m glcic_fast.cli train --data "$PHOTOS/train" --val-data "$PHOTOS/val" --out "$RUN_DIR" \
  --export "$OUT" --time-budget "$TRAIN_S" --val-every "$VAL_EVERY" --device "$DEVICE" \
  --image-size "$SIZE" --local-size "$LOCAL" --hole-min "$HOLE_MIN" --hole-max "$HOLE_MAX" --batch-size "$BATCH" \
  --save-every 1000000000 --sample-every 0 --no-progress "${EXTRA[@]}"
train_rc=$?
[ -f "$OUT/model.safetensors" ] || { say "error: training exported no model (exit $train_rc)"; exit 1; }

# --- 3. evaluate -----------------------------------------------------------------------------
left=$(( BUDGET_S - (SECONDS - START_S) - 10 ))
say "evaluating ($left s left)"
run_logged timeout "$(( left > 5 ? left : 5 ))" "$PYTHON" -m glcic_fast.cli eval --model "$OUT/model.safetensors" \
  --data "$PHOTOS/test" --image-size "$EVAL_SIZES" --holes-per-image "$HOLES_PER_IMAGE" --hole-sets paper,free-form \
  --backend torch --device "$DEVICE" --json "$OUT/eval.json" --markdown "$OUT/eval.md" --figure "$OUT/demo.png"
eval_rc=$?

# --- 5. model card ----------------------------------------------------------------------------
run_logged "$PYTHON" -m glcic_fast.train.card --export "$OUT" --pack "$PHOTOS" --eval "$OUT/eval.json" \
  -o "$OUT/MODEL_CARD.md" || say "warning: model card failed"

say "done: $(ls "$OUT" | tr '\n' ' ')"
[ "$train_rc" = 0 ] && [ "$eval_rc" = 0 ] || exit 1
exit 0
