# --8<-- [start:intro]
"""Lesson 13: k-quants: super-blocks of 256 weights with quantized scales.

Legacy quants spend 16 bits on a scale for every 32 weights (0.5 bit/weight). K-quants
group 256 weights into a *super-block* with one f16 scale `d` (and `dmin`), cut it into
sub-blocks of 16 or 32 weights, and give each sub-block a *small integer* scale (4, 6
or 8 bits) that multiplies `d`. The scales are themselves quantized, so a 2-bit type
costs 2.625 bits/weight instead of 3.

Layouts (byte offsets inside one super-block; `qs`-like arrays hold the weights):

| type | bytes | fields (offset: name)                                                     | weight = ...                        |
|------|-------|---------------------------------------------------------------------------|-------------------------------------|
| Q2_K | 84    | 0: scales[16] (lo 4 bits scale, hi 4 bits min), 16: qs[64] (2 bits), 80: d, 82: dmin | d*sc*q - dmin*m, q in 0..3 |
| Q3_K | 110   | 0: hmask[32] (3rd bit), 32: qs[64] (low 2 bits), 96: scales[12] (16 x 6 bits), 108: d | d*(sc-32)*(q-4), q in 0..7 |
| Q4_K | 144   | 0: d, 2: dmin, 4: scales[12] (8 scales + 8 mins, 6 bits), 16: qs[128] (4 bits) | d*sc*q - dmin*m, q in 0..15 |
| Q5_K | 176   | 0: d, 2: dmin, 4: scales[12], 16: qh[32] (5th bit), 48: qs[128]            | d*sc*q - dmin*m, q in 0..31  |
| Q6_K | 210   | 0: ql[128] (low 4 bits), 128: qh[64] (high 2 bits), 192: scales int8[16], 208: d | d*sc*(q-32), q in 0..63 |
| Q8_K | 292   | 0: d f32, 4: qs int8[256], 260: bsums int16[16] (sums of 16 qs: dot-product shortcut) | d*q |

Bits per weight from the layout: Q2_K = (16*8 + 64*8 + 2*16) / 256 = 2.625; Q3_K = (32+64+12+2)*8/256
= 3.4375; Q4_K = 144*8/256 = 4.5; Q5_K = 5.5; Q6_K = 6.5625; Q8_K = 9.125 (activations only).

Where the bits of element e (0..255) live:
- 2-bit planes (Q2_K, Q3_K qs): byte 32*(e // 128) + e % 32, bits 2*((e // 32) % 4).
- nibbles (Q4_K/Q5_K qs): byte 32*(e // 64) + e % 32, low nibble if (e // 32) is even, else high.
- one-bit planes (Q3_K hmask, Q5_K qh): byte e % 32, bit e // 32.
- Q6_K: ql byte 64*(e // 128) + e % 64, low nibble if (e % 128) < 64 else high; qh byte 32*(e // 128) + e % 32,
  bits 2*((e % 128) // 32).
- Q4_K/Q5_K 6-bit scale/min of sub-block j (llama.cpp's get_scale_min_k4): for j < 4, scale = byte j & 63 and
  min = byte j+4 & 63; for j >= 4, scale = (byte j+4 & 15) | (byte j-4 >> 6) << 4, min = (byte j+4 >> 4) | (byte j >> 6) << 4.
- Q3_K 6-bit scale of sub-block j: low 4 bits from byte j % 8 (low nibble if j < 8 else high),
  high 2 bits from byte 8 + j % 4, bits 2*(j // 4).

Worked example (Q4_K sub-block, check by hand): d = 0.01, dmin = 0.02, scale code sc = 10, min code m = 5,
stored q = 7: weight = 0.01 * 10 * 7 - 0.02 * 5 = 0.7 - 0.1 = 0.6.
"""
# --8<-- [end:intro]
import numpy as np

QK_K = 256

# ---- layouts (mirror the C structs) ----
# --8<-- [start:layouts]
BLOCK_Q2_K = np.dtype([("scales", "u1", 16), ("qs", "u1", 64), ("d", "<f2"), ("dmin", "<f2")])
BLOCK_Q3_K = np.dtype([("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12), ("d", "<f2")])
BLOCK_Q4_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)])
BLOCK_Q5_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32), ("qs", "u1", 128)])
BLOCK_Q6_K = np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")])
BLOCK_Q8_K = np.dtype([("d", "<f4"), ("qs", "i1", 256), ("bsums", "<i2", 16)])
# --8<-- [end:layouts]
assert [b.itemsize for b in (BLOCK_Q2_K, BLOCK_Q3_K, BLOCK_Q4_K, BLOCK_Q5_K, BLOCK_Q6_K, BLOCK_Q8_K)] == \
    [84, 110, 144, 176, 210, 292]


# ---- bit planes: [n, bytes] uint8 <-> [n, 256] uint8 small ints ----
# --8<-- [start:planes]
def unpack_2bit(qs):
    """[n, 64] -> [n, 256]: element 128h + 32s + l sits in byte 32h + l at bits 2s."""
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    return ((qs.reshape(-1, 2, 1, 32) >> shifts) & 3).reshape(-1, QK_K)  # [n, 2, 4, 32] -> [n, 256]


def pack_2bit(q):
    q = q.reshape(-1, 2, 4, 32)  # [n, h, s, l]
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(-1, 64)


def unpack_4bit(qs):
    """[n, 128] -> [n, 256]: element 64c + 32s + l sits in byte 32c + l, low nibble if s == 0."""
    shifts = np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    return ((qs.reshape(-1, 4, 1, 32) >> shifts) & 15).reshape(-1, QK_K)  # [n, 4, 2, 32] -> [n, 256]


def pack_4bit(q):
    q = q.reshape(-1, 4, 2, 32)  # [n, c, s, l]
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, 128)


def unpack_1bit(bits):
    """[n, 32] -> [n, 256]: element 32k + j is bit k of byte j."""
    shifts = np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    return ((bits.reshape(-1, 1, 32) >> shifts) & 1).reshape(-1, QK_K)  # [n, 8, 32] -> [n, 256]


def pack_1bit(b):
    b = b.reshape(-1, 8, 32).astype(np.uint8)  # [n, k, j]
    return np.bitwise_or.reduce(b << np.arange(8, dtype=np.uint8).reshape(1, 8, 1), axis=1)  # [n, 32]


def unpack_q6(ql, qh):
    """ql [n, 128], qh [n, 64] -> [n, 256] in 0..63 (see the module docstring for where bits live)."""
    low = (ql.reshape(-1, 2, 1, 2, 32) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1, 1)) & 15
    high = unpack_2bit(qh)                       # qh uses the same 2-bit plane order as Q2_K's qs
    return low.reshape(-1, QK_K) | (high << 4)  # [n, h, s, a, l] = element 128h + 64s + 32a + l


def pack_q6(q):
    low = (q & 15).reshape(-1, 2, 2, 2, 32)  # [n, h, s, a, l]
    ql = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(-1, 128)
    return ql, pack_2bit(q >> 4)
# --8<-- [end:planes]


# ---- quantized sub-block scales ----
# --8<-- [start:scales]
def unpack_scale_min_k4(s):
    """Q4_K/Q5_K: 12 bytes -> 8 six-bit scales and 8 six-bit mins. [n, 12] -> ([n, 8], [n, 8])"""
    a, b, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = np.concatenate([a & 63, (c & 15) | ((a >> 6) << 4)], axis=1)
    m = np.concatenate([b & 63, (c >> 4) | ((b >> 6) << 4)], axis=1)
    return sc, m


def pack_scale_min_k4(sc, m):
    """The inverse: sc, m [n, 8] in 0..63 -> [n, 12]."""
    a = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    b = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    c = (sc[:, 4:] & 15) | ((m[:, 4:] & 15) << 4)
    return np.concatenate([a, b, c], axis=1).astype(np.uint8)


def unpack_scales_q3(s):
    """Q3_K: 12 bytes -> 16 six-bit scales, returned as signed ints (code - 32). [n, 12] -> [n, 16]"""
    low = np.concatenate([s[:, :8] & 15, s[:, :8] >> 4], axis=1)                  # [n, 16]
    high = (s[:, 8:].reshape(-1, 1, 4) >> np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 4, 1)) & 3
    return (low | (high.reshape(-1, 16) << 4)).astype(np.int8) - np.int8(32)   # [n, 4, 4] -> [n, 16]


def pack_scales_q3(codes):
    """codes [n, 16] in 0..63 -> [n, 12]."""
    low = (codes[:, :8] & 15) | ((codes[:, 8:] & 15) << 4)                        # [n, 8]
    high = (codes >> 4).reshape(-1, 4, 4) << np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 4, 1)
    return np.concatenate([low, np.bitwise_or.reduce(high, axis=1)], axis=1).astype(np.uint8)
# --8<-- [end:scales]


def _blocks(raw, block_dtype):
    return np.ascontiguousarray(raw).reshape(-1).view(block_dtype)  # bytes -> [n_blocks] structs, zero copy


def _f32(half):
    return half.astype(np.float32)[:, None]  # [n] -> [n, 1]


# ---- dequantize: raw bytes -> [n_blocks, 256] float32 ----
# --8<-- [start:dequantize]
def dequantize_q2_k(raw):
    b = _blocks(raw, BLOCK_Q2_K)
    scale = _f32(b["d"]) * (b["scales"] & 15)                         # [n, 16] per 16 weights
    minus = _f32(b["dmin"]) * (b["scales"] >> 4)                      # [n, 16]
    q = unpack_2bit(b["qs"]).reshape(-1, 16, 16).astype(np.float32)  # [n, 16 sub-blocks, 16]
    return (scale[:, :, None] * q - minus[:, :, None]).reshape(-1, QK_K)


def dequantize_q3_k(raw):
    b = _blocks(raw, BLOCK_Q3_K)
    scale = _f32(b["d"]) * unpack_scales_q3(b["scales"])             # [n, 16]
    q = unpack_2bit(b["qs"]).astype(np.int8) - 4 * (1 - unpack_1bit(b["hmask"]).astype(np.int8))  # [n, 256] in -4..3
    return (scale[:, :, None] * q.reshape(-1, 16, 16).astype(np.float32)).reshape(-1, QK_K)


def _dequantize_k4_k5(b, q):
    sc, m = unpack_scale_min_k4(b["scales"])                          # [n, 8], [n, 8]
    scale, minus = _f32(b["d"]) * sc, _f32(b["dmin"]) * m              # [n, 8]
    q = q.reshape(-1, 8, 32).astype(np.float32)                       # [n, 8 sub-blocks, 32]
    return (scale[:, :, None] * q - minus[:, :, None]).reshape(-1, QK_K)


def dequantize_q4_k(raw):
    b = _blocks(raw, BLOCK_Q4_K)
    return _dequantize_k4_k5(b, unpack_4bit(b["qs"]))


def dequantize_q5_k(raw):
    b = _blocks(raw, BLOCK_Q5_K)
    return _dequantize_k4_k5(b, unpack_4bit(b["qs"]) | (unpack_1bit(b["qh"]) << 4))


def dequantize_q6_k(raw):
    b = _blocks(raw, BLOCK_Q6_K)
    scale = _f32(b["d"]) * b["scales"].astype(np.float32)               # [n, 16]
    q = unpack_q6(b["ql"], b["qh"]).astype(np.int8) - np.int8(32)      # [n, 256] in -32..31
    return (scale[:, :, None] * q.reshape(-1, 16, 16).astype(np.float32)).reshape(-1, QK_K)


def dequantize_q8_k(raw):
    b = _blocks(raw, BLOCK_Q8_K)
    return b["d"][:, None] * b["qs"].astype(np.float32)               # [n, 256]
# --8<-- [end:dequantize]


DEQUANTIZE = {10: dequantize_q2_k, 11: dequantize_q3_k, 12: dequantize_q4_k,
              13: dequantize_q5_k, 14: dequantize_q6_k, 15: dequantize_q8_k}
