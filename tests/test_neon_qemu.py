"""The aarch64 NEON kernels, built with a cross compiler and run under qemu-aarch64.

No ARM machine and no aarch64 Python here, so tests/native/neon_check.cpp calls the C++ kernels directly:
every version the emulated CPU runs is compared with v0 (the scalar port, itself checked against the numpy
lessons by tests/test_cpp_kernels*.py), the int8 versions bit for bit with the scalar int8 kernels, the 16-bit
decoding steps (v11, v13-v18 NEON) with v0 on x rounded to 16 bits, whose rounding must be x86's to the bit.
Two emulated CPUs: qemu's "max" (has the SDOT dot-product instructions) and a Cortex-A53 (ARMv8.0: none),
so both the dotprod detection (HWCAP) and the fallback without it are exercised.
Skips when the cross compiler or qemu is absent (Debian: apt-get install g++-aarch64-linux-gnu qemu-user).
Correctness only: qemu's timings say nothing about an ARM CPU.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "cpp_core" / "src"
HARNESS = ROOT / "tests" / "native" / "neon_check.cpp"
BINDINGS = SRC / "bindings"  # the pybind11 module: not built here

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
    sources = [p for p in sorted(SRC.rglob("*.cpp")) if BINDINGS not in p.parents] + [HARNESS]
    objects, running = [], []
    for src in sources:  # two compilers at a time: ~15 s for the whole core
        obj = out / (src.parent.name + "_" + src.stem + ".o")
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


I16_STEPS = ["v11_i16_decode_neon", "v13_i16_q5_neon", "v14_i16_q4_k_neon", "v15_i16_q6_k_neon",
             "v16_i16_q5_k_neon", "v17_i16_q3_k_neon", "v18_i16_q2_k_neon"]


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
    for row in ["rmsnorm v1_neon", "softmax v1_neon", "swiglu v1_neon", "apply_rope v1_neon",
                "attention v2_neon", "attention f16 cache v2_neon", "quant_matmul v6_f32_tiled_neon",
                "quant_matmul v3_neon_int8 (vs v2_int8)", "quantize_act_i16_neon (vs the reference, bits)",
                "PreparedActivations (vs quant_matmul)"] + [f"quant_matmul {v} (16-bit x)" for v in I16_STEPS]:
        assert row in report, f"{row} did not run:\n{report}"
    # each 16-bit step ran its own kernel on more cases than the step before: it adds types (x86's steps' types)
    cases = [int(report.split(f"quant_matmul {step} (16-bit x)")[1].split()[0]) for step in I16_STEPS]
    assert 0 < cases[0] and all(a < b for a, b in zip(cases, cases[1:])), cases
    assert ("quant_matmul v4_neon_dotprod" in report) == bool(has_dotprod), report


def test_neon_i16_rounding_is_x86s_bit_for_bit(neon_check, tmp_path):
    """The NEON 16-bit path rounds x as the x86 kernels do, to the last bit of q, d and s: against the numpy
    quantize_i16 that tests/test_cpp_kernels_matmul.py holds every x86 16-bit kernel to. Blocks over 8 decades,
    exact ties (a block whose max is 32767, so x * 32767/max is x itself), zeros and -0, an all-zero block,
    a constant block, tiny and huge blocks. (Below max|x| ~1e-34, 32767/max overflows to inf on every ISA and
    neither rounding is defined; activations never get there.)"""
    matmul_tests = pytest.importorskip("test_cpp_kernels_matmul", reason="needs the numpy rounding of the x86 tests")
    rng = np.random.default_rng(3)
    n = 32 * 40
    x = (rng.standard_normal(n) * np.geomspace(1e-4, 1e4, n)).astype(np.float32)  # [n]
    x[32:44] = [32767, 0.5, -0.5, 1.5, 2.5, -2.5, 0.0, -0.0, 3.5, 1e-30, -32766.5, 100.5]  # ties to even
    x[64:96] = 0  # d = 0, q = 0
    x[96:128] = -0.3  # every q = -32767
    x[128:160] *= 1e-25
    x[160:192] = rng.standard_normal(32) * 1e37
    src, out = tmp_path / "x.f32", tmp_path / "q.bin"
    x.tofile(src)
    run = subprocess.run([QEMU, "-cpu", "max", str(neon_check), "--quantize-i16", str(src), str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "QUANTIZE OK" in run.stdout, run.stdout + run.stderr
    raw = out.read_bytes()
    q = np.frombuffer(raw, np.int16, n)  # [n]
    d, s = np.frombuffer(raw, np.float32, 2 * (n // 32), offset=2 * n).reshape(2, n // 32)  # [nb] each
    d_ref, p_ref, sums = matmul_tests.quantize_i16(x)  # [nb], [nb, 32], [nb]
    s_ref = d_ref * sums.astype(np.float32)  # float32 product, as the kernels make it
    np.testing.assert_array_equal(q, p_ref.reshape(-1))
    np.testing.assert_array_equal(d.view(np.uint32), d_ref.view(np.uint32))
    np.testing.assert_array_equal(s.view(np.uint32), s_ref.view(np.uint32))
    assert (np.abs(q.reshape(-1, 32)).max(-1)[[0, 1, 3]] == 32767).all()  # the largest |x| of a block: 32767


# ---- the whole forward pass on the emulated CPU, against the numpy lesson ----
# name: (tiny_llama arguments (tests/test_cpp_model.py), prompt length). Types with a NEON float kernel for
# prompts (v6) get a prompt of 9; the others only decode (a "prompt" of 1 token), because on aarch64 their prompts
# run with 8-bit x (v6 hands them to v4/v3), which the plain numpy lesson does not round like. Every
# decoded token of a quantized type goes through the 16-bit path (v11, v13-v18 NEON).
MODEL_VARIANTS = {
    "q4_1-gqa": (dict(weight_type="Q4_1", rope_base=100000.0), 9),
    "q4_0-mha-untied": (dict(weight_type="Q4_0", n_head_kv=4, tied=False), 9),
    "q8_0-neox-partial-rope": (dict(weight_type="Q8_0", arch="tinyneox", n_rot=8), 9),
    "f32-partial-rope-oddheads": (dict(weight_type="F32", n_embd=96, n_head=6, n_head_kv=3, n_rot=6), 9),
    "q5_0-gqa": (dict(weight_type="Q5_0"), 1),
    "q5_1-neox": (dict(weight_type="Q5_1", arch="tinyneox"), 1),
    **{f"{t.lower()}-256": (dict(weight_type=t, n_embd=256, n_ff=256), 1) for t in ["Q4_K", "Q6_K", "Q5_K", "Q3_K", "Q2_K"]},
}


def dump_model(gguf, tokens, n_prefill: int, manifest: Path) -> None:
    """The tensors' raw bytes and a text manifest, for neon_check --model (no GGUF reader in C++)."""
    from lessons.l01_gguf import GGMLType
    from lessons.l08_transformer import LlamaConfig

    c = LlamaConfig.from_gguf(gguf)
    lines = [f"hparams {c.n_vocab} {c.n_embd} {c.n_layer} {c.n_head} {c.n_head_kv} {c.head_dim} {c.n_ff} "
             f"{c.n_rot or c.head_dim} {c.rope_base!r} {c.rms_eps!r} {int(c.rope_neox)}",
             f"tokens {n_prefill} {len(tokens)} " + " ".join(map(str, tokens))]
    blob = bytearray()
    for name, shape in c.tensor_shapes().items():
        t = gguf.tensors[name]
        if len(shape) == 1:  # norms: float32 (tiny_llama writes them so)
            assert t.ggml_type == GGMLType.F32
            data, ggml_type, rows, cols = np.asarray(t.data, np.float32).tobytes(), 0, 1, shape[0]
        else:  # raw ggml blocks, as CppLlama hands them to C++
            data, ggml_type, rows, cols = np.ascontiguousarray(t.data).tobytes(), int(t.ggml_type), shape[0], shape[1]
        blob += b"\0" * (-len(blob) % 64)  # aligned, like the mmap's tensors
        lines.append(f"tensor {name} {ggml_type} {rows} {cols} {len(blob)} {len(data)}")
        blob += data
    manifest.write_text("\n".join(lines) + "\n")
    manifest.with_name(manifest.name + ".bin").write_bytes(bytes(blob))


@pytest.mark.parametrize("variant", list(MODEL_VARIANTS))
def test_whole_model_under_qemu_matches_numpy(neon_check, tmp_path, monkeypatch, variant):
    """LlamaModel's forward pass (a prompt of 9 or of 1 token, then one token at a time up to 12) on the NEON fast
    path, built for aarch64 and run under qemu -cpu max, gives the numpy lesson's logits to float rounding for
    the prompt and to the 16-bit path's rounding for each decoded token (the x86 tolerances)."""
    cpp_model_tests = pytest.importorskip("test_cpp_model", reason="needs tests/test_cpp_model.py's tiny models")
    from lessons import l08b_config
    from lessons.l01_gguf import GGMLType
    from lessons.l08_transformer import NumpyLlama

    monkeypatch.setitem(l08b_config.ROPE_NEOX_BY_ARCH, "tinyneox", True)
    args, n_prefill = MODEL_VARIANTS[variant]
    args = {**args, "weight_type": GGMLType[args["weight_type"]]}
    gguf = cpp_model_tests.tiny_llama(tmp_path / "m.gguf", **args)
    tokens = np.random.default_rng(1).integers(0, 80, 12).astype(np.int32)
    manifest, out = tmp_path / "model.txt", tmp_path / "logits.f32"
    dump_model(gguf, tokens, n_prefill, manifest)
    run = subprocess.run([QEMU, "-cpu", "max", str(neon_check), "--model", str(manifest), str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "MODEL OK" in run.stdout, run.stdout + run.stderr
    assert "matmul v18_i16_q2_k_neon, attention v2_neon" in run.stdout
    ours = np.fromfile(out, np.float32).reshape(len(tokens), -1)  # [12, n_vocab]

    ref = NumpyLlama(gguf, n_ctx=32)
    sixteen_bit = args["weight_type"] != GGMLType.F32  # one token of quantized weights: x rounded to 16 bits
    cpp_model_tests.assert_logits_close(ours[:n_prefill], ref.forward(tokens[:n_prefill], 0), False, "prefill",
                                        sixteen_bit=sixteen_bit and n_prefill == 1)
    for pos in range(n_prefill, 12):
        cpp_model_tests.assert_logits_close(ours[pos:pos + 1], ref.forward(tokens[pos:pos + 1], pos), False, f"decode {pos}",
                                            sixteen_bit=sixteen_bit)
