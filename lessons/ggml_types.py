"""The ggml type table: every lesson's one answer to "how many bytes does this tensor take?".

A GGUF tensor is a run of bytes plus a ggml type number. Float and integer types store every value
on its own; quantized types cut each row into blocks of 32 (legacy quants, lesson 12b) or
super-blocks of 256 values (k-quants, lesson 13), each block a fixed number of bytes. So one table
of (values per block, bytes per block) says how a tensor's bytes follow from its shape, and
`row_bytes` is the only place that does that arithmetic.

Worked example, by hand: a row of 576 weights in Q4_1 (32 per block, 20 bytes each: an f16 scale,
an f16 min, 16 bytes of nibbles) is 576 / 32 = 18 blocks, 18 * 20 = 360 bytes: 5 bits per weight.
"""
from __future__ import annotations

import enum

import numpy as np


# --8<-- [start:types]
class GGMLType(enum.IntEnum):
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    BF16 = 30


QK_K = 256  # a k-quant super-block

# type -> (values per block, bytes per block). Plain types are "blocks" of one value.
TYPE_TABLE = {
    GGMLType.F32: (1, 4), GGMLType.F16: (1, 2), GGMLType.BF16: (1, 2),   # BF16: the top half of an F32
    GGMLType.F64: (1, 8), GGMLType.I8: (1, 1), GGMLType.I16: (1, 2),
    GGMLType.I32: (1, 4), GGMLType.I64: (1, 8),
    GGMLType.Q4_0: (32, 18),    # f16 d + 16 bytes of nibbles
    GGMLType.Q4_1: (32, 20),    # f16 d, f16 m + 16
    GGMLType.Q5_0: (32, 22),    # f16 d + 4 bytes of fifth bits + 16
    GGMLType.Q5_1: (32, 24),    # f16 d, f16 m + 4 + 16
    GGMLType.Q8_0: (32, 34),    # f16 d + 32 int8
    GGMLType.Q8_1: (32, 36),    # f16 d, f16 s + 32 int8 (activations)
    GGMLType.Q2_K: (QK_K, 84),  # 2 + 2 + 16 + 64:          2.625 bits/weight
    GGMLType.Q3_K: (QK_K, 110),  # 32 + 64 + 12 + 2:        3.4375
    GGMLType.Q4_K: (QK_K, 144),  # 2 + 2 + 12 + 128:        4.5
    GGMLType.Q5_K: (QK_K, 176),  # 2 + 2 + 12 + 32 + 128:   5.5
    GGMLType.Q6_K: (QK_K, 210),  # 128 + 64 + 16 + 2:       6.5625
    GGMLType.Q8_K: (QK_K, 292),  # f32 d + 256 int8 + 16 int16 bsums (activations only)
}

# Types numpy can view in place; BF16 has no numpy dtype, so it stays raw uint16.
PLAIN_DTYPES = {
    GGMLType.F32: np.float32, GGMLType.F16: np.float16, GGMLType.BF16: np.uint16,
    GGMLType.F64: np.float64, GGMLType.I8: np.int8, GGMLType.I16: np.int16,
    GGMLType.I32: np.int32, GGMLType.I64: np.int64,
}
# --8<-- [end:types]


# --8<-- [start:row_bytes]
def row_bytes(ggml_type, n: int) -> int:
    """Bytes in one row of n values: 576 Q4_1 values = 18 blocks * 20 bytes = 360.
    ValueError for a type not in the table or a row that does not fill whole blocks."""
    block, size = TYPE_TABLE[ggml_type_of(ggml_type)]
    if n % block:
        raise ValueError(f"{GGMLType(ggml_type).name}: row length {n} is not a multiple of the block size {block}")
    return n // block * size
# --8<-- [end:row_bytes]


def ggml_type_of(code) -> GGMLType:
    """An int (or GGMLType) -> the GGMLType in the table, or a one-line ValueError."""
    try:
        t = GGMLType(int(code))
    except ValueError:
        raise ValueError(f"unsupported ggml type {int(code)}") from None
    if t not in TYPE_TABLE:
        raise ValueError(f"unsupported ggml type {int(code)}")
    return t


def type_name(code) -> str:
    """'Q4_1' for 3; 'type 99' for a number ggml does not know."""
    try:
        return ggml_type_of(code).name
    except ValueError:
        return f"type {int(code)}"
