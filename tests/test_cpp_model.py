"""The C++ model (cpp_core/model.py) against the numpy lesson model, on tiny random GGUF models.

Every code path of the forward pass in a fraction of a second each: weight types (F32, Q8_0, Q4_1),
plain multi-head, grouped-query and multi-query attention, normal and NEOX RoPE, partial RoPE, several
RoPE bases, untied output, prompts longer than one C++ micro-batch, decode after prefill, reset, thread
counts, last_only, and the one-line errors for bad input. The oracle is lessons.l08_transformer.NumpyLlama.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_llama
from lessons.l01_gguf import GGMLType, GGUFFile, write_gguf

gguf_quants = pytest.importorskip("gguf.quants", reason="gguf-py (llama.cpp's reader) rounds the oracle's 8-bit activations")
cpp_model = pytest.importorskip("cpp_core.model", reason="the C++ core is not built (pip install -e .)")
from cpp_core.kernels import active_versions  # noqa: E402
from lessons import l08b_config  # noqa: E402
from lessons.l08_transformer import NumpyLlama  # noqa: E402

CppLlama = cpp_model.CppLlama


# ---- tiny random models: conftest's builder, with this file's settings ----
# No tokenizer (the model reads only vocab_size); W_q and W_k scaled x3 so that attention is sharp and a wrong
# score, head, position or cache entry moves the logits by their spread; unit-size embeddings; and a
# training context of 320 for the 300-token prompt.
TINY = dict(vocab=None, n_vocab=80, n_embd=64, n_ff=96, n_ctx_train=320, qk_scale=3.0)


def tiny_llama(path, **overrides) -> GGUFFile:
    """A random-weight GGUF written to `path` by conftest.build_tiny_llama, opened."""
    kw = {**TINY, **overrides}
    kw.setdefault("embd_scale", float(np.sqrt(kw["n_embd"])))
    path = Path(path)
    return GGUFFile(build_tiny_llama(path.parent, name=path.name, **kw))


# ---- the oracle: the numpy lesson, with llama.cpp's 8-bit activations where the weights are quantized ----
def round_activations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x [n, k] rounded as llama.cpp's Q8_0/Q8_1 activation blocks of 32: scale d = amax/127 (stored fp16),
    q = round(x/d). Returns the rounded values d16*q [n, k] and Q8_1's per-block sum error
    fp16(d*sum(q)) - d16*sum(q) [n, k/32] (Q8_1 stores the block sum in fp16; Q4_1 weights use it)."""
    blocks = x.astype(np.float32).reshape(len(x), -1, 32)  # [n, k/32, 32]
    raw = gguf_quants.quantize(x.astype(np.float32), 8).reshape(len(x), -1, 34)  # Q8_0 blocks: fp16 d + 32 int8
    d16 = raw[:, :, :2].copy().view(np.float16)[..., 0].astype(np.float32)  # [n, k/32]
    q = raw[:, :, 2:].view(np.int8).astype(np.float32)  # [n, k/32, 32]
    d32 = np.abs(blocks).max(-1) / np.float32(127)  # the unrounded scale, from which Q8_1's sum is made
    sum_q = q.sum(-1)
    sum_error = (d32 * sum_q).astype(np.float16).astype(np.float32) - d16 * sum_q
    return (d16[..., None] * q).reshape(x.shape), sum_error


class _RoundsActivations(np.ndarray):
    """A weight matrix whose products `x @ W.T` first round x to 8 bits (what llama.cpp and the C++
    kernels do before a product with quantized weights). For Q4_1 weights, `mins` [rows, k/32] (the
    blocks' offsets) adds the effect of Q8_1's fp16 block sums. Every other operation sees a plain array."""

    mins = None

    def __array_finalize__(self, obj):  # views such as W.T keep the mins
        self.mins = getattr(obj, "mins", None)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        mins = next((x.mins for x in inputs if isinstance(x, _RoundsActivations)), None)
        inputs = [np.asarray(x) for x in inputs]
        if ufunc is np.matmul and method == "__call__":
            x = inputs[0]
            rounded, sum_error = round_activations(x.reshape(-1, x.shape[-1]))
            out = np.matmul(rounded, inputs[1])
            if mins is not None:
                out = out + sum_error @ mins.T  # [n, k/32] @ [k/32, rows]
            return out.reshape(x.shape[:-1] + out.shape[-1:]).astype(np.float32)
        return getattr(ufunc, method)(*inputs, **kwargs)


def _rounding_view(w: np.ndarray, gguf, names) -> np.ndarray:
    view = w.view(_RoundsActivations)
    tensors = [gguf.tensors[n] for n in names]
    block_bytes = {GGMLType.Q4_1: 20, GGMLType.Q5_1: 24}  # block = fp16 d, fp16 m, (Q5_1: qh,) the quants
    if all(t.ggml_type in block_bytes for t in tensors):
        view.mins = np.concatenate([np.asarray(t.data).reshape(t.shape[0], -1, block_bytes[t.ggml_type])[:, :, 2:4].copy()
                                    .view(np.float16)[..., 0] for t in tensors]).astype(np.float32)  # [rows, k/32]
    return view


def numpy_oracle(gguf, n_ctx, weight_type):
    model = NumpyLlama(gguf, n_ctx=n_ctx)
    if weight_type != GGMLType.F32:
        w = model.weights
        for i, layer in enumerate(w.layers):
            for field, names in (("wqkv", ["attn_q", "attn_k", "attn_v"]), ("wo", ["attn_output"]),
                                 ("w_gate_up", ["ffn_gate", "ffn_up"]), ("w_down", ["ffn_down"])):
                setattr(layer, field, _rounding_view(getattr(layer, field), gguf, [f"blk.{i}.{n}.weight" for n in names]))
        # the lookup table token_embd stays plain
        w.output = _rounding_view(w.output, gguf, ["output.weight" if "output.weight" in gguf.tensors else "token_embd.weight"])
    return model


def assert_logits_close(ours, ref, quantized: bool, what="", sixteen_bit: bool = False):
    """Both sides do the same arithmetic up to float rounding. F32 weights: ~1e-6 of the logits' spread.
    sixteen_bit: quantized weights, whose products round the activations to 16 bits (quant_matmul v11-v18
    for one decoded token, v19 for a prompt): each moves by up to max|x|/65534 of its block, ~1e-4 of the spread here.
    Quantized weights: mostly ~1e-4 too, but an activation that lands within float noise of an 8-bit
    rounding boundary can round the other way on one side; one such flip moves that activation by
    amax/127, and the random models' sharp attention amplifies it to up to ~1% of the spread (RMS) over
    a few seeds. A wrong head, position, cache entry or scale gives errors of the order of the spread."""
    assert ours.shape == ref.shape, what
    spread = float(ref.std())
    diff = ours.astype(np.float64) - ref
    rms, worst = float(np.sqrt(np.mean(diff**2))) / spread, float(np.abs(diff).max()) / spread
    rms_tol, worst_tol = (2e-2, 6e-2) if quantized else (3e-4, 1.5e-3) if sixteen_bit else (1e-5, 1e-4)
    assert rms <= rms_tol and worst <= worst_tol, f"{what}: |diff| / spread: rms {rms:.3g}, max {worst:.3g}"


VARIANTS = {
    # name: tiny_llama arguments
    "f32-gqa": dict(weight_type=GGMLType.F32),
    "q8_0-gqa": dict(weight_type=GGMLType.Q8_0),
    "q4_1-gqa": dict(weight_type=GGMLType.Q4_1, rope_base=100000.0),
    "q4_1-mha-untied": dict(weight_type=GGMLType.Q4_1, n_head_kv=4, tied=False),
    "q5_0-gqa": dict(weight_type=GGMLType.Q5_0),  # decoded by v13's 16-bit kernels, through the model's team
    "q5_1-gqa": dict(weight_type=GGMLType.Q5_1, rope_base=100000.0),
    "f32-mqa-base500k": dict(weight_type=GGMLType.F32, n_head_kv=1, rope_base=500000.0),
    "f32-neox": dict(weight_type=GGMLType.F32, arch="tinyneox"),
    "q8_0-neox-partial-rope": dict(weight_type=GGMLType.Q8_0, arch="tinyneox", n_rot=8),
    "f32-partial-rope-oddheads": dict(weight_type=GGMLType.F32, n_embd=96, n_head=6, n_head_kv=3, n_rot=6),
}


@pytest.fixture
def neox_arch(monkeypatch):
    """Register a test architecture that is llama with NEOX-style RoPE, for both backends."""
    monkeypatch.setitem(l08b_config.ROPE_NEOX_BY_ARCH, "tinyneox", True)


@pytest.mark.parametrize("int8", [False, True], ids=["f32-activations", "int8-activations"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prefill_then_decode_matches_numpy(tmp_path, neox_arch, variant, int8):
    """Default: the plain numpy lesson is the oracle. With quantized weights the kernels' fast path rounds the
    activations to 16 bits, one decoded token (v11-v18) and, with AVX-512 VNNI, a prompt too (v19): a 20x
    looser but still tight tolerance than float rounding (F32 weights: float32 throughout). int8_activations:
    the oracle is the lesson with llama.cpp's 8-bit rounding emulated (numpy_oracle)."""
    gguf = tiny_llama(tmp_path / "m.gguf", **VARIANTS[variant])
    wt = VARIANTS[variant]["weight_type"]
    quantized = int8 and wt != GGMLType.F32
    ref = numpy_oracle(gguf, 32, wt) if quantized else NumpyLlama(gguf, n_ctx=32)
    ours = CppLlama(gguf, n_ctx=32, n_threads=2, int8_activations=int8)
    assert ours.config == ref.config
    tokens = np.random.default_rng(0).integers(0, ours.config.n_vocab, 19).astype(np.int32)
    # 16 prompt tokens: enough for quant_matmul's prompt path (v10's GEMM from 12 tokens on)
    assert_logits_close(ours.forward(tokens[:16], 0), ref.forward(tokens[:16], 0), quantized, "prefill",
                        sixteen_bit=wt != GGMLType.F32)
    for pos in range(16, 19):  # decode one token at a time on top of the cache
        assert_logits_close(ours.forward(tokens[pos:pos + 1], pos), ref.forward(tokens[pos:pos + 1], pos), quantized, f"decode {pos}",
                            sixteen_bit=wt != GGMLType.F32)


@pytest.mark.parametrize("weight_type", [GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.Q5_K, GGMLType.Q3_K, GGMLType.Q2_K])
def test_kquant_model_decodes_like_numpy(tmp_path, weight_type):
    """k-quant weights (rows of 256: n_embd = n_ff = 256): the prompt through v19's 16-bit GEMM (float32 with v10
    where AVX-512 VNNI is missing), each decoded token through the model's team with 16-bit activations
    (quant_matmul v14-v18: Q4_K, Q6_K, Q5_K, Q3_K, Q2_K), against the numpy lesson."""
    gguf = tiny_llama(tmp_path / "m.gguf", weight_type=weight_type, n_embd=256, n_ff=256)
    ref, ours = NumpyLlama(gguf, n_ctx=32), CppLlama(gguf, n_ctx=32, n_threads=2)
    tokens = np.random.default_rng(1).integers(0, ours.config.n_vocab, 15).astype(np.int32)
    assert_logits_close(ours.forward(tokens[:12], 0), ref.forward(tokens[:12], 0), False, "prefill", sixteen_bit=True)
    for pos in range(12, 15):
        assert_logits_close(ours.forward(tokens[pos:pos + 1], pos), ref.forward(tokens[pos:pos + 1], pos), False, f"decode {pos}",
                            sixteen_bit=True)


@pytest.mark.parametrize("variant", ["f32-gqa", "q4_1-gqa", "f32-mqa-base500k", "q8_0-neox-partial-rope"])
def test_f16_cache_matches_the_lessons_f16_cache(tmp_path, neox_arch, variant):
    """kv_type="f16" (run.py's default, as llama.cpp's): both sides round each new key and value to float16.
    A value within float32 noise of a float16 rounding boundary can round the other way on one side: one
    float16 step (2^-11 relative) on that value, which moves the logits by up to ~5e-4 of their spread here.
    So the tolerance is 10x looser than float32's, and still tighter than what the rounding itself does:
    the lesson's own float16 and float32 caches differ at least twice as much."""
    gguf = tiny_llama(tmp_path / "m.gguf", **VARIANTS[variant])
    ours, ref = CppLlama(gguf, n_ctx=32, n_threads=2, kv_type="f16"), NumpyLlama(gguf, n_ctx=32, kv_type="f16")
    if ours._model.matmul_version == "" and active_versions()["quant_matmul"] == "v19_i16_gemm_avx512":
        # the cache alone: the prompt's products in float32 as before v19 (v18: prompts on v10, one token in 16 bits)
        ours._model.matmul_version = "v18_i16_q2_k_avx512"
    ref32 = NumpyLlama(gguf, n_ctx=32)  # kv_type="f32"
    assert ours.kv_type == "f16" and ours.kv_cache_bytes == ref.cache.k.nbytes + ref.cache.v.nbytes
    tokens = np.random.default_rng(1).integers(0, ours.config.n_vocab, 19).astype(np.int32)
    runs = [[m.forward(tokens[:16], 0)] + [m.forward(tokens[p:p + 1], p) for p in range(16, 19)] for m in (ours, ref, ref32)]
    a, b, c = (np.concatenate(r).astype(np.float64) for r in runs)  # [19, n_vocab] each
    spread = b.std()
    rms = lambda d: float(np.sqrt(np.mean(d**2))) / spread  # noqa: E731
    assert rms(a - b) <= 1.5e-4 and np.abs(a - b).max() / spread <= 1.5e-3, f"rms {rms(a - b):.3g}"
    assert rms(b - c) >= 2 * rms(a - b), "the float16 rounding should move the logits more than the two sides differ"


def test_long_prompt_spans_micro_batches(tmp_path):
    """A prompt longer than the C++ micro-batch (256) gives the numpy model's logits on every row."""
    gguf = tiny_llama(tmp_path / "m.gguf", n_embd=32, n_head=2, n_head_kv=1, n_ff=32, n_layer=1)
    n = 300
    tokens = np.random.default_rng(2).integers(0, 80, n).astype(np.int32)
    ours = CppLlama(gguf, n_ctx=n, n_threads=2).forward(tokens, 0)
    assert_logits_close(ours, NumpyLlama(gguf, n_ctx=n).forward(tokens, 0), False, "300-token prompt")


def test_last_only_reset_and_threads_agree(tmp_path):
    gguf = tiny_llama(tmp_path / "m.gguf", weight_type=GGMLType.Q4_1)
    tokens = np.random.default_rng(3).integers(0, 80, 10).astype(np.int32)
    one = CppLlama(gguf, n_ctx=16, n_threads=1)
    full = one.forward(tokens, 0)  # [10, n_vocab]
    one.reset()
    last = one.forward(tokens, 0, last_only=True)  # the same prompt after reset
    assert last.shape == (1, 80)
    # one row of output: the 16-bit decoding product (v11) instead of the prompt's float32 one
    assert_logits_close(last, full[-1:], False, "last_only", sixteen_bit=True)
    three = CppLlama(gguf, n_ctx=16, n_threads=3)  # rows split differently over threads: same numbers
    np.testing.assert_allclose(three.forward(tokens, 0), full, rtol=1e-5, atol=1e-5)
    # decoding token by token sees the same cache as the prompt did
    three.reset()
    step = np.concatenate([three.forward(tokens[i:i + 1], i) for i in range(10)])
    assert_logits_close(step, full, True, "token by token vs prompt")


def test_weights_are_read_in_place(tmp_path):
    """No copy, no dequantized duplicate: every matrix C++ reads is a view of the file's mmap, and the
    memory the model adds is its KV cache."""
    gguf = tiny_llama(tmp_path / "m.gguf", weight_type=GGMLType.Q4_1)
    m = CppLlama(gguf, n_ctx=16, n_threads=1)
    c = m.config
    assert m.kv_cache_bytes == 2 * 4 * c.n_layer * 16 * c.n_head_kv * c.head_dim
    held = m._model.arrays  # the arrays whose data pointers the C++ model reads
    for name, t in gguf.tensors.items():
        if len(t.shape) == 2:
            assert any(a.ctypes.data == t.data.ctypes.data and np.shares_memory(a, t.data) for a in held), name


@pytest.mark.parametrize("bad, message", [
    (dict(tokens=[], pos=0), "non-empty"),
    (dict(tokens=[1, 2], pos=-1), "pos"),
    (dict(tokens=[80], pos=0), "out of range"),
    (dict(tokens=[-1], pos=0), "out of range"),
    (dict(tokens=[1] * 9, pos=8), "context full"),
    (dict(tokens=[[1, 2]], pos=0), "1-D"),
    (dict(tokens=[1.5], pos=0), "integer"),
])
def test_bad_forward_input_is_a_one_line_error(tmp_path, bad, message):
    m = CppLlama(tiny_llama(tmp_path / "m.gguf"), n_ctx=16, n_threads=1)
    with pytest.raises(ValueError, match=message):
        m.forward(np.asarray(bad["tokens"]), bad["pos"])
    # the model is still usable afterwards
    assert m.forward(np.array([1, 2], np.int32), 0).shape == (2, 80)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_ctx=0, n_threads=1), "n_ctx"),
    (dict(n_ctx=10**6, n_threads=1), "n_ctx"),
    (dict(n_ctx=8, n_threads=0), "n_threads"),
])
def test_bad_construction_is_a_one_line_error(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CppLlama(tiny_llama(tmp_path / "m.gguf"), **kwargs)


def test_weight_type_the_kernels_cannot_multiply(tmp_path):
    """A file whose matrices are in a type quant_matmul does not handle fails at load with one line."""
    gguf = tiny_llama(tmp_path / "m.gguf")
    tensors = []
    for name, t in gguf.tensors.items():
        if name == "blk.1.ffn_up.weight":  # Q8_1 is an activation format in ggml, never a weight type here
            tensors.append((name, GGMLType.Q8_1, t.shape, np.zeros((t.shape[0], t.shape[1] // 32 * 36), np.uint8)))
        else:
            tensors.append((name, t.ggml_type, t.shape, np.array(t.data)))
    write_gguf(tmp_path / "bad.gguf", gguf.metadata, tensors, metadata_types=gguf.metadata_types)
    with pytest.raises(ValueError, match="ffn_up|type"):
        CppLlama(GGUFFile(tmp_path / "bad.gguf"), n_ctx=8, n_threads=1)


@pytest.mark.parametrize("kv_type", ["f32", "f16"])
@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("weight_type", [GGMLType.Q4_1, GGMLType.F32])
def test_fused_decode_gives_the_plain_path_numbers(tmp_path, weight_type, int8, kv_type):
    """Decoding runs the token as one team of threads, each doing its share of every step between
    barriers: same rows, same activations, so the same logits as the one-parallel-loop-per-product path,
    bit for bit, with any thread count."""
    gguf = tiny_llama(tmp_path / "m.gguf", weight_type=weight_type, n_ff=160)  # n_ff not a multiple of the row blocks
    tokens = np.random.default_rng(4).integers(0, 80, 6).astype(np.int32)
    runs = []
    for fused, threads in [(False, 1), (True, 1), (True, 3)]:
        m = CppLlama(gguf, n_ctx=8, n_threads=threads, int8_activations=int8, kv_type=kv_type)
        m._model.fuse_decode = fused
        runs.append(np.concatenate([m.forward(tokens[i:i + 1], i) for i in range(6)]))
    np.testing.assert_array_equal(runs[1], runs[0])
    np.testing.assert_array_equal(runs[2], runs[0])


def test_unknown_matmul_version_is_a_value_error(tmp_path):
    m = CppLlama(tiny_llama(tmp_path / "m.gguf"), n_ctx=8, n_threads=1)
    with pytest.raises(ValueError, match="not available"):
        m._model.matmul_version = "v9_quantum"
    assert m._model.matmul_version == ""  # unchanged, still usable
    assert m.forward(np.array([1], np.int32), 0).shape == (1, 80)
