"""The aarch64 NEON kernels, built with a cross compiler and run under qemu-aarch64.

No ARM machine and no aarch64 Python here, so tests/native/neon_check.cpp calls the C++ kernels directly:
every version the emulated CPU runs is compared with v0 (the scalar port, itself checked against the numpy
lessons by tests/test_cpp_kernels*.py), the int8 versions bit for bit with the scalar int8 kernels.
Two emulated CPUs: qemu's "max" (has the SDOT dot-product instructions) and a Cortex-A53 (ARMv8.0: none),
so both the dotprod detection (HWCAP) and the fallback without it are exercised.
Skips when the cross compiler or qemu is absent (Debian: apt-get install g++-aarch64-linux-gnu qemu-user).
Correctness only: qemu's timings say nothing about an ARM CPU.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "cpp_core" / "src"
HARNESS = ROOT / "tests" / "native" / "neon_check.cpp"
NOT_KERNELS = {"kernels_bind.cpp", "model_bind.cpp", "module.cpp"}  # the pybind11 module: not built here

CXX = shutil.which("aarch64-linux-gnu-g++")
QEMU = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
FLAGS = ["-std=c++17", "-O2", "-ffp-contract=fast", f"-I{SRC}"]  # CMakeLists' flags, minus -march=native

pytestmark = pytest.mark.skipif(
    CXX is None or QEMU is None,
    reason="needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)",
)


@pytest.fixture(scope="module")
def neon_check(tmp_path_factory) -> Path:
    """The harness linked with every kernel source, static (so qemu needs no aarch64 libraries)."""
    out = tmp_path_factory.mktemp("neon")
    sources = [p for p in sorted(SRC.glob("*.cpp")) if p.name not in NOT_KERNELS] + [HARNESS]
    objects, running = [], []
    for src in sources:  # two compilers at a time: ~15 s for the whole core
        obj = out / (src.stem + ".o")
        objects.append(obj)
        running.append(subprocess.Popen([CXX, *FLAGS, "-c", str(src), "-o", str(obj)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        if len(running) == 2 or src == sources[-1]:
            for proc in running:
                log, _ = proc.communicate(timeout=300)
                assert proc.returncode == 0, f"aarch64 compile failed:\n{log}"
            running = []
    exe = out / "neon_check"
    link = subprocess.run([CXX, "-static", "-pthread", *map(str, objects), "-o", str(exe)],
                          capture_output=True, text=True, timeout=120)
    assert link.returncode == 0, f"aarch64 link failed:\n{link.stderr}"
    return exe


# qemu -cpu: "max" has every extension qemu emulates (FEAT_DotProd included); cortex-a53 is ARMv8.0-A.
@pytest.mark.parametrize("cpu, has_dotprod", [("max", 1), ("cortex-a53", 0)])
def test_neon_kernels_match_v0_under_qemu(neon_check, cpu, has_dotprod):
    env = dict(os.environ)
    env.pop("LLAMA_LESSONS_MATMUL", None)  # the harness checks the default fast path
    run = subprocess.run([QEMU, "-cpu", cpu, str(neon_check), f"--expect-dotprod={has_dotprod}"],
                         capture_output=True, text=True, timeout=120, env=env)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"NEON check failed on qemu -cpu {cpu}:\n{report}"
    assert "NEON CHECK OK" in report
    assert f"dotprod={has_dotprod}" in report
    # every NEON version really ran (a row per version in the summary, none skipped)
    for row in ["rmsnorm v1_neon", "softmax v1_neon", "swiglu v1_neon", "rope v2_neon_cached",
                "attention v2_neon", "quant_matmul v6_f32_tiled_neon"]:
        assert row in report, f"{row} did not run:\n{report}"
    assert ("quant_matmul v4_neon_dotprod" in report) == bool(has_dotprod), report
