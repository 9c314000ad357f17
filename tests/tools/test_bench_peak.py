"""tools/bench_peak.c, the arithmetic roof tools/benchmark.py holds prefill against: it builds with the system's C
compiler, times exactly the multiply-add instructions this CPU has (checked against /proc/cpuinfo's flags), and
refuses bad arguments with one error line. And the benchmark's multiply-adds per prompt token, counted from the
model's shapes by hand."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tools.test_benchmark_llama import load_benchmark

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "bench_peak.c"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@pytest.fixture(scope="module")
def bench_peak(tmp_path_factory):
    if CC is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("bench_peak") / "bench_peak"
    p = subprocess.run([CC, "-O2", "-march=native", "-Wall", "-Werror", str(SOURCE), "-o", str(exe), "-lpthread"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"{SOURCE.name} does not compile with -march=native:\n{p.stderr}")
    return exe


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_times_what_the_cpu_has(bench_peak):
    out = subprocess.run([str(bench_peak), "1", "1"], check=True, capture_output=True, text=True).stdout
    rates = {k: float(v) for k, v in re.findall(r"^(\S+ \S+)\s+([0-9.]+) GMAC/s$", out, re.M)}
    assert rates.get("fma f32", 0) > 0, out  # every build times a float multiply-add
    if platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file():
        return
    flags = cpu_flags()  # -march=native: the build can issue an instruction exactly when the CPU has it
    assert ("dpwssd i16" in rates) == ("avx512_vnni" in flags), out
    assert ("dpbusd i8" in rates) == ("avx512_vnni" in flags), out
    assert ("dpbf16 bf16" in rates) == ("avx512_bf16" in flags), out
    for kind in {"dpwssd i16", "dpbusd i8", "dpbf16 bf16"} - set(rates):
        assert re.search(rf"^{re.escape(kind)}\s+\(not on this CPU or build\)$", out, re.M), out


@pytest.mark.parametrize("args", [["0"], ["300"], ["1", "0"], ["x"], ["2", "20000"]])
def test_bad_arguments(bench_peak, args):
    p = subprocess.run([str(bench_peak), *args], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, (p.returncode, p.stderr)


@pytest.mark.parametrize("weight_type", ["F32", "Q8_0"])
def test_prompt_macs_counted_by_hand(tiny_llama, weight_type):
    """2 layers of dim 32 (4 heads, 2 KV heads of 8), FFN 64: per token the layer matrices do
    q 32x32 + k 16x32 + v 16x32 + o 32x32 + gate, up 64x32 + down 32x64 = 9216 MACs per layer; attention's two
    products 32 MACs per key each, and a 10-token prompt's tokens see 5.5 keys on average: 2 x 32 x 5.5 = 352."""
    from lessons.ggml_types import GGMLType
    bench = load_benchmark()
    model = tiny_llama(n_embd=32, n_layer=2, n_head=4, n_head_kv=2, n_ff=64, weight_type=GGMLType[weight_type])
    macs, all_float = bench.prompt_macs_per_token(model, 10)
    assert macs == 2 * (32 * 32 + 16 * 32 + 16 * 32 + 32 * 32 + 3 * 64 * 32) + 2 * 2 * 32 * 5.5
    assert all_float == (weight_type == "F32")


def test_share_of_the_roof():
    """2x a llama.cpp prefill of 1000 tok/s at 1e8 MACs per token is 200 GMAC/s: 80% of a 250 GMAC/s roof."""
    bench = load_benchmark()
    row = {"all_float": False, "prompt_macs_per_token": 1e8, "ours": {"prefill_tok_s": 1500.0},
           "llama.cpp": {"prefill_tok_s": 1000.0}}
    bench.against_roof(row, {"fma f32": 125.0, "dpwssd i16": 250.0})
    assert row["roof"]["kind"] == "dpwssd i16" and row["roof"]["share_for_2x"] == pytest.approx(0.8)
    assert row["ours"]["prefill_gmac_s"] == pytest.approx(150.0)
    assert bench.roof_cell(row) == "80% of i16"
    row_f = dict(row, all_float=True, ours={"prefill_tok_s": 1500.0})
    bench.against_roof(row_f, {"fma f32": 125.0, "dpwssd i16": 250.0})
    assert bench.roof_cell(row_f) == "160% of f32"
    row_none = dict(row, ours={"prefill_tok_s": 1500.0})
    row_none.pop("roof")
    bench.against_roof(row_none, {})  # no bench_peak (no compiler): no column, no error
    assert bench.roof_cell(row_none) == "-"
