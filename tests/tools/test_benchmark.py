"""tools/benchmark.py's driver and workers on a tiny model (no llama.cpp needed), and its summary's arithmetic."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lessons.l01_gguf import GGMLType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "benchmark.py"
pytest.importorskip("cpp_core.model", reason="the C++ core is not built (pip install -e .)")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_rounds_on_a_tiny_model(tiny_llama):
    """Two rounds, 5 decoded tokens in turns of 2 (2 + 2 + 1). -c is exactly prompt + decoded tokens, so a
    worker that decoded one token too many would hit the end of its context and fail the run."""
    path = tiny_llama(weight_type=GGMLType.Q4_1)
    p = run("-m", path, "--no-llama", "-t", 2, "-p", 8, "-n", 5, "-c", 13, "--rounds", 2, "--chunk", 2, "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert (summary["rounds"], summary["chunk"]) == (2, 2)
    ours = summary["ours"]
    assert ours["prefill_tok_s"] > 0 and ours["decode_tok_s"] > 0
    assert ours["kv_cache_bytes"] == 2 * 2 * 13 * (2 * 8) * 2  # K and V, 2 layers, 13 positions, 2 KV heads of 8, float16
    assert 0 < ours["peak_rss_mib"] < 1024
    assert p.stderr.count("round 1 ours") == 1 and p.stderr.count("round 2 ours") == 1


@pytest.mark.parametrize("args, message", [
    (["-m", "/nonexistent.gguf", "--no-llama"], "error: ours worker failed: "),
    (["-m", "any.gguf", "--rounds", "0"], "error: --rounds"),
    (["-m", "any.gguf", "-p", "500", "-n", "100"], "error: -p 500 + -n 100 does not fit in -c 512"),
])
def test_bad_input_is_one_error_line(args, message):
    p = run(*args)
    assert p.returncode == 1 and p.stderr.startswith(message) and p.stderr.count("\n") == 1, (p.returncode, p.stderr)


def test_ratio_is_the_median_of_the_rounds_pairs(capsys):
    """Each round's ratio pairs the two sides' times from the same seconds; the summary is their median
    (here the rounds give 2.0, 1.5 and 3.0 for decoding: 2.0), not the ratio of each side's best round (4.0)."""
    bench = load_benchmark()
    args = argparse.Namespace(model=SCRIPT, threads=2, prompt=100, n_predict=10, rounds=3, chunk=5, cache_type="f16",
                              json=True, perplexity=False)
    rounds = [{"ours": {"prefill_s": 1.0, "decode_s": 1.0}, "llama.cpp": {"prefill_s": 3.0, "decode_s": 2.0}},
              {"ours": {"prefill_s": 2.0, "decode_s": 2.0}, "llama.cpp": {"prefill_s": 4.0, "decode_s": 3.0}},
              {"ours": {"prefill_s": 1.0, "decode_s": 0.5}, "llama.cpp": {"prefill_s": 2.0, "decode_s": 1.5}}]
    final = {"ours": {"peak_rss_bytes": 2**27, "kv_cache_bytes": 2**20}, "llama.cpp": {"peak_rss_bytes": 2**28}}
    bench.report(args, ["ours", "llama.cpp"], rounds, final)
    summary = json.loads(capsys.readouterr().out)
    assert summary["ratio"] == {"prefill": 2.0, "decode": 2.0}
    assert [r["decode"] for r in summary["ratio_per_round"]] == [2.0, 1.5, 3.0]
    assert summary["ours"]["decode_tok_s"] == 10.0  # median of 10, 5 and 20 tok/s
