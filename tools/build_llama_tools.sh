#!/usr/bin/env bash
# =====================================================================================================================
# build_llama_tools.sh -- native llama.cpp, the yardstick the benchmark measures us against
# =====================================================================================================================
# tools/benchmark.py compares run.py's speed with llama.cpp's own programs, not with a Python binding around them (the
# binding's per-token overhead costs llama.cpp 15-25% of its decode speed, which would flatter us). This script builds
# those programs from the llama.cpp source that the llama-cpp-python *source* package on PyPI ships in
# vendor/llama.cpp -- the same llama.cpp version the project's reference fixtures came from:
#
#   llama-bench       prompt (pp) and generation (tg) speed, the benchmark's anchor
#   llama-cli         llama.cpp's chat command line (built on its server code: the slowest target, built last)
#   llama-completion  one-shot generation with llama.cpp's timing lines (the classic `main`)
#   llama-quantize    what export.py must match byte for byte
#   llama-perplexity  the fidelity check
#   llama-imatrix     importance matrices for the low-bit types
#
# Build: CPU only, Release, AVX2 and AVX-512 on, AMX off (ggml's AMX int8 path crashes with SIGSEGV in these VMs), no
# curl, no web UI (it would be fetched from the network), no tests or examples. llama-bench comes first, so the
# benchmark can start while the rest builds. About 15 minutes on 2 idle cores.
#
#   usage: tools/build_llama_tools.sh [DIR]       (DIR defaults to $HOME/.cache/llama-tools)
#   env:   LLAMA_CPP_PYTHON_VERSION (default 0.3.36), JOBS (default: all cores)
#
# Idempotent: when all six binaries are already there it builds nothing. On success the last line of stdout is the
# folder holding the binaries (everything else goes to stderr), so a caller can do BIN=$(tools/build_llama_tools.sh).
set -euo pipefail

DIR="${1:-$HOME/.cache/llama-tools}"
VER="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
TOOLS=(llama-bench llama-completion llama-quantize llama-perplexity llama-imatrix llama-cli)  # in build order

SRC="$DIR/llama_cpp_python-$VER/vendor/llama.cpp"
BUILD="$SRC/build"
BIN="$BUILD/bin"

# ---- already built? ---------------------------------------------------------------------------------------------------
all_there() {
  local t
  for t in "${TOOLS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}
if all_there; then echo "$BIN"; exit 0; fi

JOBS="${JOBS:-$(nproc)}"
for need in cmake tar; do
  command -v "$need" >/dev/null || { echo "error: $need is needed to build llama.cpp's tools" >&2; exit 1; }
done
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { echo "error: python3 (with pip) is needed to download the llama-cpp-python source" >&2; exit 1; }

# ---- the source: llama-cpp-python's sdist from PyPI (only the .tar.gz, no wheels, no dependencies) ----------------------
mkdir -p "$DIR"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  TARBALL="$DIR/llama_cpp_python-$VER.tar.gz"
  if [ ! -f "$TARBALL" ]; then
    echo "downloading llama-cpp-python $VER source from PyPI into $DIR" >&2
    "$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$DIR" >&2
  fi
  # unpack to a temporary name first: an interrupted tar must not leave a half tree that looks complete next time
  TMP="$(mktemp -d "$DIR/unpack.XXXXXX")"
  tar xzf "$TARBALL" -C "$TMP"
  rm -rf "$DIR/llama_cpp_python-$VER"
  mv "$TMP/llama_cpp_python-$VER" "$DIR/"
  rmdir "$TMP"
fi

# ---- configure + build the five targets ---------------------------------------------------------------------------------
GEN=()
command -v ninja >/dev/null && [ ! -f "$BUILD/CMakeCache.txt" ] && GEN=(-G Ninja)
cmake -S "$SRC" -B "$BUILD" "${GEN[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >&2
for t in "${TOOLS[@]}"; do  # one at a time, in order: each finished tool is usable while the next builds
  cmake --build "$BUILD" -j"$JOBS" --target "$t" >&2
done

all_there || { echo "error: the build finished but not every tool is in $BIN" >&2; exit 1; }
echo "$BIN"
