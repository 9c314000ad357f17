#!/usr/bin/env bash
# The C++ kernel and model tests on a core built with AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   tools/run_sanitized.sh                  # build, check the net, run the C++ tests -m "not slow" (below)
#   tools/run_sanitized.sh tests/test_cpp_kernels_ops.py -k rmsnorm      # other pytest arguments
#
# 1. Build: the core with -DLLAMA_LESSONS_SANITIZE=ON (CMakeLists.txt: -fsanitize=address,undefined
#    -fno-sanitize-recover=all -fno-omit-frame-pointer -g, on top of the usual -O3 -march=native, so every
#    SIMD version this CPU has is compiled and tested) in its own build folder, build/asan/cmake, installed
#    with the package's Python files into build/asan/site. The editable build in .venv is not touched.
# 2. The net: tests/native/sanitizer_canary.cpp, built with the same flags, must be stopped with a report
#    and a non-zero exit by a read one float past a heap buffer (ASan) and by an int32 overflow (UBSan),
#    and run clean without the bugs. If either bug got through, a clean run below would prove nothing.
# 3. The tests, importing cpp_core from build/asan/site. Python itself is not instrumented, so libasan
#    is preloaded (it must come first in the process, libstdc++ right after it), and leak checking is off
#    (the interpreter keeps its objects at exit, which LeakSanitizer would list). A report stops the
#    process (halt_on_error, -fno-sanitize-recover); pytest captures only Python's sys.stderr
#    (--capture=sys), so the report reaches the log: pytest exits non-zero, and any report line in
#    build/asan/pytest.log fails the script.
# Needs g++ (the one whose libasan is preloaded), cmake, and pip able to fetch the build requirements.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
OUT=$REPO/build/asan
CXX=${CXX:-g++}
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
LIBASAN=$("$CXX" -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "error: $CXX has no libasan.so ($LIBASAN)" >&2; exit 2; }
# libasan first; libstdc++ too, from the start: python is C, and ASan resolves its C++ exception hook
# (__cxa_throw) when it starts, so without it the core's first C++ exception stops the process
PRELOAD="$LIBASAN $("$CXX" -print-file-name=libstdc++.so)"
mkdir -p "$OUT"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
start=$(date +%s)

# ---- 1. the sanitized core ----
echo "+ build the core with ASan + UBSan into build/asan"
# Without build isolation: an isolated build gets pybind11 from a new temporary folder each time, which
# changes every compile line and rebuilds all (~4 CPU minutes) instead of what changed.
"$PY" -c "import scikit_build_core, pybind11" 2>/dev/null || "$PY" -m pip install -q "scikit-build-core>=0.10" "pybind11>=2.12"
# LTO off: faster links, and no -flto partition of the instrumented objects
CXX=$CXX "$PY" -m pip install -q --no-deps --no-compile --no-build-isolation --upgrade --target "$OUT/site" "$REPO" \
  -Cbuild-dir="$OUT/cmake" -Ccmake.define.LLAMA_LESSONS_SANITIZE=ON \
  -Ccmake.define.CMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF
so=$(ls "$OUT"/site/cpp_core/_core*.so)
grep -q __asan_report_load <<<"$(nm -D "$so")" || { echo "error: $so is not instrumented" >&2; exit 1; }
echo "  built in $(( $(date +%s) - start )) s: $so"

# ---- 2. the net catches a deliberate out-of-bounds read and an overflow ----
echo "+ the net: deliberate bugs must be reported"
"$CXX" -O2 -g -shared -fPIC $SAN_FLAGS tests/native/sanitizer_canary.cpp -o "$OUT/canary.so"
canary() {  # canary CALL -> prints the output, returns the exit status
  LD_PRELOAD=$PRELOAD "$PY" -c "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1]); lib.canary_dot.restype = ctypes.c_float; print($1)" "$OUT/canary.so" 2>&1
}
out=$(canary "lib.canary_dot(33, 0), lib.canary_sum(0)") || { echo "$out"; echo "error: the correct canary failed" >&2; exit 1; }
[ "$out" = "33.0 6" ] || { echo "error: the correct canary printed $out" >&2; exit 1; }
if out=$(canary "lib.canary_dot(33, 1)"); then
  echo "$out"; echo "error: a read past the buffer was not stopped" >&2; exit 1
fi
grep -q "ERROR: AddressSanitizer: heap-buffer-overflow" <<<"$out" || { echo "$out"; echo "error: no ASan report" >&2; exit 1; }
echo "  out-of-bounds read: $(grep -m1 -o 'AddressSanitizer: heap-buffer-overflow.*' <<<"$out" | cut -c1-60)..., exit non-zero"
if out=$(canary "lib.canary_sum(1)"); then
  echo "$out"; echo "error: an int32 overflow was not stopped" >&2; exit 1
fi
grep -q "runtime error: signed integer overflow" <<<"$out" || { echo "$out"; echo "error: no UBSan report" >&2; exit 1; }
echo "  int32 overflow: $(grep -m1 -o 'runtime error: .*' <<<"$out"), exit non-zero"

# ---- 3. the kernel and model tests on the sanitized core ----
# default: every C++ kernel test (each version this CPU has, odd shapes and tails), the C++ model on the
# default model and on tiny ones, every GGML type through both backends, and lesson 14's int8 kernels
[ $# -gt 0 ] || set -- tests/test_cpp_*.py tests/test_every_type_both_backends.py tests/test_l14_quant_dot.py -m "not slow"
site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# python -S: no site-packages .pth files, so the editable install's import hook cannot hand out the normal
# core; the venv's packages come through PYTHONPATH after build/asan/site. Run from build/asan/site so the
# repository's own cpp_core/ (sources, no .so) is not first on sys.path; run.py and the lessons come from there.
args=()
for a in "$@"; do case $a in tests/*) args+=("$REPO/$a") ;; *) args+=("$a") ;; esac; done
ln -sfn "$REPO/run.py" "$OUT/site/run.py"
ln -sfn "$REPO/export.py" "$OUT/site/export.py"
core=$(cd "$OUT/site" && LD_PRELOAD=$PRELOAD PYTHONPATH="$OUT/site:$site" "$PY" -S -c 'import cpp_core._core as c; print(c.__file__)')
[ "$core" = "$so" ] || { echo "error: python imports $core, not the sanitized $so" >&2; exit 1; }
echo "+ pytest $* (sanitized core)"
t0=$(date +%s)
set +e
(cd "$OUT/site" && LD_PRELOAD=$PRELOAD PYTHONPATH="$OUT/site:$site" \
   "$PY" -S -m pytest -q -p no:cacheprovider --capture=sys --rootdir "$REPO" -c "$REPO/pyproject.toml" "${args[@]}") 2>&1 | tee "$OUT/pytest.log"
rc=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer: CHECK" "$OUT/pytest.log"; then
  grep -m3 -E "ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer: CHECK" "$OUT/pytest.log" >&2
  echo "error: sanitizer report (build/asan/pytest.log)" >&2; exit 1
fi
[ "$rc" = 0 ] || { echo "error: the sanitized tests failed (exit $rc)" >&2; exit "$rc"; }
echo "sanitized run clean: tests $(( $(date +%s) - t0 )) s, all $(( $(date +%s) - start )) s"
