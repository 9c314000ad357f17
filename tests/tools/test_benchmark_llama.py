"""tools/benchmark.py (ours against native llama-bench, one row per file) and tools/build_llama_tools.sh.

Quick: everything runs on tiny random models. llama.cpp's side is played by a stand-in `llama-bench` (a small
script that answers in llama-bench's JSON format with rates it is told, and logs the arguments it got), so the
driver's plumbing and arithmetic are checked without a 15-minute build; one slow test uses the real llama-bench
when tools/build_llama_tools.sh has built it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import stat
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lessons.l01_gguf import GGMLType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "benchmark.py"
BUILD_SCRIPT = REPO / "tools" / "build_llama_tools.sh"
pytest.importorskip("cpp_core.model", reason="the C++ core is not built (pip install -e .)")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=env)


FAKE_LLAMA_BENCH = """\
#!{python}
# A stand-in for llama-bench: logs its argv, answers in llama-bench's -o json format with fixed rates.
import json, sys
argv = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps(argv) + "\\n")
val = lambda flag: int(argv[argv.index(flag) + 1]) if flag in argv else 0
p, n, d = val("-p"), val("-n"), val("-d")
tests = []
if p:
    tests.append(dict(n_prompt=p, n_gen=0, n_depth=d, avg_ts={pp}))
if n:
    tests.append(dict(n_prompt=0, n_gen=n, n_depth=d, avg_ts={tg}))
print(json.dumps(tests))
"""


@pytest.fixture
def fake_llama_bin(tmp_path):
    """A folder with a stand-in llama-bench (prefill 1000 tok/s, decode 50 tok/s); returns (folder, argv log)."""
    folder, log = tmp_path / "bin", tmp_path / "llama-bench.log"
    folder.mkdir()
    exe = folder / "llama-bench"
    exe.write_text(FAKE_LLAMA_BENCH.format(python=sys.executable, log=str(log), pp=1000.0, tg=50.0))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder, log


def test_our_columns_only_on_two_tiny_models(tiny_llama, tmp_path):
    """Without llama.cpp: one row per file (two files via a folder), our figures, the KV cache of the main worker
    (prompt + decoded tokens), the RSS budget, and a context beyond the model's training context is skipped."""
    folder = tmp_path / "models"
    folder.mkdir()
    tiny_llama(folder, weight_type=GGMLType.Q4_1, name="a.gguf")
    tiny_llama(folder, weight_type=GGMLType.Q8_0, name="b.gguf", seed=1)
    p = run("-m", folder, "--no-llama", "-p", 8, "-n", 5, "-r", 2, "--contexts", "24,128", "--context-gen", 4, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["llama_bin"] is None and [Path(r["file"]).name for r in out["rows"]] == ["a.gguf", "b.gguf"]
    for row in out["rows"]:
        ours = row["ours"]
        assert ours["prefill_tok_s"] > 0 and ours["decode_tok_s"] > 0 and len(row["rounds"]) == 2
        assert ours["kv_cache_bytes"] == 2 * 2 * 13 * (2 * 8) * 2  # K and V, 2 layers, 8 + 5 positions, 2 KV heads of 8, f16
        assert ours["rss_budget_bytes"] == row["bytes"] + ours["kv_cache_bytes"] + 60 * 2**20
        assert 0 < ours["peak_rss_bytes"] < 2**30
        assert "llama.cpp" not in row and "ratio" not in row
        assert list(row["contexts"]) == ["24"] and row["contexts_skipped"] == [128]  # the tiny model's n_ctx_train: 64
        assert row["contexts"]["24"]["ours"] > 0
        assert row["contexts_rss"]["kv_cache_bytes"] == 2 * 2 * 24 * (2 * 8) * 2


def test_table_says_when_llama_cpp_is_missing(tiny_llama):
    path = tiny_llama(weight_type=GGMLType.Q4_0)
    p = run("-m", path, "-p", 8, "-n", 4, "-r", 1,
            env=dict(os.environ, LLAMA_BIN="", XDG_CACHE_HOME="/nonexistent", PATH="/usr/bin:/bin"))
    assert p.returncode == 0, p.stderr
    assert "llama-bench not found (tools/build_llama_tools.sh builds it): our columns only" in p.stdout
    rows = [line for line in p.stdout.splitlines() if line.startswith(f"| {path.name} ")]
    assert len(rows) == 1, p.stdout
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]  # file, MiB, prefill ours, llama.cpp, ratio, decode ...
    assert float(cells[2]) > 0 and float(cells[5]) > 0 and [cells[i] for i in (3, 4, 6, 7)] == ["-"] * 4, cells


def test_llama_bench_rounds_and_ratios(tiny_llama, fake_llama_bin):
    """With llama-bench (the stand-in): each round runs it once with our threads, prompt, tokens and cache type; the
    ratio is the median of the rounds' ours / llama.cpp pairs; the contexts run it at depth C - N."""
    folder, log = fake_llama_bin
    path = tiny_llama(weight_type=GGMLType.Q4_1)
    p = run("-m", path, "--llama-bin", folder, "-t", 1, "-p", 8, "-n", 6, "-r", 3, "--contexts", 40,
            "--context-gen", 4, "--json")
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)["rows"][0]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 3 + 3  # a process per round: 3 main rounds, 3 at the context
    for argv in calls[:3]:
        assert argv[argv.index("-m") + 1] == str(path)
        assert [argv[argv.index(f) + 1] for f in ("-t", "-p", "-n", "-r", "-ctk", "-ctv", "-o")] == \
            ["1", "8", "6", "1", "f16", "f16", "json"] and "-d" not in argv
    for argv in calls[3:]:
        assert [argv[argv.index(f) + 1] for f in ("-p", "-n", "-d")] == ["0", "4", "36"]
    assert row["llama.cpp"]["prefill_tok_s"] == 1000.0 and row["llama.cpp"]["decode_tok_s"] == 50.0
    rounds = row["rounds"]
    for k in ("prefill", "decode"):
        assert row["ratio"][k] == pytest.approx(statistics.median(r["ours"][f"{k}_tok_s"] / r["llama.cpp"][f"{k}_tok_s"]
                                                                  for r in rounds))
    ctx = row["contexts"]["40"]
    assert ctx["llama.cpp"] == 50.0 and ctx["ratio"] == pytest.approx(statistics.median(r["ours"] / 50.0 for r in ctx["rounds"]))


def test_ratio_is_the_median_of_the_rounds_pairs():
    """Each round's ratio pairs the two sides' rates from the same seconds; the summary is their median (here
    decode ratios 2.0, 1.5, 3.0 -> 2.0), not the ratio of the sides' medians (20 / 5 = 4.0)."""
    bench = load_benchmark()
    rounds = [{"ours": {"prefill_tok_s": 300.0, "decode_tok_s": 10.0}, "llama.cpp": {"prefill_tok_s": 100.0, "decode_tok_s": 5.0, "peak_rss_bytes": 1}},
              {"ours": {"prefill_tok_s": 200.0, "decode_tok_s": 6.0}, "llama.cpp": {"prefill_tok_s": 100.0, "decode_tok_s": 4.0, "peak_rss_bytes": 3}},
              {"ours": {"prefill_tok_s": 400.0, "decode_tok_s": 30.0}, "llama.cpp": {"prefill_tok_s": 200.0, "decode_tok_s": 10.0, "peak_rss_bytes": 2}}]
    row = bench.summarize({"file": "x", "name": "x", "bytes": 10**9, "rounds": rounds, "read_gb_s": 20.0, "contexts": {},
                           "ours_final": {"kv_cache_bytes": 2**20, "peak_rss_bytes": 2**27}})
    assert row["ratio"] == {"prefill": 2.0, "decode": 2.0}
    assert row["ours"]["decode_tok_s"] == 10.0 and row["llama.cpp"]["decode_tok_s"] == 5.0
    assert row["ours"]["of_read_bw"] == pytest.approx(10**9 * 10.0 / 20e9)  # file bytes x tok/s / bandwidth
    assert row["llama.cpp"]["peak_rss_bytes"] == 3


@pytest.mark.parametrize("args, message", [
    (["-m", "/nonexistent.gguf", "--no-llama"], "error: /nonexistent.gguf: no such file or folder"),
    (["--rounds", "0"], "error: --rounds"),
    (["--contexts", "256,x"], "error: argument --contexts"),
    (["--contexts", "16", "--context-gen", "32"], "error: every context must be larger than --context-gen 32"),
    (["-m", str(REPO / "README.md"), "--no-llama"], "error: our worker failed: "),
])
def test_bad_input_is_one_error_line(args, message):
    p = run(*args)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    assert p.returncode in (1, 2) and message in last, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr


def test_a_worker_that_dies_is_one_error_line(tiny_llama, tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    exe = folder / "llama-bench"
    exe.write_text("#!/bin/sh\necho 'error: failed to load model' >&2\nexit 3\n")
    exe.chmod(0o755)
    p = run("-m", tiny_llama(), "--llama-bin", folder, "-p", 8, "-n", 2, "-r", 1)
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].startswith("error: llama-bench failed on "), p.stderr
    assert "(exit 3): error: failed to load model" in p.stderr


# ---- tools/build_llama_tools.sh ----
def test_build_script_is_idempotent(tmp_path):
    """With every tool already built, the script builds nothing (no download, no cmake) and prints the bin folder."""
    bin_dir = tmp_path / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp" / "build" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("llama-bench", "llama-completion", "llama-quantize", "llama-perplexity", "llama-imatrix", "llama-cli"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    p = subprocess.run([shutil.which("bash"), str(BUILD_SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PATH="/nonexistent"))  # cmake, python3, tar: none reachable, none needed
    assert p.returncode == 0 and p.stdout == f"{bin_dir}\n" and p.stderr == "", p
    assert sorted(x.name for x in tmp_path.iterdir()) == ["llama_cpp_python-0.3.36"]


def test_build_script_parses_and_names_its_tools():
    assert subprocess.run(["bash", "-n", str(BUILD_SCRIPT)]).returncode == 0
    text = BUILD_SCRIPT.read_text()
    assert "-DGGML_AMX_INT8=OFF" in text and "LLAMA_CURL=OFF" in text


# ---- the real llama-bench, when tools/build_llama_tools.sh has built it ----
@pytest.mark.slow
def test_real_llama_bench_on_a_tiny_model(tiny_llama):
    bench = load_benchmark()
    bin_dir = bench.find_llama_bin(None)
    if bin_dir is None or not (bin_dir / "llama-bench").is_file():
        pytest.skip("llama-bench not built (tools/build_llama_tools.sh)")
    path = tiny_llama(weight_type=GGMLType.Q4_0, n_ctx_train=64)
    p = run("-m", path, "--llama-bin", bin_dir, "-p", 16, "-n", 8, "-r", 1, "--contexts", 48, "--context-gen", 8, "--json")
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)["rows"][0]
    assert row["llama.cpp"]["prefill_tok_s"] > 0 and row["llama.cpp"]["decode_tok_s"] > 0 and row["ratio"]["decode"] > 0
    assert row["contexts"]["48"]["llama.cpp"] > 0


def test_report_marks_the_bar_and_slower_small_files():
    """The bar column (prefill >= 2x, decode >= 2x or >= 75% of read bandwidth) and the check that a smaller file
    never decodes slower, on made-up rows (prefill 2.5x in all)."""
    bench = load_benchmark()

    def row(name, size, ours_tg, llama_tg, bw=20.0):
        r = {"ours": {"prefill_tok_s": 500.0, "decode_tok_s": ours_tg}, "llama.cpp": {"prefill_tok_s": 200.0,
             "decode_tok_s": llama_tg, "peak_rss_bytes": 1}}
        return bench.summarize({"file": name, "name": name, "bytes": size, "rounds": [r], "read_gb_s": bw, "contexts": {},
                                "contexts_skipped": [], "ours_final": {"kv_cache_bytes": 0, "peak_rss_bytes": 1}})
    small = row("small.gguf", 10**8, 160.0, 160.0 / 1.8)  # 1.8x; 160 tok/s x 100 MB / 20 GB/s = 80%: met
    big = row("big.gguf", 2 * 10**8, 190.0, 100.0)  # 1.9x; 190 x 200 MB / 20 GB/s = 190%: met (bandwidth)
    slow_big = row("big.gguf", 2 * 10**8, 19.0, 10.0)  # 1.9x and 19% of the bandwidth: not met
    assert small["ours"]["of_read_bw"] == pytest.approx(0.8) and small["meets_bar"] and big["meets_bar"]
    assert slow_big["ratio"]["decode"] == pytest.approx(1.9) and not slow_big["meets_bar"]
    args = argparse.Namespace(threads=2, prompt=256, n_predict=128, rounds=1, cache_type="f16", context_gen=32)
    text = bench.report([small, slow_big], args, True)
    assert "| met |" in text and "| not met |" in text
    assert "decode never slower on a file at least 5% smaller: yes" in text
    text = bench.report([small, big], args, True)
    assert "decode never slower on a file at least 5% smaller: no, 1 pairs, e.g. small.gguf (160.0 tok/s) < big.gguf (190.0)" in text
    near = row("near.gguf", int(1.04 * 10**8), 170.0, 100.0)  # 4% larger and faster: within the tie, not a failure
    assert "at least 5% smaller: yes" in bench.report([small, near], args, True)


FAKE_COMPLETION = """\
#!{python}
# A stand-in for llama-completion: logs argv and the prompt file's text, prints llama.cpp's timing lines.
import json, sys
argv = sys.argv[1:]
with open({log!r}, "a") as f:
    f.write(json.dumps([argv, open(argv[argv.index("-f") + 1]).read()]) + "\\n")
print("llama_perf_sampler_print:    sampling time =       1.00 ms /   377 runs", file=sys.stderr)
print("llama_perf_context_print: prompt eval time =     500.00 ms /   250 tokens (    2.00 ms per token,   500.00 tokens per second)", file=sys.stderr)
print("llama_perf_context_print:        eval time =    1270.00 ms /   127 runs   (   10.00 ms per token,   100.00 tokens per second)", file=sys.stderr)
"""


def test_llama_completion_timings(tiny_llama, fake_llama_bin):
    """--completion: each round also runs llama-completion on a prompt text of about -p tokens, greedy, all -n tokens,
    and reads its timing lines (prefill 250 tokens in 500 ms: 500 tok/s; decode 127 runs in 1270 ms: 100 tok/s)."""
    folder, _ = fake_llama_bin
    log = folder.parent / "completion.log"
    exe = folder / "llama-completion"
    exe.write_text(FAKE_COMPLETION.format(python=sys.executable, log=str(log)))
    exe.chmod(0o755)
    path = tiny_llama(weight_type=GGMLType.Q8_0)
    p = run("-m", path, "--llama-bin", folder, "--completion", "-p", 16, "-n", 4, "-r", 2, "--json")
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)["rows"][0]
    lc = row["llama-completion"]
    assert (lc["prefill_tok_s"], lc["decode_tok_s"], lc["prompt_tokens"]) == (500.0, 100.0, 250)
    assert lc["decode_ratio"] == pytest.approx(statistics.median(r["ours"]["decode_tok_s"] / 100.0 for r in row["rounds"]))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2
    for argv, text in calls:
        assert [argv[argv.index(f) + 1] for f in ("-t", "-n", "--temp")] == ["2", "4", "0"] and "--ignore-eos" in argv
        assert len(text) > 0


def test_completion_without_the_binary_is_one_error_line(fake_llama_bin, tiny_llama):
    folder, _ = fake_llama_bin
    p = run("-m", tiny_llama(), "--llama-bin", folder, "--completion")
    assert p.returncode == 1 and p.stderr == f"error: --completion: no llama-completion in {folder}\n", p.stderr
