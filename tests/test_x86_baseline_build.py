"""The x86 kernels compile for a plain x86-64 CPU, whatever this machine has.

The core is built with -march=native, and every SIMD function carries its own
__attribute__((target(...))) so that it exists on any CPU and runs only where cpuid says it can. A
function that uses an instruction its target list forgot (an AVX-512VL load in an "avx512f,avx512bw"
function, say) still compiles on a machine whose -march=native has that extension, and breaks the
build everywhere else: it happened once, on an AVX2-only machine. Building every kernel source for the
x86-64 baseline (no SIMD extension implied) catches it here, on any x86 machine: ~15 s on 2 cores.
"""

import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "cpp_core" / "src"
BINDINGS = SRC / "bindings"  # the pybind11 module: no SIMD of its own
CXX = shutil.which("g++") or shutil.which("c++")

pytestmark = pytest.mark.skipif(CXX is None or platform.machine() not in ("x86_64", "AMD64"),
                                reason="needs an x86-64 machine with g++")


def test_every_kernel_source_compiles_for_plain_x86_64(tmp_path):
    sources = [p for p in sorted(SRC.rglob("*.cpp")) if BINDINGS not in p.parents and "neon" not in p.name]
    assert len(sources) > 10
    failures, running = [], []
    for src in sources:  # two compilers at a time; -O1 so that the target checks at inlining run
        cmd = [CXX, "-std=c++17", "-O1", "-march=x86-64", f"-I{SRC}", "-c", str(src), "-o", str(tmp_path / (src.parent.name + "_" + src.stem + ".o"))]
        running.append((src, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        if len(running) == 2 or src == sources[-1]:
            for name, proc in running:
                log, _ = proc.communicate(timeout=300)
                if proc.returncode != 0:
                    failures.append(f"{name.relative_to(SRC)}:\n" + "\n".join(line for line in log.splitlines() if "error" in line)[:2000])
            running = []
    assert not failures, "kernel sources that need more than their target attributes declare:\n" + "\n".join(failures)


# ---- dev/: the experiments kept out of the core still build against its headers and pass their own checks ----
DEV = ROOT / "dev"


@pytest.mark.parametrize("experiment", sorted(p.name for p in DEV.glob("*.cpp")))
def test_dev_experiment_builds_and_checks_itself(tmp_path, experiment):
    """Each dev/ file is one program (dev/README.md): it compares its kernels with a float64 reference and
    exits 1 on a mismatch; on a CPU without its instructions it says so and exits 0. -O1: ~1 s each."""
    exe = tmp_path / experiment.removesuffix(".cpp")
    build = subprocess.run([CXX, "-std=c++17", "-O1", "-march=native", f"-I{SRC}", str(DEV / experiment), "-o", str(exe)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "FAIL" not in run.stdout, run.stdout + run.stderr
    assert "ok" in run.stdout or run.stdout.startswith("skipped"), run.stdout
