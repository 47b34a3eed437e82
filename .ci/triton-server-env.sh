#!/usr/bin/env bash
# Make the Triton Inference Server environment the serving tests run against
# (tests/test_serve.py): a venv of its own with nvidia-pytriton (tritonserver 2.51 and its
# python backend), numpy<2 (that python backend returns empty outputs with numpy 2) and the
# onnxruntime version of the CI venv (so served images equal local ones byte for byte).
# It is made by the package's own `glcic-fast serve --setup-env`, fresh each run (no cache).
#
# Usage, from .ci/run after glcic-fast is installed in the CI venv and before the tests:
#     bash .ci/triton-server-env.sh && export GLCIC_TRITON_SERVER_ENV="$PWD/.ci-server-env"
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
rm -rf .ci-server-env
log=$(mktemp)
if ! glcic-fast serve --setup-env --server-env .ci-server-env >"$log" 2>&1; then
  cat "$log" >&2; echo "CI: could not make the Triton server environment" >&2; exit 1
fi
grep -v -E "^(WARNING: Location|Processing |Collecting |Requirement already|  Downloading |Downloading |     )" "$log" || true
rm -f "$log"
test -f .ci-server-env/glcic-fast-server-env.json
echo "CI: Triton server environment ready in $(( $(date +%s) - start )) s"
