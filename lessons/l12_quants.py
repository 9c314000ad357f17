# --8<-- [start:intro]
"""Lesson 12: how weights are stored: floats, blocks and the ggml type table.

A GGUF tensor is a run of bytes plus a ggml type number. Float types store every
weight on its own (F32: 4 bytes, F16: 2, BF16: 2 = the top half of an F32).
Quantized types cut each row into *blocks* of 32 (legacy quants, lesson 12b) or
*super-blocks* of 256 weights (k-quants, lesson 13) and store a few scales per block
plus a small integer per weight. A row of n weights of a type with block size B and
S bytes per block takes n / B * S bytes, so n must be a multiple of B.

Worked example: a 576-wide row in Q4_1 (B = 32, S = 20) takes 576 / 32 * 20 = 360 bytes,
which is why `blk.0.attn_q.weight` of the default model has raw data of shape [576, 360].
In F16 the same row takes 1152 bytes, in F32 2304.

BF16 by hand: 1.0f is 0x3F800000; its top 16 bits 0x3F80 are the BF16 value, and
dequantizing shifts them back: 0x3F80 << 16 = 0x3F800000 = 1.0.

Two functions cover every type:
    dequantize(data, ggml_type, shape) -> float32 array of `shape`
    quantize(x, ggml_type)             -> uint8 array x.shape[:-1] + (row_bytes,)  (floats: the typed array)
"""
# --8<-- [end:intro]
import numpy as np

from lessons import l12b_legacy_quants as legacy
from lessons.ggml_types import QK_K, TYPE_TABLE, row_bytes, type_name  # noqa: F401  (re-exported)
from lessons.ggml_types import GGMLType as T

# ---- the ggml type table: id -> (name, weights per block, bytes per block) ----
# The numbers come from the one table of every lesson (lessons/ggml_types.py); this view of it holds
# the types this lesson can quantize and dequantize.
# --8<-- [start:type_table]
GGML_TYPES = {int(t): (t.name, *TYPE_TABLE[t]) for t in (
    T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
    T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K, T.BF16)}
# --8<-- [end:type_table]
TYPE_IDS = {name: t for t, (name, _, _) in GGML_TYPES.items()}


def _supported(ggml_type) -> int:
    t = int(ggml_type)
    if t not in GGML_TYPES:
        raise ValueError(f"unsupported ggml type {t}")
    return t


# ---- floats ----
# --8<-- [start:floats]
def bf16_to_f32(u16):
    """BF16 is the top half of an F32: shift it back up. [..] uint16 -> [..] float32"""
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round to nearest even on the 16 dropped bits; NaNs stay (quiet) NaNs. float32 -> uint16"""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, (u >> 16) | 64, rounded).astype(np.uint16)
# --8<-- [end:floats]


# ---- dispatch ----
def _kquant_dequantizers():
    from lessons import l13_kquants  # imported late: lesson 13 builds on this one
    return l13_kquants.DEQUANTIZE


def _kquant_quantizers():
    from lessons import l13c_kquant_quantize
    return l13c_kquant_quantize.QUANTIZE


_LEGACY_DEQUANT = {2: legacy.dequantize_q4_0, 3: legacy.dequantize_q4_1, 6: legacy.dequantize_q5_0,
                   7: legacy.dequantize_q5_1, 8: legacy.dequantize_q8_0, 9: legacy.dequantize_q8_1}
_LEGACY_QUANT = {2: legacy.quantize_q4_0, 3: legacy.quantize_q4_1, 6: legacy.quantize_q5_0,
                 7: legacy.quantize_q5_1, 8: legacy.quantize_q8_0, 9: legacy.quantize_q8_1}


_STORAGE_DTYPE = {0: np.float32, 1: np.float16, 30: np.uint16}  # typed arrays the float types may come as


# --8<-- [start:dispatch]
def dequantize(data, ggml_type, shape):
    """Raw tensor data of a ggml type -> float32 array of `shape` (numpy order, shape[-1] = row length).

    data: F32 float32, F16 float16, BF16 uint16 (or any of them as raw uint8 bytes);
    quantized types: uint8 raw blocks, e.g. [rows, row_bytes] as GGUFFile's TensorInfo.data gives.
    """
    t, shape = _supported(ggml_type), tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    n_rows = int(np.prod(shape[:-1], dtype=np.int64)) if shape else 1
    expected = n_rows * row_bytes(t, shape[-1] if shape else 1)
    data = np.asarray(data)
    if data.dtype not in (np.uint8, np.int8, _STORAGE_DTYPE.get(t, np.uint8)):
        raise ValueError(f"{type_name(t)} data must be raw bytes (uint8) or {np.dtype(_STORAGE_DTYPE.get(t, np.uint8))}, "
                         f"got {data.dtype}")
    if data.nbytes != expected:
        raise ValueError(f"{type_name(t)} tensor of shape {shape} needs {expected} bytes, got {data.nbytes}")
    raw = np.ascontiguousarray(data)
    if t == 0:
        return raw.reshape(-1).view(np.float32).reshape(shape)
    if t == 1:
        return raw.reshape(-1).view(np.float16).astype(np.float32).reshape(shape)
    if t == 30:
        return bf16_to_f32(raw.reshape(-1).view(np.uint16)).reshape(shape)
    if t in _LEGACY_DEQUANT:
        return _LEGACY_DEQUANT[t](raw).reshape(shape)
    return _kquant_dequantizers()[t](raw).reshape(shape)


def quantize(x, ggml_type):
    """float32 array (rows of weights) -> uint8 raw blocks of shape x.shape[:-1] + (row_bytes,).

    For F32/F16/BF16 the typed array (float32/float16/uint16) of x's shape comes back instead.
    """
    t = _supported(ggml_type)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 0:
        raise ValueError("quantize needs at least a 1-D array")
    n_row_bytes = row_bytes(t, x.shape[-1])
    if t == 0:
        return x.copy()
    if t == 1:
        with np.errstate(over="ignore"):  # as in C: beyond 65504 becomes inf
            return x.astype(np.float16)
    if t == 30:
        return f32_to_bf16(x)
    if not np.isfinite(x).all():
        raise ValueError(f"cannot quantize to {type_name(t)}: the data has NaN or inf")
    _, block, size = GGML_TYPES[t]
    blocks = x.reshape(-1, block)  # [n_blocks, block]
    quantize_blocks = _LEGACY_QUANT[t] if t in _LEGACY_QUANT else _kquant_quantizers()[t]
    raw = np.empty((len(blocks), size), dtype=np.uint8)
    step = 1 << 16  # blocks at a time: bounds the temporaries for big tensors (token_embd: 28M weights)
    with np.errstate(all="ignore"):  # as in C: huge values may overflow f16 scales, all-zero blocks divide by 0
        for i in range(0, len(blocks), step):
            raw[i:i + step] = quantize_blocks(blocks[i:i + step])
    return raw.reshape(x.shape[:-1] + (n_row_bytes,))
# --8<-- [end:dispatch]
