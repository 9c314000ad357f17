"""tools/bench_memory.c, the one-core memory experiment docs/21-cpp-model.md quotes: it builds with the
system's C compiler, runs its loops on a small buffer, and refuses bad sizes with one error line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "bench_memory.c"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def bench_memory(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("bench_memory") / "bench_memory"
    for flags in (["-march=native"], []):  # as the docs build it, or plain where -march=native is refused
        if subprocess.run([CC, "-O2", *flags, "-Wall", "-Werror", str(SOURCE), "-o", str(exe)], capture_output=True).returncode == 0:
            return exe
    pytest.fail(f"{SOURCE.name} does not compile")


def test_runs_every_loop(bench_memory):
    out = subprocess.run([str(bench_memory), "4", "1"], check=True, capture_output=True, text=True).stdout
    rates = dict(re.findall(r"^(read|work \+ pf|work|work in L2)\s+([0-9.]+) GB/s$", out, re.M))
    assert set(rates) == {"read", "work", "work + pf", "work in L2"}, out
    assert all(float(r) > 0 for r in rates.values()), out
    assert "if they took turns" in out


@pytest.mark.parametrize("args", [["0"], ["5000"], ["4", "0"], ["x"]])
def test_bad_arguments(bench_memory, args):
    p = subprocess.run([str(bench_memory), *args], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, (p.returncode, p.stderr)
