# --8<-- [start:intro]
"""Lesson 12b: the legacy block quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).

A block quant cuts every row of a weight matrix into blocks of 32 numbers and stores,
per block, one or two float16 numbers (a scale `d`, sometimes a minimum `m`) plus one
small integer per weight. Dequantizing is `x = d * q` (symmetric types: `_0`) or
`x = d * q + m` (types with a minimum: `_1`).

Block layouts, byte by byte (all little-endian; f16 = IEEE half precision):

| type | bytes | offset: field                                                        | bits/weight |
|------|-------|----------------------------------------------------------------------|-------------|
| Q4_0 | 18    | 0: d f16, 2: qs[16] (element j in the low nibble of qs[j], j+16 in the high) | 4.5  |
| Q4_1 | 20    | 0: d f16, 2: m f16, 4: qs[16] (nibbles as Q4_0)                      | 5.0         |
| Q5_0 | 22    | 0: d f16, 2: qh u32 (bit j = 5th bit of element j), 6: qs[16]        | 5.5         |
| Q5_1 | 24    | 0: d f16, 2: m f16, 4: qh u32, 8: qs[16]                             | 6.0         |
| Q8_0 | 34    | 0: d f16, 2: qs int8[32]                                             | 8.5         |
| Q8_1 | 36    | 0: d f16, 2: s f16 (= d * sum(qs)), 4: qs int8[32]                   | 9.0         |

Bits per weight = 8 * bytes / 32: e.g. Q4_1 stores 16 bits of d, 16 of m and 32 * 4 of
quants in 160 bits for 32 weights, 5.0 bits each. Q8_1 is never stored in a model file:
llama.cpp quantizes *activations* to it just before a matrix product with a Q4_1/Q5_1
weight, and `s` lets the dot product add the minimum's contribution in one multiply.

Worked example (Q8_0, check it by hand). A block whose largest magnitude is 2.54:
    amax = 2.54, d = amax / 127 = 0.02, q = round(x / d)
    x = [0.1, -2.54, 1.0, 0, ...]  ->  q = [5, -127, 50, 0, ...],  d stored as f16(0.02) = 0.0200043...
    dequantized: 5 * 0.0200043 = 0.10002, -127 * 0.0200043 = -2.5405, ...

Worked example (Q4_1). A block whose values run from min = -1.0 to max = 2.0:
    d = (max - min) / 15 = 0.2, m = min = -1.0, q = trunc((x - m) / d + 0.5)
    x = 0.5  ->  (0.5 + 1.0) / 0.2 = 7.5  ->  q = trunc(8.0) = 8  ->  8 * 0.2 - 1.0 = 0.6   (error 0.1 = d / 2)
    x = 2.0  ->  q = 15  ->  15 * 0.2 - 1.0 = 2.0                                             (the max is exact)

Rounding rules follow llama.cpp's reference quantizers exactly (they are what makes a
file byte-identical): the symmetric 4/5-bit types take d = (the value of largest
magnitude, with its sign) / -8 (or / -16), so that value maps to q = 0 exactly, and round
with trunc(x / d + 8.5); the `_1` types round with trunc((x - min) / d + 0.5); Q8_0/Q8_1
use round-half-away-from-zero. Scales are computed in float32 and only then stored as f16.
"""
# --8<-- [end:intro]
import numpy as np

QK = 32  # weights per legacy block

# ---- block layouts as numpy structured dtypes (mirror the C structs) ----
# --8<-- [start:layouts]
BLOCK_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
BLOCK_Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)])
BLOCK_Q5_0 = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
BLOCK_Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])
BLOCK_Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", 32)])
BLOCK_Q8_1 = np.dtype([("d", "<f2"), ("s", "<f2"), ("qs", "i1", 32)])
# --8<-- [end:layouts]
assert [b.itemsize for b in (BLOCK_Q4_0, BLOCK_Q4_1, BLOCK_Q5_0, BLOCK_Q5_1, BLOCK_Q8_0, BLOCK_Q8_1)] == [18, 20, 22, 24, 34, 36]


# ---- bit packing helpers ----
# --8<-- [start:nibbles]
def unpack_nibbles(qs):
    """[n, 16] uint8 -> [n, 32] uint8: low nibbles are elements 0..15, high nibbles 16..31."""
    q = np.empty(qs.shape[:-1] + (32,), dtype=np.uint8)  # [n, 32]
    np.bitwise_and(qs, 0x0F, out=q[..., :16])
    np.right_shift(qs, 4, out=q[..., 16:])
    return q


def pack_nibbles(q):
    """[n, 32] uint8 (values < 16) -> [n, 16] uint8, the inverse of unpack_nibbles."""
    return (q[..., :16] & 0x0F) | (q[..., 16:] << 4)  # [n, 16]


def unpack_high_bits(qh):
    """[n] uint32 -> [n, 32] uint8: bit j of qh is the 5th bit (value 16) of element j."""
    bits = (qh[:, None] >> np.arange(32, dtype=np.uint32)) & 1  # [n, 32]
    return (bits << 4).astype(np.uint8)


def pack_high_bits(q):
    """[n, 32] uint8 (values < 32) -> [n] uint32 of their 5th bits."""
    bits = ((q >> 4) & 1).astype(np.uint32)  # [n, 32]
    return (bits << np.arange(32, dtype=np.uint32)).sum(axis=-1, dtype=np.uint32)
# --8<-- [end:nibbles]


def _blocks(raw, block_dtype):
    """Raw bytes (any uint8 array, contiguous) -> [n_blocks] structured array, zero copy."""
    return np.ascontiguousarray(raw).reshape(-1).view(block_dtype)


def _f32(half):
    return half.astype(np.float32)[:, None]  # [n] f16 -> [n, 1] f32


# ---- dequantize: raw bytes -> [n_blocks, 32] float32 ----
# --8<-- [start:dequantize]
def dequantize_q4_0(raw):
    b = _blocks(raw, BLOCK_Q4_0)
    x = unpack_nibbles(b["qs"]).astype(np.float32)  # [n, 32]
    x -= 8                                          # 0..15 -> -8..7
    x *= _f32(b["d"])
    return x


def dequantize_q4_1(raw):
    b = _blocks(raw, BLOCK_Q4_1)
    x = unpack_nibbles(b["qs"]).astype(np.float32)  # [n, 32]
    x *= _f32(b["d"])
    x += _f32(b["m"])
    return x


def dequantize_q5_0(raw):
    b = _blocks(raw, BLOCK_Q5_0)
    q = unpack_nibbles(b["qs"]) | unpack_high_bits(b["qh"])  # [n, 32] in 0..31
    x = q.astype(np.float32)
    x -= 16
    x *= _f32(b["d"])
    return x


def dequantize_q5_1(raw):
    b = _blocks(raw, BLOCK_Q5_1)
    q = unpack_nibbles(b["qs"]) | unpack_high_bits(b["qh"])  # [n, 32] in 0..31
    x = q.astype(np.float32)
    x *= _f32(b["d"])
    x += _f32(b["m"])
    return x


def dequantize_q8_0(raw):
    b = _blocks(raw, BLOCK_Q8_0)
    x = b["qs"].astype(np.float32)  # [n, 32]
    x *= _f32(b["d"])
    return x


def dequantize_q8_1(raw):
    b = _blocks(raw, BLOCK_Q8_1)
    x = b["qs"].astype(np.float32)  # [n, 32]; s is only a dot-product shortcut
    x *= _f32(b["d"])
    return x
# --8<-- [end:dequantize]


# ---- quantize: [n_blocks, 32] float32 -> raw bytes [n_blocks, block_bytes] ----
def round_half_away(x):
    """C's roundf: halves go away from zero (numpy's round goes to even)."""
    return np.copysign(np.floor(np.abs(x) + np.float32(0.5)), x)


def _inverse(d):
    """1/d, or 0 where d == 0 (an all-zero block), in float32."""
    out = np.zeros_like(d)
    np.divide(np.float32(1), d, out=out, where=d != 0)
    return out


def signed_absmax(x):
    """Per block, the value of largest magnitude with its sign (first one on ties). [n, 32] -> [n, 1]"""
    i = np.abs(x).argmax(axis=-1)[:, None]
    return np.take_along_axis(x, i, axis=-1)


# --8<-- [start:quantize]
def quantize_q4_0(x):
    d = signed_absmax(x) / np.float32(-8)                            # [n, 1]: that value maps to q = 0
    q = np.trunc(x * _inverse(d) + np.float32(8.5)).clip(0, 15).astype(np.uint8)  # [n, 32]
    return _pack(BLOCK_Q4_0, d=d, qs=pack_nibbles(q))


def quantize_q4_1(x):
    lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)  # [n, 1]
    d = (hi - lo) / np.float32(15)
    q = np.trunc((x - lo) * _inverse(d) + np.float32(0.5)).clip(0, 15).astype(np.uint8)
    return _pack(BLOCK_Q4_1, d=d, m=lo, qs=pack_nibbles(q))


def quantize_q5_0(x):
    d = signed_absmax(x) / np.float32(-16)
    q = np.trunc(x * _inverse(d) + np.float32(16.5)).clip(0, 31).astype(np.uint8)
    return _pack(BLOCK_Q5_0, d=d, qh=pack_high_bits(q), qs=pack_nibbles(q & 0x0F))


def quantize_q5_1(x):
    lo, hi = x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)
    d = (hi - lo) / np.float32(31)
    q = np.trunc((x - lo) * _inverse(d) + np.float32(0.5)).clip(0, 31).astype(np.uint8)
    return _pack(BLOCK_Q5_1, d=d, m=lo, qh=pack_high_bits(q), qs=pack_nibbles(q & 0x0F))


def quantize_q8_0(x):
    d = np.abs(x).max(axis=-1, keepdims=True) / np.float32(127)
    q = round_half_away(x * _inverse(d)).astype(np.int8)
    return _pack(BLOCK_Q8_0, d=d, qs=q)


def quantize_q8_1(x):
    d = np.abs(x).max(axis=-1, keepdims=True) / np.float32(127)
    q = round_half_away(x * _inverse(d)).astype(np.int8)
    s = q.sum(axis=-1, dtype=np.int32).astype(np.float32)[:, None] * d  # sum(q) * d, in float32, before the f16 rounding
    return _pack(BLOCK_Q8_1, d=d, s=s, qs=q)
# --8<-- [end:quantize]


def _pack(block_dtype, **fields):
    """Fill a [n] structured array field by field, return it as raw bytes [n, block_bytes]."""
    n = len(next(iter(fields.values())))
    b = np.zeros(n, dtype=block_dtype)
    for name, value in fields.items():
        v = np.asarray(value)
        b[name] = v.reshape(b[name].shape).astype(block_dtype[name].base)
    return b.view(np.uint8).reshape(n, block_dtype.itemsize)
