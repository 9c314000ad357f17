"""Lesson 1: the GGUF model file.

A GGUF file is one flat little-endian byte string in four parts:

    header        magic "GGUF", version (u32), tensor count (u64), metadata count (u64)
    metadata      key/value pairs: key = string, then a u32 value type, then the value
    tensor infos  per tensor: name, n_dims (u32), ne[n_dims] (u64 each), ggml type (u32), offset (u64)
    tensor data   starts at the first multiple of `general.alignment` (default 32) after the infos;
                  each tensor's offset is relative to that start and is itself aligned

A string is a u64 byte length followed by UTF-8 bytes (no terminator). An array is a u32 element
type, a u64 count, then the elements (arrays of arrays are allowed). Version 1 used u32 counts;
versions 2 and 3 use u64 (3 added big-endian files, which we do not read). Lesson 1a
(l01a_gguf_values.py) reads the values; this file reads the structure around them.

Worked example, by hand: the 24 bytes

    47 47 55 46 | 03 00 00 00 | 00 00 00 00 00 00 00 00 | 01 00 00 00 00 00 00 00

are magic "GGUF", version 3, zero tensors, and one metadata pair follows. If that pair is

    04 00 00 00 00 00 00 00  'a' 'b' 'c' 'd'  | 04 00 00 00 | 2a 00 00 00

it reads: a key of length 4, "abcd", value type 4 (UINT32), value 42.

Why ggml's `ne` is "backwards": ggml lists dimensions fastest-varying first, so ne[0] is the row
length (the number of contiguous elements). numpy lists them slowest first. A weight with
ne = (576, 1536) is 1536 rows of 576 floats: numpy shape (1536, 576). We expose both.

Tensors are never copied: the whole file is one read-only mmap, and every tensor is a numpy view
into it, so loading a model costs page-table entries, not RAM, until the bytes are touched.
"""
from __future__ import annotations

import enum
import mmap
import os
from dataclasses import dataclass

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32
GGML_MAX_DIMS = 4

from lessons.l01a_gguf_values import (GGUFError, GGUFValueType, SCALAR_FORMATS,  # noqa: F401
                                      Cursor, read_value, read_value_type)


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


# (elements per block, bytes per block). Plain types are "blocks" of one element.
# Bytes per block, worked out: Q4_0 = f16 scale + 32 nibbles = 2 + 16 = 18.
GGML_BLOCK_INFO = {
    GGMLType.F32: (1, 4), GGMLType.F16: (1, 2), GGMLType.BF16: (1, 2),
    GGMLType.F64: (1, 8), GGMLType.I8: (1, 1), GGMLType.I16: (1, 2),
    GGMLType.I32: (1, 4), GGMLType.I64: (1, 8),
    GGMLType.Q4_0: (32, 18), GGMLType.Q4_1: (32, 20),
    GGMLType.Q5_0: (32, 22), GGMLType.Q5_1: (32, 24),
    GGMLType.Q8_0: (32, 34), GGMLType.Q8_1: (32, 36),
    GGMLType.Q2_K: (256, 84), GGMLType.Q3_K: (256, 110), GGMLType.Q4_K: (256, 144),
    GGMLType.Q5_K: (256, 176), GGMLType.Q6_K: (256, 210), GGMLType.Q8_K: (256, 292),
}

# Types that numpy can view directly; BF16 has no numpy dtype, so it stays raw uint16.
PLAIN_DTYPES = {
    GGMLType.F32: np.float32, GGMLType.F16: np.float16, GGMLType.BF16: np.uint16,
    GGMLType.F64: np.float64, GGMLType.I8: np.int8, GGMLType.I16: np.int16,
    GGMLType.I32: np.int32, GGMLType.I64: np.int64,
}
# --8<-- [end:types]


def row_bytes(ggml_type: int, n_cols: int) -> int:
    """Bytes in one row of `n_cols` elements: 576 Q4_1 values = 18 blocks * 20 bytes = 360."""
    block_elems, block_bytes = GGML_BLOCK_INFO[GGMLType(ggml_type)]
    return (n_cols // block_elems) * block_bytes


@dataclass
class TensorInfo:
    name: str
    ggml_type: GGMLType
    ne: tuple            # ggml order: ne[0] is the row length
    offset: int          # absolute offset of the first byte in the file
    nbytes: int
    data: np.ndarray | None = None  # zero-copy view, see GGUFFile

    @property
    def shape(self) -> tuple:
        return tuple(reversed(self.ne))  # numpy order

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne, dtype=np.int64)) if self.ne else 1


# ---- the file ----------------------------------------------------------------------------------

class GGUFFile:
    """A GGUF file opened read-only: metadata as Python values, tensors as numpy views."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._mmap = _map_file(self.path)
        cur = Cursor(self._mmap, len(self._mmap))
        self.version, n_tensors, n_kv = _read_header(cur)
        self.metadata, self.metadata_types = {}, {}
        for i in range(n_kv):
            key = cur.string(f"key of metadata pair {i}")
            if key in self.metadata:
                raise GGUFError(f"duplicate metadata key '{key}'")
            vtype = read_value_type(cur, f"'{key}'")
            self.metadata[key], self.metadata_types[key] = read_value(cur, vtype, f"'{key}'")
        self.alignment = _alignment(self.metadata, self.metadata_types)
        infos = [_read_tensor_info(cur, i) for i in range(n_tensors)]
        self.data_offset = -(-cur.pos // self.alignment) * self.alignment  # round up
        self.tensors = {}
        for info in infos:
            if info.name in self.tensors:
                raise GGUFError(f"duplicate tensor name '{info.name}'")
            self.tensors[info.name] = self._place(info)

    def _place(self, info: TensorInfo) -> TensorInfo:
        """Check a tensor's bytes lie inside the file, then make its zero-copy view."""
        relative = info.offset
        if relative % self.alignment:
            raise GGUFError(f"tensor '{info.name}' offset {relative} is not a multiple of "
                            f"the alignment {self.alignment}")
        info.offset = self.data_offset + relative
        if info.offset + info.nbytes > len(self._mmap):
            raise GGUFError(f"tensor '{info.name}' data ({info.nbytes} bytes at offset "
                            f"{info.offset}) runs past the end of the file ({len(self._mmap)} bytes)")
        info.data = _tensor_view(self._mmap, info)
        return info

    def close(self) -> None:
        """Drop the views and unmap (only once no outside view is alive)."""
        for info in self.tensors.values():
            info.data = None
        try:
            self._mmap.close()
        except BufferError:
            pass  # someone still holds a view; the OS unmaps when it is freed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _map_file(path: str) -> mmap.mmap:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise GGUFError(f"{path}: empty file")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except IsADirectoryError:
        raise GGUFError(f"{path}: is a directory, not a GGUF file") from None
    except OSError as e:
        raise GGUFError(f"{path}: {e.strerror or e}") from None


def _read_header(cur: Cursor):
    cur.need(4, "magic")
    magic = bytes(cur.buf[0:4])
    if magic != GGUF_MAGIC:
        raise GGUFError(f"not a GGUF file (magic {magic!r}, expected b'GGUF')")
    cur.pos = 4
    version = cur.u32("version")
    if version not in (2, 3):
        hint = " (big-endian file?)" if version >= 1 << 16 else ""
        raise GGUFError(f"unsupported GGUF version {version}{hint}; this reader knows 2 and 3")
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    # Each tensor info takes >= 8+4+8+4+8 bytes and each pair >= 8+4+1: absurd counts fail here.
    if n_tensors * 32 + n_kv * 13 > cur.size - cur.pos:
        raise GGUFError(f"header claims {n_tensors} tensors and {n_kv} metadata pairs, "
                        f"more than the file's {cur.size} bytes can hold")
    return version, n_tensors, n_kv


def _alignment(metadata: dict, types: dict) -> int:
    if "general.alignment" not in metadata:
        return GGUF_DEFAULT_ALIGNMENT
    value, vtype = metadata["general.alignment"], types["general.alignment"]
    if vtype != GGUFValueType.UINT32 or value == 0 or value & (value - 1):
        raise GGUFError(f"bad general.alignment {value!r}: must be a UINT32 power of two")
    return value


def _read_tensor_info(cur: Cursor, i: int) -> TensorInfo:
    name = cur.string(f"name of tensor {i}")
    n_dims = cur.u32(f"n_dims of tensor '{name}'")
    if not 1 <= n_dims <= GGML_MAX_DIMS:
        raise GGUFError(f"tensor '{name}' has {n_dims} dimensions (1 to {GGML_MAX_DIMS} allowed)")
    ne = tuple(cur.u64(f"dimension {d} of tensor '{name}'") for d in range(n_dims))
    code = cur.u32(f"type of tensor '{name}'")
    if code not in GGMLType._value2member_map_ or GGMLType(code) not in GGML_BLOCK_INFO:
        raise GGUFError(f"tensor '{name}' has unknown ggml type {code}")
    ggml_type = GGMLType(code)
    offset = cur.u64(f"offset of tensor '{name}'")
    block_elems, block_bytes = GGML_BLOCK_INFO[ggml_type]
    if ne[0] % block_elems:
        raise GGUFError(f"tensor '{name}' row length {ne[0]} is not a multiple of "
                        f"{ggml_type.name}'s block size {block_elems}")
    n_elements = 1
    for d in ne:
        n_elements *= d
    if n_elements >= 1 << 62:  # no file on any disk holds this many: a lie, not a model
        raise GGUFError(f"tensor '{name}' dimensions {ne} are absurd")
    nbytes = n_elements // block_elems * block_bytes
    return TensorInfo(name, ggml_type, ne, offset, nbytes)


def _tensor_view(buf, info: TensorInfo) -> np.ndarray:
    """Typed view for plain types; raw blocks [..rows.., row_bytes] for quantized ones."""
    shape = info.shape
    if info.ggml_type in PLAIN_DTYPES:
        dtype = PLAIN_DTYPES[info.ggml_type]
        return np.frombuffer(buf, dtype=dtype, count=info.n_elements, offset=info.offset).reshape(shape)
    row = row_bytes(info.ggml_type, info.ne[0])
    raw = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=info.offset)
    return raw.reshape(shape[:-1] + (row,))


from lessons.l01b_gguf_writer import write_gguf  # noqa: E402  (the writer needs the types above)

__all__ = ["GGUFFile", "GGUFError", "GGUFValueType", "GGMLType", "GGML_BLOCK_INFO",
           "TensorInfo", "row_bytes", "write_gguf"]
