#!/usr/bin/env bash
# Build the standalone CUDA harness with nvcc (no TensorFlow), check the
# kernels against a CPU reference and time them; prints one table.
#   ops/cuda_harness/run.sh [S]          (S x S texel maps, default 256)
#   CUDA_ARCH=sm_90 ops/cuda_harness/run.sh   (default: native GPU, else sm_90)
#   BUILD_ONLY=1 ops/cuda_harness/run.sh       (compile, do not run)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${HARNESS_OUT:-$ROOT/build/cuda_harness}"
mkdir -p "$OUT"
ARCH="${CUDA_ARCH:-}"
if [[ -z "$ARCH" ]]; then
  if nvidia-smi >/dev/null 2>&1; then ARCH=native; else ARCH=sm_90; fi
fi
nvcc -O3 -std=c++17 -arch="$ARCH" --expt-relaxed-constexpr -I"$ROOT" -x cu \
  "$ROOT/ops/cuda_harness/harness.cu" "$ROOT/ops/cuda/tf_face_kernels.cu.cc" -o "$OUT/harness"
echo "built $OUT/harness ($ARCH)"
if [[ -n "${BUILD_ONLY:-}" ]]; then exit 0; fi
"$OUT/harness" "${1:-256}"
