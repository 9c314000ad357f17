# --8<-- [start:intro]
"""Lesson 13c: quantizing to k-quants, llama.cpp's reference recipe (no importance matrix).

Every type follows the same three steps on a super-block of 256 weights:
1. fit each sub-block on its own with a search from lesson 13b -> a float scale (and min);
2. quantize those scales to small integers against the super-block's largest one, which
   becomes the f16 `d` (e.g. Q4_K: d = max_scale / 63, code = round(scale / d));
3. re-round every weight with the scale it will *really* be decoded with (f16 d times the
   integer code), so the stored integers match the stored scales. A sub-block whose decoded
   scale is 0 keeps the integers from step 1.

Worked example (Q6_K step 2, check by hand): sub-block scales [0.5, -0.25, 0.1, ...] with the
largest magnitude -> max_scale = 0.5, iscale = -128 / 0.5 = -256, d = 1 / iscale = -0.00390625,
codes = round(-256 * [0.5, -0.25, 0.1]) = [-128, 64, -26]: decoded scales d * code = [0.5, -0.25, 0.1016].
(The codes are negative when the largest scale is positive: d carries the sign.)

Speed: all sub-blocks of a chunk of super-blocks are searched at once (lesson 13b's [n, G]
layout), so the whole 135M-weight model quantizes in seconds to tens of seconds.
"""
# --8<-- [end:intro]
import numpy as np

from lessons.l13_kquants import (QK_K, BLOCK_Q2_K, BLOCK_Q3_K, BLOCK_Q4_K, BLOCK_Q5_K, BLOCK_Q6_K, BLOCK_Q8_K,
                                 pack_1bit, pack_2bit, pack_4bit, pack_q6, pack_scale_min_k4, pack_scales_q3)
from lessons.l13b_kquant_search import (GROUP_MAX_EPS, make_q3_quants, make_qkx2_quants, make_qx_quants,
                                        nearest_int, seq_sum)

CHUNK = 1024  # super-blocks searched together: big enough to amortize numpy calls, small enough for the cache


def _columns(x, n):
    """[nb, 256] -> [n, nb * 256 / n]: one sub-block of n weights per column (lesson 13b's layout)."""
    return np.ascontiguousarray(x.reshape(-1, n).T)


def _rows(a, nb):
    """[n, G] -> [nb, 256], the inverse of _columns."""
    return a.T.reshape(nb, QK_K)


def _requantize(x, d, dm, keep, lo, hi, n):
    """Step 3: x [nb, 256], decoded scales d / mins dm [nb, 256 / n] -> ints in lo..hi, or `keep` where d == 0."""
    x = x.reshape(x.shape[0], -1, n)                           # [nb, sub-blocks, n]
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(nearest_int((x + dm[:, :, None]) / d[:, :, None]), lo, hi) - lo
    return np.where(d[:, :, None] == 0, keep.reshape(x.shape), q).reshape(-1, QK_K).astype(np.uint8)


def _scale_codes(values, top, levels):
    """Step 2 for Q2/Q4/Q5_K: values [nb, m] >= 0 -> uint8 codes round(values * levels / top), 0 if top == 0."""
    inv = np.where(top > 0, np.float32(levels) / np.where(top > 0, top, 1), np.float32(0))  # [nb]
    return (nearest_int(inv[:, None] * values).astype(np.int32) & 0xFF).astype(np.uint8)  # C's (uint8_t) cast


def _as_bytes(b):
    return b.view(np.uint8).reshape(len(b), b.dtype.itemsize)


# ---- Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins ----
# --8<-- [start:q4k]
def _quantize_k4_k5(x, nmax, rmin, nstep):
    nb = x.shape[0]
    xs = _columns(x, 32)                                       # [32, nb * 8]
    av_x = np.sqrt(seq_sum(xs * xs) / np.float32(32))          # [G] rms of each sub-block
    w = av_x + np.abs(xs)                                      # weights: rms + |x|
    scales, mins, L = make_qkx2_quants(xs, w, nmax, rmin, 0.1, nstep, use_mad=False)
    scales, mins = scales.reshape(nb, 8), mins.reshape(nb, 8)
    max_scale = np.maximum(scales.max(axis=1), np.float32(0))  # [nb]
    max_min = np.maximum(mins.max(axis=1), np.float32(0))
    sc = np.minimum(_scale_codes(scales, max_scale, 63), 63)  # [nb, 8] 6-bit codes
    m = np.minimum(_scale_codes(mins, max_min, 63), 63)
    d = (max_scale / np.float32(63)).astype(np.float16)
    dmin = (max_min / np.float32(63)).astype(np.float16)
    q = _requantize(x, d.astype(np.float32)[:, None] * sc, dmin.astype(np.float32)[:, None] * m,
                    _rows(L, nb), 0, nmax, 32)                 # [nb, 256]
    return d, dmin, pack_scale_min_k4(sc, m), q


def quantize_q4_k(x):
    d, dmin, scales, q = _quantize_k4_k5(x, 15, -1.0, 20)
    b = np.zeros(len(x), BLOCK_Q4_K)
    b["d"], b["dmin"], b["scales"], b["qs"] = d, dmin, scales, pack_4bit(q)
    return _as_bytes(b)


def quantize_q5_k(x):
    d, dmin, scales, q = _quantize_k4_k5(x, 31, -0.5, 15)
    b = np.zeros(len(x), BLOCK_Q5_K)
    b["d"], b["dmin"], b["scales"] = d, dmin, scales
    b["qh"], b["qs"] = pack_1bit(q >> 4), pack_4bit(q & 15)
    return _as_bytes(b)
# --8<-- [end:q4k]


# ---- Q2_K: 16 sub-blocks of 16, 4-bit scales and mins, absolute-error search ----
# --8<-- [start:q2k]
def quantize_q2_k(x):
    nb = x.shape[0]
    xs = _columns(x, 16)                                       # [16, nb * 16]
    scales, mins, L = make_qkx2_quants(xs, np.abs(xs), 3, -0.5, 0.1, 15, use_mad=True)
    scales, mins = scales.reshape(nb, 16), mins.reshape(nb, 16)
    max_scale = np.maximum(scales.max(axis=1), np.float32(0))
    max_min = np.maximum(mins.max(axis=1), np.float32(0))
    codes = _scale_codes(scales, max_scale, 15) | (_scale_codes(mins, max_min, 15) << 4)  # [nb, 16] (C: low 8 bits)
    d = np.where(max_scale > 0, max_scale / np.float32(15), np.float32(0)).astype(np.float16)
    dmin = np.where(max_min > 0, max_min / np.float32(15), np.float32(0)).astype(np.float16)
    q = _requantize(x, d.astype(np.float32)[:, None] * (codes & 15), dmin.astype(np.float32)[:, None] * (codes >> 4),
                    _rows(L, nb), 0, 3, 16)
    b = np.zeros(nb, BLOCK_Q2_K)
    b["scales"], b["qs"], b["d"], b["dmin"] = codes, pack_2bit(q), d, dmin
    return _as_bytes(b)
# --8<-- [end:q2k]


def _signed_top(scales):
    """[nb, m] -> [nb]: the scale of largest magnitude, with its sign (first on ties)."""
    return np.take_along_axis(scales, np.abs(scales).argmax(axis=1)[:, None], axis=1)[:, 0]


# ---- Q3_K: 16 sub-blocks of 16, signed 6-bit scales, 3-bit weights split 2 + 1 ----
# --8<-- [start:q3k]
def quantize_q3_k(x):
    nb = x.shape[0]
    scales, L = make_q3_quants(_columns(x, 16), 4)             # [G], [16, G] in 0..7
    scales = scales.reshape(nb, 16)
    top = _signed_top(scales)                                  # [nb]
    nonzero = top != 0
    iscale = np.float32(-32) / np.where(nonzero, top, 1)       # [nb]
    codes = np.clip(nearest_int(iscale[:, None] * scales), -32, 31) + 32  # [nb, 16] in 0..63
    codes = np.where(nonzero[:, None], codes, 0).astype(np.uint8)
    d = np.where(nonzero, np.float32(1) / iscale, np.float32(0)).astype(np.float16)
    dl = d.astype(np.float32)[:, None] * (codes.astype(np.float32) - 32)  # [nb, 16] decoded scales
    q = _requantize(x, dl, np.zeros_like(dl), _rows(L, nb), -4, 3, 16)    # [nb, 256] in 0..7
    b = np.zeros(nb, BLOCK_Q3_K)
    b["hmask"], b["qs"] = pack_1bit(q >> 2), pack_2bit(q & 3)  # 3rd bit set <=> q - 4 >= 0
    b["scales"], b["d"] = pack_scales_q3(codes), d
    return _as_bytes(b)
# --8<-- [end:q3k]


# ---- Q6_K: 16 sub-blocks of 16, int8 scales, 6-bit weights split 4 + 2 ----
# --8<-- [start:q6k]
def quantize_q6_k(x):
    nb = x.shape[0]
    scales, L = make_qx_quants(_columns(x, 16), 32)            # [G], [16, G] in 0..63
    scales = scales.reshape(nb, 16)
    top = _signed_top(scales)
    nonzero = np.abs(top) >= GROUP_MAX_EPS                     # else the whole super-block is zeros
    iscale = np.float32(-128) / np.where(nonzero, top, 1)
    codes = np.minimum(nearest_int(iscale[:, None] * scales), 127).astype(np.int8)  # [nb, 16]
    d = np.where(nonzero, np.float32(1) / iscale, np.float32(0)).astype(np.float16)
    dl = d.astype(np.float32)[:, None] * codes                  # [nb, 16]
    q = _requantize(x, dl, np.zeros_like(dl), _rows(L, nb), -32, 31, 16)  # [nb, 256] in 0..63
    b = np.zeros(nb, BLOCK_Q6_K)
    b["ql"], b["qh"] = pack_q6(q)
    b["scales"], b["d"] = codes, d
    b[~nonzero] = np.zeros(1, BLOCK_Q6_K)
    return _as_bytes(b)
# --8<-- [end:q6k]


# ---- Q8_K: the activation side of k-quant dot products ----
# --8<-- [start:q8k]
def quantize_q8_k(x):
    top = _signed_top(x)                                       # [nb]
    nonzero = top != 0
    iscale = np.float32(-127) / np.where(nonzero, top, 1)
    q = np.minimum(nearest_int(iscale[:, None] * x), 127)      # [nb, 256]
    q = np.where(nonzero[:, None], q, 0).astype(np.int8)
    b = np.zeros(len(x), BLOCK_Q8_K)
    b["d"] = np.where(nonzero, np.float32(1) / iscale, np.float32(0))
    b["qs"] = q
    b["bsums"] = q.reshape(-1, 16, 16).sum(axis=2, dtype=np.int16)
    return _as_bytes(b)
# --8<-- [end:q8k]


def _chunked(fn, block_dtype):
    def run(blocks):                                           # [nb, 256] float32 -> [nb, bytes] uint8
        out = np.empty((len(blocks), block_dtype.itemsize), dtype=np.uint8)
        for i in range(0, len(blocks), CHUNK):
            out[i:i + CHUNK] = fn(blocks[i:i + CHUNK])
        return out
    return run


QUANTIZE = {10: _chunked(quantize_q2_k, BLOCK_Q2_K), 11: _chunked(quantize_q3_k, BLOCK_Q3_K),
            12: _chunked(quantize_q4_k, BLOCK_Q4_K), 13: _chunked(quantize_q5_k, BLOCK_Q5_K),
            14: _chunked(quantize_q6_k, BLOCK_Q6_K), 15: _chunked(quantize_q8_k, BLOCK_Q8_K)}
