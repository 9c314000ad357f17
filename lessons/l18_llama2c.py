# --8<-- [start:intro]
"""Lesson 18: llama2.c's model files (.bin) and tokenizer.bin.

llama2.c's export.py writes a model as a header and then float32 arrays back to back, in an order
the C reader walks with a pointer. Three layouts exist:

    legacy (v0)  7 int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
                 (vocab_size < 0 means the classifier is NOT shared with the embedding), then
                 tok_embeddings, attention_norm (all layers), wq (all layers), wk, wv, wo,
                 ffn_norm, w1, w2, w3, norm, freq_cis_real [seq_len, head_size/2],
                 freq_cis_imag (RoPE's cos and sin tables), then output if not shared.
    v1           u32 magic 0x616b3432 ("ak42"), int32 version 1, the 7 int32, u8 shared flag,
                 zeros to byte 256; then attention_norm, ffn_norm, norm, tok_embeddings,
                 wq, wk, wv, wo, w1, w2, w3, (output): float32, no RoPE tables.
    v2           as v1 with version 2 and an int32 group size GS after the flag (byte 37); the
                 norms in float32 first, then every matrix as int8[n] followed by float32
                 scales[n / GS]: value = int8 * scale of its group of GS (runq.c's layout).

Every matrix is as PyTorch's nn.Linear stores it, (out, in) row-major; we name them as Meta does.

Worked example, by hand: the 28 bytes
    08 00 00 00 | 10 00 00 00 | 01 00 00 00 | 02 00 00 00 | 02 00 00 00 | e0 ff ff ff | 04 00 00 00
are a legacy header: dim 8, hidden 16, 1 layer, 2 heads, 2 KV heads, vocab -32 (32 tokens, an
own classifier), seq_len 4. head_size = 8 / 2 = 4, so each RoPE table is [4, 2]; the file holds
32*8 + 8 + 4*64 + 8 + 3*16*8 + 8 + 2*4*2 + 32*8 = 1192 floats (4768 bytes) after the header.

RoPE's theta is not in the file, but its tables are: freq_cis_real[t, i] = cos(t * theta^(-2i/hs)).
Angle i = 1 grows by f = theta^(-2/hs) a position, so theta = f^(-hs/2). We read it back.
"""
# --8<-- [end:intro]
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lessons.l16_safetensors import CheckpointError, StoredTensor, map_file

MAGIC = 0x616B3432  # "ak42" as a little-endian u32: bytes 32 34 6b 61
HEADER_V1 = 256     # versioned files pad their header to 256 bytes


@dataclass(frozen=True)
class Llama2cConfig:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool
    rope_theta: float
    version: int  # 0 legacy, 1 float32, 2 int8 groups


# ---- the weights, in file order -------------------------------------------------------------

# --8<-- [start:layout]
def layer_shapes(c: Llama2cConfig) -> dict[str, tuple[int, int] | tuple[int]]:
    """One layer's tensors, Meta's names, nn.Linear's (out, in) shapes."""
    hs = c.dim // c.n_heads
    return {"attention_norm": (c.dim,), "ffn_norm": (c.dim,),
            "attention.wq": (c.n_heads * hs, c.dim), "attention.wk": (c.n_kv_heads * hs, c.dim),
            "attention.wv": (c.n_kv_heads * hs, c.dim), "attention.wo": (c.dim, c.n_heads * hs),
            "feed_forward.w1": (c.hidden_dim, c.dim), "feed_forward.w2": (c.dim, c.hidden_dim),
            "feed_forward.w3": (c.hidden_dim, c.dim)}


def file_order(c: Llama2cConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of every array in the order the file holds them."""
    per_layer, L, hs = layer_shapes(c), range(c.n_layers), c.dim // c.n_heads
    def all_layers(kind):
        return [(f"layers.{i}.{kind}.weight", per_layer[kind]) for i in L]
    emb, norm = ("tok_embeddings.weight", (c.vocab_size, c.dim)), ("norm.weight", (c.dim,))
    mats = [x for k in ("attention.wq", "attention.wk", "attention.wv", "attention.wo",
                        "feed_forward.w1", "feed_forward.w2", "feed_forward.w3") for x in all_layers(k)]
    out = [] if c.shared_classifier else [("output.weight", (c.vocab_size, c.dim))]
    if c.version == 0:
        tables = [("freq_cis_real", (c.seq_len, hs // 2)), ("freq_cis_imag", (c.seq_len, hs // 2))]
        return ([emb] + all_layers("attention_norm") + mats[:4 * c.n_layers] + all_layers("ffn_norm")
                + mats[4 * c.n_layers:] + [norm] + tables + out)
    return all_layers("attention_norm") + all_layers("ffn_norm") + [norm, emb] + mats + out
# --8<-- [end:layout]


# ---- reading a model ------------------------------------------------------------------------

@dataclass(frozen=True)
class Int8GroupTensor:
    """A version 2 matrix: int8 values and one float32 scale per group, views of the file. Like a StoredTensor
    of dtype F32, but its floats are made only when `data` is asked for, one matrix at a time, so a
    conversion holds one tensor in float32, never the whole model."""
    shape: tuple[int, ...]   # (out, in)
    q: np.ndarray            # [n/gs, gs] int8
    s: np.ndarray            # [n/gs, 1] float32
    dtype = "F32"            # what it reads as (a class attribute, not a field)

    @property
    def data(self) -> np.ndarray:
        return (self.q * self.s).astype(np.float32).reshape(self.shape)   # [shape] value = int8 * scale

    def to_f32(self) -> np.ndarray:
        return self.data


# --8<-- [start:read]
def read_llama2c(path) -> tuple[Llama2cConfig, dict[str, StoredTensor]]:
    """The config and every weight (float32: views for v0/v1; for v2, dequantized when each is read)."""
    path = os.fspath(path)
    buf = map_file(path, "llama2.c model file")
    config, pos, gs = read_header(buf, path)
    check_sizes(config, gs, len(buf) - pos, path)            # before a single array is made
    tensors, tables = {}, {}
    for name, shape in file_order(config):
        n = int(np.prod(shape))
        if config.version == 2 and len(shape) == 2:          # int8[n], then float32 scales[n / gs]
            q = np.frombuffer(buf, np.int8, n, pos).reshape(-1, gs)             # [n/gs, gs]
            s = np.frombuffer(buf, "<f4", n // gs, pos + n).reshape(-1, 1)      # [n/gs, 1]
            tensors[name], pos = Int8GroupTensor(shape, q, s), pos + n + 4 * (n // gs)
            continue
        else:
            arr, pos = np.frombuffer(buf, "<f4", n, pos).reshape(shape), pos + 4 * n
        if name.startswith("freq_cis"):
            tables[name] = arr                               # [seq_len, hs/2] cos or sin
        else:
            tensors[name] = StoredTensor("F32", shape, arr)
    if tables:
        theta = rope_theta_from_tables(tables["freq_cis_real"], tables["freq_cis_imag"], path)
        config = Llama2cConfig(**{**config.__dict__, "rope_theta": theta})
    return config, tensors
# --8<-- [end:read]


# --8<-- [start:header]
def read_header(buf, path: str) -> tuple[Llama2cConfig, int, int]:
    """(config, where the weights start, group size or 0). Legacy files have no magic."""
    if len(buf) < 28:
        raise CheckpointError(f"{path}: {len(buf)} bytes, too short for a llama2.c header")
    head = np.frombuffer(buf, "<i4", 7, 0)
    version, params, shared, gs, pos = 0, head, True, 0, 28
    if int(np.frombuffer(buf, "<u4", 1, 0)[0]) == MAGIC:
        if len(buf) < HEADER_V1:
            raise CheckpointError(f"{path}: truncated llama2.c header")
        version, params = int(head[1]), np.frombuffer(buf, "<i4", 7, 8)
        if version not in (1, 2):
            raise CheckpointError(f"{path}: llama2.c file version {version}; this reader knows 0, 1 and 2")
        shared, pos = bool(buf[36]), HEADER_V1
        gs = int(np.frombuffer(buf, "<i4", 1, 37)[0]) if version == 2 else 0
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = (int(x) for x in params)
    if version == 0:
        shared, vocab = vocab > 0, abs(vocab)                # legacy: the sign is the flag
    config = Llama2cConfig(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len, shared, 10000.0, version)
    return config, pos, gs
# --8<-- [end:header]


# --8<-- [start:theta]
def rope_theta_from_tables(cos: np.ndarray, sin: np.ndarray, path: str) -> float:
    """theta from angle 1's step f = theta^(-2/hs): the roundest theta the tables agree with."""
    seq_len, half = cos.shape
    hs = 2 * half
    if seq_len < 2 or half < 2:
        return 10000.0                                       # too small a table to tell
    angle = np.unwrap(np.arctan2(sin[:, 1].astype(np.float64), cos[:, 1]))  # [seq_len] = t * f
    t = np.arange(seq_len, dtype=np.float64)
    f = float(t @ angle / (t @ t))                           # least-squares slope
    if not 0 < f < 1:
        raise CheckpointError(f"{path}: freq_cis tables are not RoPE tables (step {f:.3g})")
    estimate = f ** (-hs / 2)
    tolerance = estimate * (hs / 2) * 1e-6                   # float32 tables pin theta this well
    theta = next(float(f"{estimate:.{d}g}") for d in range(1, 18)
                 if abs(float(f"{estimate:.{d}g}") - estimate) <= tolerance)
    check_tables(cos, sin, theta, path)
    return theta
# --8<-- [end:theta]


# ---- tokenizer.bin --------------------------------------------------------------------------

# --8<-- [start:tokenizer]
def read_tokenizer_bin(path, vocab_size: int) -> tuple[list[bytes], list[float], int]:
    """(pieces, scores, max_token_length): int32 max length, then per token f32 score, i32 length, bytes."""
    path = os.fspath(path)
    buf = map_file(path, "tokenizer.bin")
    pos, pieces, scores = 4, [], []
    max_len = _i32(buf, 0, path, "max_token_length")
    for i in range(vocab_size):
        score = float(np.frombuffer(_take(buf, pos, 4, path, f"token {i}"), "<f4")[0])
        n = _i32(buf, pos + 4, path, f"length of token {i}")
        if n < 0:
            raise CheckpointError(f"{path}: token {i} has length {n}")
        pieces.append(bytes(_take(buf, pos + 8, n, path, f"token {i}")))
        scores.append(score)
        pos += 8 + n
    return pieces, scores, max_len
# --8<-- [end:tokenizer]


# ---- distrust: sizes are checked against the file before anything is viewed -----------------

def check_sizes(c: Llama2cConfig, gs: int, available: int, path: str) -> None:
    if min(c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len) <= 0:
        raise CheckpointError(f"{path}: header has a size <= 0: {_sizes(c)}")
    if c.dim % c.n_heads or c.n_heads % c.n_kv_heads or (c.version == 0 and (c.dim // c.n_heads) % 2):
        raise CheckpointError(f"{path}: heads do not divide the model: {_sizes(c)}")
    hs, L = c.dim // c.n_heads, c.n_layers
    norms = (2 * L + 1) * c.dim
    mats = c.vocab_size * c.dim * (1 if c.shared_classifier else 2) + L * (
        c.dim * c.n_heads * hs * 2 + 2 * c.n_kv_heads * hs * c.dim + 3 * c.hidden_dim * c.dim)
    if c.version == 2:
        if gs <= 0 or any(n % gs for n in (c.dim * c.n_heads * hs, c.n_kv_heads * hs * c.dim,
                                           c.hidden_dim * c.dim, c.vocab_size * c.dim)):
            raise CheckpointError(f"{path}: group size {gs} does not divide the matrices")
        need = 4 * norms + mats + 4 * (mats // gs)
    else:
        need = 4 * (norms + mats + (c.seq_len * hs if c.version == 0 else 0))
    if need != available:
        raise CheckpointError(f"{path}: the header's sizes ({_sizes(c)}) need {need} bytes of "
                              f"weights, the file holds {available}")


def check_tables(cos, sin, theta: float, path: str) -> None:
    """The tables must be what RoPE with this theta gives, to float32 rounding."""
    seq_len, half = cos.shape
    freqs = theta ** (-np.arange(half, dtype=np.float64) * 2 / (2 * half))   # [half]
    angles = np.outer(np.arange(seq_len), freqs)                            # [seq_len, half]
    tol = 1e-5 + 2e-7 * seq_len * half
    if max(np.abs(np.cos(angles) - cos).max(), np.abs(np.sin(angles) - sin).max()) > tol:
        raise CheckpointError(f"{path}: freq_cis tables are not RoPE tables for any theta")


def _sizes(c: Llama2cConfig) -> str:
    return (f"dim {c.dim}, hidden {c.hidden_dim}, layers {c.n_layers}, heads {c.n_heads}/"
            f"{c.n_kv_heads}, vocab {c.vocab_size}, seq_len {c.seq_len}")


def _take(buf, pos: int, n: int, path: str, what: str):
    if pos + n > len(buf):
        raise CheckpointError(f"{path}: file ends inside {what} (truncated?)")
    return buf[pos:pos + n]


def _i32(buf, pos: int, path: str, what: str) -> int:
    return int.from_bytes(_take(buf, pos, 4, path, what), "little", signed=True)
