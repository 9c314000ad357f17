"""The lessons' exercises, each checked against the lesson or an outside oracle (gguf-py, llama.cpp's counts).

By default the reference solutions in exercises/solutions/ are checked. A reader checks their own:

    EXERCISE_DIR=my_answers pytest tests/test_exercises.py          # my_answers/l04_rmsnorm.py, ...
    EXERCISE_DIR=my_answers pytest tests/test_exercises.py -k l04   # one lesson

A file the folder does not have yet is skipped (only with EXERCISE_DIR set: the reference folder has them all).
Each page under docs/ states its exercises; the file and function names are the ones below.
"""
from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from lessons.l01_gguf import GGMLType, GGUFFile

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "exercises" / "solutions"
EXERCISE_DIR = Path(os.environ.get("EXERCISE_DIR") or SOLUTIONS)


def exercise(name: str):
    """The reader's (or the reference) module exercises/.../<name>.py, loaded from its path."""
    path = EXERCISE_DIR / f"{name}.py"
    if not path.is_file():
        if EXERCISE_DIR.resolve() == SOLUTIONS.resolve():
            pytest.fail(f"the reference solution {path} is missing")
        pytest.skip(f"{path} not written yet")
    spec = importlib.util.spec_from_file_location(f"exercise_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- lesson 1: the GGUF file ----

def test_l01_tensor_nbytes(default_model):
    ex = exercise("l01_gguf")
    for t in default_model.tensors.values():  # llama.cpp's own file: its sizes are the oracle
        assert ex.tensor_nbytes(t.ggml_type.name, t.shape) == t.nbytes, t.name
    gguf = pytest.importorskip("gguf")
    for name in ("Q4_0", "Q5_1", "Q8_0", "Q2_K", "Q6_K", "BF16"):
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]]
        assert ex.tensor_nbytes(name, (3, 2, 4 * block)) == 6 * 4 * size
    with pytest.raises(ValueError):
        ex.tensor_nbytes("Q4_K", (1536, 576))  # 576 is not a whole number of 256-blocks


def test_l01_read_header(default_model_path, default_model):
    ex = exercise("l01_gguf")
    data = default_model_path.read_bytes()[:64]
    assert tuple(ex.read_header(data)) == (default_model.version, len(default_model.tensors),
                                           len(default_model.metadata))
    assert tuple(ex.read_header(b"GGUF" + struct.pack("<IQQ", 2, 7, 9))) == (2, 7, 9)
    for bad in (data[:20], b"GGUL" + data[4:], b""):
        with pytest.raises(ValueError):
            ex.read_header(bad)


# ---- lesson 1c: distrusting the file ----

def _file_with_tensors(path, tensors, data_bytes=256):
    """A GGUF file with no metadata and the given raw tensor infos (name, ne, type code, offset)."""
    def s(text):
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 0)
    for name, ne, code, offset in tensors:
        head += s(name) + struct.pack(f"<I{len(ne)}Q", len(ne), *ne) + struct.pack("<IQ", code, offset)
    head += b"\0" * (-len(head) % 32)
    path.write_bytes(head + b"\0" * data_bytes)
    return path


@pytest.mark.parametrize("lie", [("blk.0.attn_q.weight", (8,), 0, 3),          # offset off the alignment
                                 ("blk.1.ffn_up.weight", (8,), 99, 32),        # no such ggml type
                                 ("output.weight", (33, 2), 2, 32),            # a Q4_0 row of 33
                                 ("token_embd.weight", (64, 64), 0, 32)])      # 16 KiB in a 256-byte file
def test_l01c_first_bad_tensor(tmp_path, lie):
    ex = exercise("l01c_gguf_distrust")
    good = ("output_norm.weight", (8,), 0, 0)
    assert ex.first_bad_tensor(_file_with_tensors(tmp_path / "good.gguf", [good])) is None
    assert ex.first_bad_tensor(_file_with_tensors(tmp_path / "bad.gguf", [good, lie])) == lie[0]


# ---- lesson 2: byte-level BPE ----

def test_l02_bpe_naive_equals_the_lesson(default_model):
    from lessons.l02b_bpe_pretokenize import pretokenize
    from lessons.l02c_byte_level_bpe import bpe_merge, bytes_to_symbols, parse_merges
    ex = exercise("l02_bpe")
    ranks = parse_merges(default_model.metadata["tokenizer.ggml.merges"])
    text = ("Hello, world! Tokenizers merge the most frequent pairs first: unbelievably, 12345 "
            "héllo naïve café 👍🏽 東京 don't  spaces\n\nnewlines")
    for word in pretokenize(text, "smollm"):
        symbols = bytes_to_symbols(word.encode("utf-8"))
        assert ex.bpe_naive(symbols, ranks) == bpe_merge(symbols, ranks), word


# ---- lesson 3: SentencePiece ----

def test_l03_spm_naive_equals_the_lesson():
    from lessons.l03_sentencepiece import spm_merge
    ex = exercise("l03_sentencepiece")
    with GGUFFile(ROOT / "tests" / "fixtures" / "tokenizer_spm.gguf") as f:  # tools/make_spm_vocab.py
        tokens, scores = f.metadata["tokenizer.ggml.tokens"], f.metadata["tokenizer.ggml.scores"]
    token_to_id = {t: i for i, t in enumerate(tokens)}
    for text in ("Hello world", "the quick brown fox jumps over the lazy dog", "tokenization, unbelievably",
                 "naïve café 東京 12345", "  two  spaces"):
        text = "▁" + text.replace(" ", "▁")
        assert ex.spm_naive(text, token_to_id, scores) == spm_merge(text, token_to_id, scores), text


# ---- lessons 4-7: the parts ----

def test_l04_rmsnorm_loops():
    from lessons.l04_rmsnorm import rmsnorm
    ex = exercise("l04_rmsnorm")
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((3, 16)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    x[2] *= 1e-3  # mean square 1e-6: here eps (1e-5) decides the scale
    ours = np.array(ex.rmsnorm_loops(x.tolist(), w.tolist(), 1e-5), dtype=np.float32)
    np.testing.assert_allclose(ours, rmsnorm(x, w, 1e-5), rtol=1e-5, atol=1e-6)


def test_l05_rope_complex():
    from lessons.l05_rope import apply_rope, rope_angles
    ex = exercise("l05_rope")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 16)).astype(np.float32)
    positions = np.array([0, 1, 2, 7, 100, 4000])
    cos, sin = rope_angles(positions, 16, 10000.0)
    np.testing.assert_allclose(ex.rope_complex(x, positions, 10000.0), apply_rope(x, cos, sin), rtol=1e-4, atol=1e-4)


def test_l06_attention_repeat_kv():
    from lessons.l06_attention import attention
    ex = exercise("l06_attention")
    rng = np.random.default_rng(6)
    n, pos, n_head, n_head_kv, hd = 3, 4, 6, 2, 8
    q = rng.standard_normal((n, n_head, hd)).astype(np.float32)
    k, v = (rng.standard_normal((n_head_kv, pos + n, hd)).astype(np.float32) for _ in range(2))
    np.testing.assert_allclose(ex.attention_repeat_kv(q, k, v, pos), attention(q, k, v, pos), rtol=1e-5, atol=1e-5)


def test_l07_silu_stable():
    from lessons.l07_swiglu import silu
    ex = exercise("l07_swiglu")
    z = np.array([-1e30, -1e4, -100, -1.278, -1, 0, 0.5, 1, 20, 1e4, 1e30], dtype=np.float32)
    ours = ex.silu_stable(z)  # pytest turns an overflow warning into an error
    np.testing.assert_allclose(ours, silu(z), rtol=1e-6, atol=1e-30)
    exact = z.astype(np.float64) / (1 + np.exp(-np.clip(z.astype(np.float64), -700, 700)))
    np.testing.assert_allclose(ours, exact, rtol=1e-6, atol=1e-30)


# ---- lesson 8: the transformer ----

@pytest.mark.parametrize("tied", [True, False])
def test_l08_count_parameters(tiny_llama, default_model, tied):
    from lessons.l08_transformer import LlamaConfig
    ex = exercise("l08_transformer")
    with GGUFFile(tiny_llama(tied=tied, n_head=4, n_head_kv=2)) as f:
        assert ex.count_parameters(LlamaConfig.from_gguf(f)) == sum(t.n_elements for t in f.tensors.values())
    total = sum(t.n_elements for t in default_model.tensors.values())
    assert ex.count_parameters(LlamaConfig.from_gguf(default_model)) == total == 134_515_008


# ---- lessons 9-11: generating and measuring ----

def test_l09_top_p_keep():
    from lessons.l09_sampling import top_k_filter, top_p_filter
    ex = exercise("l09_sampling")
    rng = np.random.default_rng(9)
    assert ex.top_p_keep([2.0, 1.0, 0.0], 0.9) == [0, 1]  # the page's worked example, after top-k 3
    assert ex.top_p_keep([2.0, 1.0, 0.0, -1.0], 0.9) == [0, 1, 2]  # without top-k: 0.881 < 0.9
    for p in (0.1, 0.5, 0.9, 0.95, 0.999):
        logits = (rng.standard_normal(500) * 3).astype(np.float32)
        ids, lg = top_k_filter(np.arange(500), logits, 0)  # all, sorted best first
        assert ex.top_p_keep(logits, p) == top_p_filter(ids, lg, p)[0].tolist()


def test_l10_greedy_no_cache(tiny_llama):
    from lessons.l08_transformer import NumpyLlama
    from lessons.l09_sampling import Sampler, SamplingParams
    from lessons.l10_generate import generate
    ex = exercise("l10_generate")
    with GGUFFile(tiny_llama(qk_scale=3.0, embd_scale=5.0)) as f:
        model = NumpyLlama(f, n_ctx=32)
        prompt = [5, 17, 3, 42]
        expected = generate(model, prompt, 12, Sampler(SamplingParams(temp=0.0))).tokens
        assert ex.greedy_no_cache(NumpyLlama(f, n_ctx=32), prompt, 12) == expected


def test_l11_n_scored():
    ex = exercise("l11_perplexity")
    assert ex.n_scored(12212, 512) == 5865  # llama-perplexity on tinyshakespeare-40k: 23 chunks, 5865 tokens
    assert ex.n_scored(384, 128) == 3 * 63
    assert ex.n_scored(1000, 512) == 255


# ---- lessons 12-14: quantization ----

def test_l12_dequantize_q4_0_block():
    gguf = pytest.importorskip("gguf")
    ex = exercise("l12_quants")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_0)  # [4, 18]
    expected = gguf.quants.dequantize(raw, gguf.GGMLQuantizationType.Q4_0)
    for row in range(4):
        np.testing.assert_array_equal(np.array(ex.dequantize_q4_0_block(raw[row].tobytes()), np.float32),
                                      expected[row])


def test_l13_scales_mins_q4_k():
    from lessons.l13_kquants import unpack_scale_min_k4
    ex = exercise("l13_kquants")
    rng = np.random.default_rng(13)
    s = rng.integers(0, 256, (50, 12), dtype=np.uint8)
    sc, mn = unpack_scale_min_k4(s)
    for i in range(len(s)):
        ours_sc, ours_mn = ex.scales_mins_q4_k(bytes(s[i]))
        assert list(ours_sc) == sc[i].tolist() and list(ours_mn) == mn[i].tolist()


def test_l14_dot_q8_0_block():
    from lessons.l14_quant_dot import matmul_legacy
    gguf = pytest.importorskip("gguf")
    ex = exercise("l14_quant_dot")
    rng = np.random.default_rng(14)
    for _ in range(20):
        x = rng.standard_normal(32).astype(np.float32) * rng.uniform(0.01, 10)
        raw = gguf.quants.quantize(rng.standard_normal((1, 32)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        w_d = float(raw[0, :2].view(np.float16)[0])
        w_q = raw[0, 2:].view(np.int8)
        expected = matmul_legacy(x[None], raw, GGMLType.Q8_0)[0, 0]
        assert ex.dot_q8_0_block(x, w_q, w_d) == pytest.approx(float(expected), rel=1e-6, abs=1e-6)


# ---- lesson 15: export ----

def test_l15_bits_per_weight(default_model_path, tiny_llama):
    gguf = pytest.importorskip("gguf")
    ex = exercise("l15_export")
    for path in (default_model_path, tiny_llama(weight_type=GGMLType.Q4_0, n_embd=64, n_ff=128)):
        reader = gguf.GGUFReader(path)  # llama.cpp's own reader as the oracle
        expected = 8 * sum(int(t.n_bytes) for t in reader.tensors) / sum(int(t.n_elements) for t in reader.tensors)
        assert ex.bits_per_weight(path) == pytest.approx(expected, rel=1e-12)
