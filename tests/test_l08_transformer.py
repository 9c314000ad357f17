"""The numpy transformer on tiny random models, against a float64 oracle that reads the file with gguf-py."""

import gguf
import numpy as np
import pytest

from lessons.l01_gguf import GGMLType, GGUFError, GGUFFile
from lessons.l08_transformer import LlamaConfig, NumpyLlama


# ---- an independent oracle: gguf-py's reader, float64, loops and complex numbers ----
def oracle_logits(path, tokens):
    reader = gguf.GGUFReader(path)
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    W = {t.name: gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(tuple(reversed([int(n) for n in t.shape])))
         for t in reader.tensors}
    n_embd, n_head = field("llama.embedding_length"), field("llama.attention.head_count")
    n_head_kv, eps = field("llama.attention.head_count_kv"), field("llama.attention.layer_norm_rms_epsilon")
    base, n_rot = field("llama.rope.freq_base"), field("llama.rope.dimension_count")
    hd = n_embd // n_head

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps) * w

    def rope(v, p):  # v [n_heads, hd]: adjacent pairs as complex numbers
        z = v[:, 0:n_rot:2] + 1j * v[:, 1:n_rot:2]
        z = z * np.exp(1j * p * base ** (-np.arange(0, n_rot, 2) / n_rot))
        out = v.copy()
        out[:, 0:n_rot:2], out[:, 1:n_rot:2] = z.real, z.imag
        return out

    x = W["token_embd.weight"][tokens]
    n = len(tokens)
    for i in range(field("llama.block_count")):
        b = lambda name: W[f"blk.{i}.{name}.weight"]  # noqa: E731
        h = norm(x, b("attn_norm"))
        q = [rope((h[t] @ b("attn_q").T).reshape(n_head, hd), t) for t in range(n)]
        k = [rope((h[t] @ b("attn_k").T).reshape(n_head_kv, hd), t) for t in range(n)]
        v = [(h[t] @ b("attn_v").T).reshape(n_head_kv, hd) for t in range(n)]
        att = np.zeros((n, n_head, hd))
        for t in range(n):
            for head in range(n_head):
                kv = head // (n_head // n_head_kv)
                s = np.array([q[t][head] @ k[j][kv] for j in range(t + 1)]) / np.sqrt(hd)
                p = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                att[t, head] = sum(p[j] * v[j][kv] for j in range(t + 1))
        x = x + att.reshape(n, -1) @ b("attn_output").T
        h = norm(x, b("ffn_norm"))
        g, u = h @ b("ffn_gate").T, h @ b("ffn_up").T
        x = x + (g / (1 + np.exp(-g)) * u) @ b("ffn_down").T
    out = W.get("output.weight", W["token_embd.weight"])
    return norm(x, W["output_norm.weight"]) @ out.T


TOKENS = np.array([5, 77, 200, 3, 3, 150, 42], dtype=np.int32)


@pytest.mark.parametrize("overrides", [
    {},                                                     # GQA 4 query heads / 2 KV heads, tied embeddings
    {"n_head": 4, "n_head_kv": 4, "tied": False},           # plain multi-head, separate output.weight
    {"n_head": 8, "n_head_kv": 1, "rope_base": 100000.0},   # multi-query, SmolLM2's rope base
    {"n_rot": 4, "n_layer": 3},                             # partial rotary dims
    {"vocab": "spm", "weight_type": GGMLType.F16},          # SentencePiece vocab, F16 weights
    {"weight_type": GGMLType.Q4_1, "tied": False},          # the default model's type, dequantized by lesson 12
    {"weight_type": GGMLType.Q8_0},
])
def test_matches_float64_oracle(tiny_llama, overrides):
    path = tiny_llama(**overrides)
    model = NumpyLlama(GGUFFile(path), n_ctx=16)
    logits = model.forward(TOKENS, 0)
    assert logits.shape == (len(TOKENS), model.config.n_vocab) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, oracle_logits(path, TOKENS), rtol=1e-4, atol=1e-4)


def test_decoding_with_the_cache_equals_one_batch(tiny_llama):
    model = NumpyLlama(GGUFFile(tiny_llama()), n_ctx=16)
    batched = model.forward(TOKENS, 0)
    model.reset()
    first = model.forward(TOKENS[:3], 0)
    steps = [model.forward(TOKENS[t : t + 1], t) for t in range(3, len(TOKENS))]
    np.testing.assert_allclose(np.concatenate([first, *steps]), batched, rtol=1e-5, atol=1e-5)
    model.reset()
    np.testing.assert_allclose(model.forward(TOKENS, 0, last_only=True), batched[-1:], rtol=1e-5, atol=1e-5)


def test_worked_example_zero_blocks(tiny_llama):
    # all block weights zero: every block adds nothing, logit[t, t] = sqrt(n_embd) * |e_t| (eps aside)
    path = tiny_llama(n_layer=1, rms_eps=1e-12)
    f = GGUFFile(path)
    zero_blocks = []
    for name, info in f.tensors.items():
        data = np.array(info.data)
        if name.startswith("blk."):
            data = np.ones_like(data) if name.endswith("norm.weight") else np.zeros_like(data)
        elif name == "output_norm.weight":
            data = np.ones_like(data)
        zero_blocks.append((name, info.ggml_type, info.shape, data))
    from lessons.l01_gguf import write_gguf
    write_gguf(path.with_name("zero.gguf"), dict(f.metadata), zero_blocks, metadata_types=f.metadata_types)
    model = NumpyLlama(GGUFFile(path.with_name("zero.gguf")), n_ctx=8)
    embd = f.tensors["token_embd.weight"].data
    logits = model.forward(TOKENS[:4], 0)
    for row, t in enumerate(TOKENS[:4]):
        assert logits[row, t] == pytest.approx(np.sqrt(embd.shape[1]) * np.linalg.norm(embd[t]), rel=1e-4)


def test_config_reads_the_metadata(tiny_llama):
    c = LlamaConfig.from_gguf(GGUFFile(tiny_llama(n_embd=48, n_head=6, n_head_kv=3, n_ff=80, rope_base=5e5, n_layer=3)))
    assert (c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff, c.n_layer) == (48, 6, 3, 8, 80, 3)
    assert (c.rope_base, c.rope_neox, c.tied_embeddings, c.n_ctx_train) == (5e5, False, True, 64)
    assert c.n_vocab == len(GGUFFile(tiny_llama()).metadata["tokenizer.ggml.tokens"])


def test_optional_keys_take_llama_cpp_defaults(tiny_llama):
    c = LlamaConfig.from_gguf(GGUFFile(tiny_llama(n_head_kv=4, metadata={"llama.rope.freq_base": None, "llama.rope.dimension_count": None,
                                                             "llama.attention.head_count_kv": None})))
    assert (c.rope_base, c.n_rot, c.n_head_kv) == (10000.0, c.head_dim, c.n_head)


@pytest.mark.parametrize("overrides,message", [
    ({"metadata": {"general.architecture": "gpt2"}}, "unsupported architecture 'gpt2'"),
    ({"metadata": {"general.architecture": None}}, "general.architecture"),
    ({"metadata": {"llama.attention.head_count": 0}}, "head_count = 0 is out of range"),
    ({"metadata": {"llama.attention.head_count_kv": 3}}, "head_count_kv = 3 does not divide"),
    ({"metadata": {"llama.embedding_length": 30, "llama.attention.head_count": 4}}, "not divisible"),
    ({"metadata": {"llama.block_count": 5}}, "block_count = 5 but the file has tensors for 2 blocks"),
    ({"metadata": {"llama.block_count": 10**9}}, "out of range"),
    ({"metadata": {"llama.feed_forward_length": 1 << 40}}, "out of range"),
    ({"metadata": {"llama.embedding_length": "576"}}, "must be an integer"),
    ({"metadata": {"llama.context_length": None}}, "missing llama.context_length"),
    ({"metadata": {"llama.attention.layer_norm_rms_epsilon": -1.0}}, "positive number"),
    ({"metadata": {"llama.rope.dimension_count": 7}}, "must be even"),
    ({"metadata": {"llama.vocab_size": 10}}, "token_embd.weight has shape"),
    ({"drop_tensors": ["blk.1.ffn_up.weight"]}, "missing tensor blk.1.ffn_up.weight"),
    ({"tensor_shapes": {"blk.0.attn_k.weight": (32, 32)}}, r"blk.0.attn_k.weight has shape \[32, 32\], expected \[16, 32\]"),
    ({"tensor_shapes": {"output_norm.weight": (31,)}}, "output_norm.weight has shape"),
])
def test_bad_files_raise_one_line_errors(tiny_llama, overrides, message):
    path = tiny_llama(**overrides)
    with pytest.raises(GGUFError, match=message) as err:
        NumpyLlama(GGUFFile(path), n_ctx=8)
    assert "\n" not in str(err.value)


def test_forward_rejects_bad_arguments(tiny_llama):
    model = NumpyLlama(GGUFFile(tiny_llama()), n_ctx=8)
    with pytest.raises(ValueError, match="context full"):
        model.forward(np.arange(5, dtype=np.int32), 4)
    with pytest.raises(ValueError, match="token id out of range"):
        model.forward(np.array([model.config.n_vocab], np.int32), 0)
    with pytest.raises(ValueError, match="non-empty"):
        model.forward(np.array([], np.int32), 0)
    with pytest.raises(ValueError, match="n_ctx"):
        NumpyLlama(GGUFFile(tiny_llama()), n_ctx=10**9)
    # K and V of 4M positions * 64 channels * 4 bytes = 2 GiB per layer and KV head; 3 layers * 4 heads = 24 GiB
    huge = tiny_llama(n_embd=256, n_head=4, n_head_kv=4, n_layer=3, n_ctx_train=1 << 22, n_ff=32)
    with pytest.raises(ValueError, match="24.0 GiB"):
        NumpyLlama(GGUFFile(huge), n_ctx=1 << 22)
