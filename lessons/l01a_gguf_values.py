"""Lesson 1a: GGUF metadata values, and reading them without trusting the file.

Thirteen value types: eight integers (u8 ... i64), two floats (f32, f64), a bool (one byte, 0 or 1),
strings (a u64 byte length, then UTF-8 bytes, no terminator) and arrays (a u32 element type, a u64
count, then the elements; an element may itself be an array).

Worked example, by hand: the value part of a pair that reads

    09 00 00 00 | 04 00 00 00 | 02 00 00 00 00 00 00 00 | 05 00 00 00 07 00 00 00

is type 9 (ARRAY) of element type 4 (UINT32), count 2, then the elements 5 and 7: 4 + 4 + 8 + 2 * 4
= 24 bytes. Nothing in GGUF is terminated; every length is explicit.

Every length in a file is a claim. The cursor below checks each one against the bytes that are
really there before acting on it, so a lying file fails with one line instead of a crash or a
multi-gigabyte allocation; the other claims a value makes (its type code, a bool's byte, an array's
count and depth) pass the checks of lesson 1c, `distrust.*` below.
"""
from __future__ import annotations

import enum
import struct

import numpy as np

class GGUFError(ValueError):
    """A malformed or unsupported GGUF file. The message is one line, fit for `error: ...`."""


# --8<-- [start:value_types]
class GGUFValueType(enum.IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# The fixed-size value types and their struct codes (little endian).
SCALAR_FORMATS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H", GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.FLOAT64: "<d",
    GGUFValueType.BOOL: "<?",
}

# --8<-- [end:value_types]


# ---- a bounds-checked cursor -------------------------------------------------------------------
# Every read checks that the bytes exist, so a truncated or lying file fails with a clear message
# instead of an IndexError, a struct.error, or an allocation sized by garbage.

# --8<-- [start:cursor]
class Cursor:
    def __init__(self, buf, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"truncated file: {what} at byte {self.pos} needs {n} bytes, "
                            f"only {self.size - self.pos} left")

    def scalar(self, vtype: GGUFValueType, what: str):
        fmt = SCALAR_FORMATS[vtype]
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def u32(self, what: str) -> int:
        return self.scalar(GGUFValueType.UINT32, what)

    def u64(self, what: str) -> int:
        return self.scalar(GGUFValueType.UINT64, what)

    def string(self, what: str) -> str:
        n = self.u64(f"length of {what}")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        # surrogateescape keeps invalid UTF-8 byte for byte, so a write round trip is exact.
        return raw.decode("utf-8", errors="surrogateescape")
# --8<-- [end:cursor]


# ---- metadata values ---------------------------------------------------------------------------

def read_value_type(cur: Cursor, what: str) -> GGUFValueType:
    return distrust.check_value_type(cur.u32(f"value type of {what}"), what)


def read_value(cur: Cursor, vtype: GGUFValueType, what: str, depth: int = 0):
    """Read one value of `vtype`; returns (value, type) where arrays have type [elem_type]."""
    if vtype == GGUFValueType.STRING:
        return cur.string(what), vtype
    if vtype == GGUFValueType.BOOL:  # one byte that must be 0 or 1
        return distrust.check_bool(cur.scalar(GGUFValueType.UINT8, what), what), vtype
    if vtype != GGUFValueType.ARRAY:
        return cur.scalar(vtype, what), vtype
    distrust.check_nesting(depth, what)
    elem_type = read_value_type(cur, what)
    count = cur.u64(f"array length of {what}")
    distrust.check_array_count(count, elem_type, cur.size - cur.pos, what)
    if elem_type in SCALAR_FORMATS and elem_type != GGUFValueType.BOOL:
        # Fast path: numeric arrays (token scores, token types) in one frombuffer.
        dtype = np.dtype(SCALAR_FORMATS[elem_type])
        values = np.frombuffer(cur.buf, dtype=dtype, count=count, offset=cur.pos).tolist()
        cur.pos += count * dtype.itemsize
        return values, [elem_type]
    if elem_type == GGUFValueType.STRING:
        return _read_string_array(cur, count, what), [elem_type]
    items, item_type = [], elem_type
    for i in range(count):
        value, item_type = read_value(cur, elem_type, f"{what}[{i}]", depth + 1)
        items.append(value)
    return items, [item_type]


def _read_string_array(cur: Cursor, count: int, what: str) -> list:
    """The vocabulary is ~100k strings: one tight loop, bounds checked without building messages."""
    buf, pos, end, unpack, items = cur.buf, cur.pos, cur.size, struct.Struct("<Q").unpack_from, []
    for i in range(count):
        start = pos + 8
        stop = start + unpack(buf, pos)[0] if start <= end else end + 1
        if stop > end:
            cur.pos = pos
            cur.string(f"{what}[{i}]")  # raises the usual 'truncated file' message
        items.append(buf[start:stop].decode("utf-8", errors="surrogateescape"))
        pos = stop
    cur.pos = pos
    return items


# The checks need the types above, so lesson 1c is imported last.
from lessons import l01c_gguf_distrust as distrust  # noqa: E402


def __getattr__(name):  # MAX_ARRAY_NESTING lived here; it is lesson 1c's now
    if name == "MAX_ARRAY_NESTING":
        return distrust.MAX_ARRAY_NESTING
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
