# --8<-- [start:intro]
"""Lesson 14: quantized dot products, or why llama.cpp quantizes the activations too.

A matrix product is rows of dot products. With Q4_1 weights, each block of 32 weights is
w_k = d_w * q_k + m_w (q_k in 0..15). Dequantizing every weight to a float before multiplying
wastes the point of the format: CPUs multiply small integers far faster, 32 or 64 at a time.
So llama.cpp quantizes the activation row too, to 8 bits with its own scale per block of 32
(x_k ~ d_x * p_k, p_k in -127..127), and the dot product of one block becomes

    sum_k w_k x_k  ~  sum_k (d_w q_k + m_w) d_x p_k  =  d_w d_x * sum_k q_k p_k  +  m_w * (d_x sum_k p_k)
                                                                 integers only        precomputed once: s_x

The integer sum is the inner loop. The second term does not depend on the weights at all, so
Q8_1 stores s = d_x * sum_k p_k next to d_x, computed once per activation block and reused for
every weight row. Which 8-bit format pairs with which weight type (ggml's vec_dot_type):
    Q4_0, Q5_0, Q8_0 -> Q8_0 (d, 32 x int8)          symmetric weights: no min term, no s needed
    Q4_1, Q5_1       -> Q8_1 (d, s, 32 x int8)       the min term uses s
    k-quants         -> Q8_K (f32 d, 256 x int8, bsums: the sum of each 16 p's) for the 16/32-wide
                        sub-block mins: min term = dmin * sum_j m_j * (bsum_2j + bsum_2j+1)

Worked example, one block shortened to 4 values. Weights: d_w = 0.5, m_w = -1, q = [0, 3, 15, 2]
-> w = [-1, 0.5, 6.5, 0]. Activations x = [0.2, -0.4, 1.27, 0.1]: max |x| = 1.27, d_x = 0.01,
p = [20, -40, 127, 10], s_x = 0.01 * 117 = 1.17. Integer part 0*20 + 3*(-40) + 15*127 + 2*10 = 1805;
dot = 0.5 * 0.01 * 1805 + (-1) * 1.17 = 9.025 - 1.17 = 7.855, and the float dot w.x is 7.855 too
(here x was exactly representable; in general the 8-bit rounding costs a little).

What it costs, MEASURED on SmolLM2-135M Q4_1 (tools/make_quant_table.py, docs/14-quant-dot.md):
the numpy model with float32 activations reproduces llama.cpp's F32 run (KL 5e-7); with this
Q8_1/Q8_0 path it moves away from it by KL 4.2e-3 per token, llama.cpp's own Q4_1 run by 5.2e-3.
Same size of effect, not the same numbers: the doc page shows why (massive activations).
"""
# --8<-- [end:intro]
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from lessons.ggml_types import QK_K, TYPE_TABLE, GGMLType

T = GGMLType
QK = 32

# Activation format each weight type is paired with (ggml's vec_dot_type).
VEC_DOT_TYPE = {T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0, T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
                T.Q2_K: T.Q8_K, T.Q3_K: T.Q8_K, T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K, T.Q6_K: T.Q8_K}


def fp16(x):
    """Round to the nearest half float, as the 2-byte scales in a block are stored."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


# ---- 8-bit activations: Q8_0, Q8_1, Q8_K ----
# --8<-- [start:q8]
def quantize_q8_0(x: np.ndarray):
    """[..., k] float -> d [..., k/32] (fp16 values), p [..., k/32, 32] int8.
    As llama.cpp's x86 path: scale by 127/max|x|, round half to even."""
    blocks = np.asarray(x, dtype=np.float32).reshape(*x.shape[:-1], -1, QK)  # [..., nb, 32]
    amax = np.abs(blocks).max(axis=-1)  # [..., nb]
    inv = np.divide(np.float32(127), amax, out=np.zeros_like(amax), where=amax > 0)  # [..., nb]
    p = np.round(blocks * inv[..., None]).astype(np.int8)  # [..., nb, 32]
    return fp16(amax / np.float32(127)), p


def quantize_q8_1(x: np.ndarray):
    """Q8_0 plus s = d * sum(p) per block (fp16): the activation's share of the weights' min term."""
    d32 = np.abs(np.asarray(x, dtype=np.float32).reshape(*x.shape[:-1], -1, QK)).max(axis=-1) / np.float32(127)
    d, p = quantize_q8_0(x)
    s = fp16(d32 * p.sum(axis=-1, dtype=np.int32))  # [..., nb]  (scaled by the unrounded d, as llama.cpp)
    return d, s, p


def quantize_q8_K(x: np.ndarray):
    """[..., k] -> d [..., k/256] float32, p [..., k/256, 256] int8, bsums [..., k/256, 16] int16.
    The scale is set by the value of largest magnitude, -127/that value (so its sign is kept)."""
    blocks = np.asarray(x, dtype=np.float32).reshape(*x.shape[:-1], -1, QK_K)  # [..., nb, 256]
    idx = np.abs(blocks).argmax(axis=-1)[..., None]  # first index of max |x|, as ggml's loop
    vmax = np.take_along_axis(blocks, idx, axis=-1)[..., 0]  # [..., nb], signed
    iscale = np.divide(np.float32(-127), vmax, out=np.zeros_like(vmax), where=vmax != 0)
    p = np.minimum(127, np.round(blocks * iscale[..., None])).astype(np.int8)  # [..., nb, 256]
    bsums = p.reshape(*p.shape[:-1], 16, 16).sum(axis=-1, dtype=np.int16)  # [..., nb, 16]
    d = np.divide(np.float32(1), iscale, out=np.zeros_like(iscale), where=iscale != 0)
    return d, p, bsums
# --8<-- [end:q8]


# ---- weights as integers and scales ----
def _f16(raw: np.ndarray, at: int) -> np.ndarray:
    return raw[..., at:at + 2].copy().view(np.float16)[..., 0].astype(np.float32)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """16 bytes -> 32 values: low nibbles are elements 0..15, high nibbles 16..31."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=-1).astype(np.int32)


def _fifth_bits(qh: np.ndarray) -> np.ndarray:
    """4 bytes (a little-endian u32) -> bit j of it for element j, shifted to bit 4."""
    bits = np.unpackbits(qh, axis=-1, bitorder="little")  # [..., 32]
    return bits.astype(np.int32) << 4


# --8<-- [start:unpack]
def unpack_legacy(raw: np.ndarray, wtype: GGMLType):
    """Raw rows [m, row_bytes] -> (d [m, nb], m_or_None [m, nb], q [m, nb, 32] int32) with
    weight = d*q (+ m). Block layouts: d | (m) | (qh) | qs."""
    size = TYPE_TABLE[wtype][1]  # bytes per block of 32
    b = raw.reshape(raw.shape[0], -1, size)  # [m, nb, block bytes]
    d = _f16(b, 0)
    if wtype == T.Q8_0:
        return d, None, b[..., 2:].view(np.int8).astype(np.int32)
    if wtype == T.Q4_0:
        return d, None, _nibbles(b[..., 2:]) - 8
    if wtype == T.Q4_1:
        return d, _f16(b, 2), _nibbles(b[..., 4:])
    if wtype == T.Q5_0:
        return d, None, (_nibbles(b[..., 6:]) | _fifth_bits(b[..., 2:6])) - 16
    return d, _f16(b, 2), _nibbles(b[..., 8:]) | _fifth_bits(b[..., 4:8])  # Q5_1
# --8<-- [end:unpack]


def unpack_q4_K(raw: np.ndarray):
    """Raw rows [m, row_bytes] -> d, dmin [m, nb]; sc, mn [m, nb, 8] (6-bit); q [m, nb, 256] in 0..15.
    weight = d*sc_j*q - dmin*mn_j for sub-block j (32 values). Block: d, dmin, 12 scale bytes, 128 qs."""
    blocks = raw.reshape(raw.shape[0], -1, TYPE_TABLE[T.Q4_K][1])  # [m, nb, 144]
    b = blocks.astype(np.int32)
    d, dmin = _f16(blocks, 0), _f16(blocks, 2)
    s = b[..., 4:16]  # the 12 bytes packing eight 6-bit scales and eight 6-bit mins
    sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 0xF) | ((s[..., 0:4] >> 6) << 4)], axis=-1)
    mn = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)], axis=-1)
    qs = b[..., 16:].reshape(*b.shape[:2], 4, 32)  # 4 chunks of 32 bytes, each holding 2 sub-blocks
    q = np.stack([qs & 0xF, qs >> 4], axis=3).reshape(*b.shape[:2], QK_K)  # [m, nb, 256]
    return d, dmin, sc, mn, q


# ---- the dot products ----
def _int_dots(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-block integer dots for every (activation row, weight row): p [n, nb, L], q [m, nb, L]
    -> [nb, n, m]. float32 matmul of small integers is exact (|sum| < 2^24), and uses BLAS."""
    return np.matmul(p.transpose(1, 0, 2).astype(np.float32), q.transpose(1, 2, 0).astype(np.float32))


# --8<-- [start:dot]
def matmul_legacy(x: np.ndarray, raw: np.ndarray, wtype: GGMLType) -> np.ndarray:
    """x [n, k] float32 @ W.T where W is raw legacy-quant rows [m, row_bytes] -> [n, m], computed
    as llama.cpp does: quantize x to Q8_0/Q8_1, integer dots per block, scales applied per block."""
    d_w, m_w, q = unpack_legacy(raw, wtype)  # [m, nb], [m, nb], [m, nb, 32]
    if m_w is None:
        d_x, p = quantize_q8_0(x)  # [n, nb], [n, nb, 32]
        return np.einsum("nb,mb,bnm->nm", d_x, d_w, _int_dots(p, q), dtype=np.float32)
    d_x, s_x, p = quantize_q8_1(x)
    sumi = _int_dots(p, q)  # [nb, n, m]
    return np.einsum("nb,mb,bnm->nm", d_x, d_w, sumi, dtype=np.float32) + s_x @ m_w.T  # min term: [n, nb] @ [nb, m]


def matmul_q4_K(x: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """x [n, k] @ W.T for Q4_K rows: activations to Q8_K; the mins need only the bsums."""
    d, dmin, sc, mn, q = unpack_q4_K(raw)  # [m, nb] x2, [m, nb, 8] x2, [m, nb, 256]
    d_x, p, bsums = quantize_q8_K(x)  # [n, nb], [n, nb, 256], [n, nb, 16]
    n, m, nb = x.shape[0], raw.shape[0], d.shape[1]
    sub = _int_dots(p.reshape(n, nb * 8, 32), q.reshape(m, nb * 8, 32)).reshape(nb, 8, n, m)  # per sub-block
    scaled = np.einsum("bjnm,mbj->bnm", sub, sc.astype(np.float32))  # sum_j sc_j * sumi_j  [nb, n, m]
    bsum32 = bsums.reshape(n, nb, 8, 2).sum(axis=-1).astype(np.float32)  # sum of p over each sub-block
    mins = np.einsum("nbj,mbj->bnm", bsum32, mn.astype(np.float32))  # sum_j mn_j * bsum_j  [nb, n, m]
    return np.einsum("nb,bnm->nm", d_x, d.T[:, None, :] * scaled - dmin.T[:, None, :] * mins, dtype=np.float32)
# --8<-- [end:dot]


def matmul_quantized(x: np.ndarray, raw: np.ndarray, wtype: GGMLType, rows_per_step: int = 16) -> np.ndarray:
    """Dispatch, a few activation rows at a time so [nb, n, m] stays small for a 49152-row output."""
    fn = matmul_q4_K if wtype == T.Q4_K else lambda xs, r: matmul_legacy(xs, r, wtype)
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([fn(x[i:i + rows_per_step], raw) for i in range(0, x.shape[0], rows_per_step)])


# ---- plugging it into the numpy model ----
# --8<-- [start:hook]
class QuantizedLinear:
    """A weight kept as stored in the file: `parts` are tensors stacked along the output (W_q, W_k, W_v
    for the fused qkv), each (raw rows [m, row_bytes] or float32 [m, k], ggml type)."""

    def __init__(self, parts: list):
        self.parts = parts

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """h [n, k] @ W.T with llama.cpp's quantized-activation product -> [n, sum of m]."""
        outs = [h @ w.T if t in (T.F32, T.F16) else matmul_quantized(h, w, t) for w, t in self.parts]
        return np.concatenate(outs, axis=-1)


def quantized_linear(x: np.ndarray, w) -> np.ndarray:
    """The model's `linear` hook (lesson 8's NumpyLlama.linear) for weights that may be QuantizedLinear."""
    return w(x) if isinstance(w, QuantizedLinear) else x @ w.T


def with_quantized_activations(model, gguf):
    """A copy of a NumpyLlama (l08) that computes every weight product the way llama.cpp's CPU
    backend does. The copy shares the float weights it still needs (the embeddings, the norms)."""
    def part(name):
        t = gguf.tensors[name]
        if t.ggml_type in (T.F32, T.F16):
            return np.asarray(t.data, dtype=np.float32), T.F32
        if t.ggml_type not in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K):
            raise ValueError(f"{name}: no quantized dot product for {t.ggml_type.name} in this lesson")
        return np.asarray(t.data), t.ggml_type

    def blk(i, *names):
        return QuantizedLinear([part(f"blk.{i}.{n}.weight") for n in names])

    layers = [replace(layer, wqkv=blk(i, "attn_q", "attn_k", "attn_v"), wo=blk(i, "attn_output"),
                      w_gate_up=blk(i, "ffn_gate", "ffn_up"), w_down=blk(i, "ffn_down"))
              for i, layer in enumerate(model.weights.layers)]
    out = "output.weight" if "output.weight" in gguf.tensors else "token_embd.weight"
    quantized = copy.copy(model)
    quantized.weights = replace(model.weights, layers=layers, output=QuantizedLinear([part(out)]))
    quantized.cache = copy.deepcopy(model.cache)  # its own KV cache
    quantized.linear = quantized_linear  # the hook every weight product of forward() goes through
    return quantized
# --8<-- [end:hook]

