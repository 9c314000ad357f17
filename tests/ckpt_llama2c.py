"""Test helper: write llama2.c .bin files and tokenizer.bin from known weights, byte for byte as
llama2.c's export.py (legacy_export, version1_export, version2_export with runq.c's per-tensor
q-then-scales layout) and tokenizer.py lay them out. The oracle is the known weights."""
import struct

import numpy as np

MAGIC = 0x616B3432
LAYER = ["attention_norm", "ffn_norm", "attention.wq", "attention.wk", "attention.wv", "attention.wo",
         "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]


def random_weights(dim=16, hidden=40, n_layers=2, n_heads=4, n_kv=2, vocab=32, shared=False, seed=18):
    """Meta-named float32 weights, nn.Linear (out, in) shapes."""
    rng = np.random.default_rng(seed)
    hs = dim // n_heads
    shapes = {"attention_norm": (dim,), "ffn_norm": (dim,), "attention.wq": (n_heads * hs, dim),
              "attention.wk": (n_kv * hs, dim), "attention.wv": (n_kv * hs, dim),
              "attention.wo": (dim, n_heads * hs), "feed_forward.w1": (hidden, dim),
              "feed_forward.w2": (dim, hidden), "feed_forward.w3": (hidden, dim)}
    w = {"tok_embeddings.weight": rng.standard_normal((vocab, dim)).astype(np.float32)}
    for i in range(n_layers):
        for k in LAYER:
            w[f"layers.{i}.{k}.weight"] = rng.standard_normal(shapes[k]).astype(np.float32)
    w["norm.weight"] = rng.standard_normal(dim).astype(np.float32)
    if not shared:
        w["output.weight"] = rng.standard_normal((vocab, dim)).astype(np.float32)
    return w


def rope_tables(seq_len, head_size, theta):
    """freqs_cos/freqs_sin as llama2.c's model.py precompute_freqs_cis makes them (float32 math)."""
    i = np.arange(0, head_size, 2)[: head_size // 2].astype(np.float32)
    freqs = (np.float32(1.0) / (np.float32(theta) ** (i / np.float32(head_size)))).astype(np.float32)
    angles = np.outer(np.arange(seq_len, dtype=np.float32), freqs).astype(np.float32)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def quantize_q80(w, group_size):
    """export.py's quantize_q80: symmetric int8 per group, scale = max|w| / 127."""
    g = w.astype(np.float32).reshape(-1, group_size)
    scale = (np.abs(g).max(axis=1) / np.float32(127.0)).astype(np.float32)
    q = np.round(g / scale[:, None]).astype(np.int8)
    return q.ravel(), scale


def write_llama2c(path, w, *, dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len, version,
                  theta=10000.0, group_size=64):
    shared = "output.weight" not in w
    L = range(n_layers)
    per = lambda k: [w[f"layers.{i}.{k}.weight"] for i in L]          # noqa: E731
    mats = [m for k in LAYER[2:] for m in per(k)]
    out = [] if shared else [w["output.weight"]]
    f32 = lambda a: np.ascontiguousarray(a, dtype="<f4").tobytes()      # noqa: E731
    if version == 0:
        head = struct.pack("7i", dim, hidden, n_layers, n_heads, n_kv, vocab if shared else -vocab, seq_len)
        cos, sin = rope_tables(seq_len, dim // n_heads, theta)
        body = [w["tok_embeddings.weight"], *per("attention_norm"), *mats[:4 * n_layers], *per("ffn_norm"),
                *mats[4 * n_layers:], w["norm.weight"], cos, sin, *out]
        data = head + b"".join(f32(a) for a in body)
    else:
        head = struct.pack("I", MAGIC) + struct.pack("i", version)
        head += struct.pack("7i", dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len)
        head += struct.pack("B", int(shared))
        if version == 2:
            while dim % group_size:
                group_size //= 2
            head += struct.pack("i", group_size)
        head += b"\0" * (256 - len(head))
        norms = [*per("attention_norm"), *per("ffn_norm"), w["norm.weight"]]
        if version == 1:
            data = head + b"".join(f32(a) for a in norms + [w["tok_embeddings.weight"]] + mats + out)
        else:
            parts = [head] + [f32(a) for a in norms]
            for m in [w["tok_embeddings.weight"]] + mats + out:
                q, s = quantize_q80(m, group_size)
                parts += [q.tobytes(), f32(s)]
            data = b"".join(parts)
    with open(path, "wb") as f:
        f.write(data)
    return group_size


def write_tokenizer_bin(path, pieces, scores):
    """tokenizer.py's export: u32 max_token_length, then per token f32 score, u32 length, bytes."""
    with open(path, "wb") as f:
        f.write(struct.pack("I", max(len(p) for p in pieces)))
        for p, s in zip(pieces, scores):
            f.write(struct.pack("fI", s, len(p)) + p)
