# --8<-- [start:intro]
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

Every number the reader acts on is checked first by lesson 1c (l01c_gguf_distrust.py): the calls
to `distrust.*` below are the places a hostile file is stopped; that lesson says what each one stops.
"""
# --8<-- [end:intro]
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from lessons import l01c_gguf_distrust as distrust
from lessons.ggml_types import PLAIN_DTYPES, TYPE_TABLE, GGMLType, row_bytes  # noqa: F401  (the one type table)
from lessons.l01a_gguf_values import (GGUFError, GGUFValueType, SCALAR_FORMATS,  # noqa: F401
                                      Cursor, read_value, read_value_type)
from lessons.l01c_gguf_distrust import GGML_MAX_DIMS, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC  # noqa: F401

GGML_BLOCK_INFO = TYPE_TABLE  # (elements per block, bytes per block), by GGMLType: lessons/ggml_types.py


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

# --8<-- [start:reader]
class GGUFFile:
    """A GGUF file opened read-only: metadata as Python values, tensors as numpy views."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._mmap = distrust.map_file(self.path)
        cur = Cursor(self._mmap, len(self._mmap))
        self.version, n_tensors, n_kv = _read_header(cur)
        self.metadata, self.metadata_types = {}, {}
        for i in range(n_kv):
            key = cur.string(f"key of metadata pair {i}")
            distrust.check_unique(key, self.metadata, "metadata key")
            vtype = read_value_type(cur, f"'{key}'")
            self.metadata[key], self.metadata_types[key] = read_value(cur, vtype, f"'{key}'")
        self.alignment = distrust.check_alignment(self.metadata, self.metadata_types, GGUF_DEFAULT_ALIGNMENT)
        infos = [_read_tensor_info(cur, i) for i in range(n_tensors)]
        self.data_offset = -(-cur.pos // self.alignment) * self.alignment  # round up
        self.tensors = {}
        for info in infos:
            distrust.check_unique(info.name, self.tensors, "tensor name")
            distrust.check_tensor_bytes(info.name, info.offset, info.nbytes, self.alignment,
                                        self.data_offset, len(self._mmap))
            info.offset += self.data_offset  # relative to the data section -> absolute
            info.data = _tensor_view(self._mmap, info)
            self.tensors[info.name] = info
# --8<-- [end:reader]

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


# --8<-- [start:parts]
def _read_header(cur: Cursor):
    cur.need(4, "magic")
    distrust.check_magic(bytes(cur.buf[0:4]))
    cur.pos = 4
    version = cur.u32("version")
    distrust.check_version(version)
    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata count")
    distrust.check_counts(n_tensors, n_kv, cur.size - cur.pos, cur.size)
    return version, n_tensors, n_kv


def _read_tensor_info(cur: Cursor, i: int) -> TensorInfo:
    name = cur.string(f"name of tensor {i}")
    n_dims = cur.u32(f"n_dims of tensor '{name}'")
    distrust.check_n_dims(name, n_dims)
    ne = tuple(cur.u64(f"dimension {d} of tensor '{name}'") for d in range(n_dims))
    ggml_type = distrust.check_ggml_type(name, cur.u32(f"type of tensor '{name}'"))
    offset = cur.u64(f"offset of tensor '{name}'")
    distrust.check_tensor_shape(name, ne, ggml_type)
    n_rows = 1
    for d in ne[1:]:
        n_rows *= d
    return TensorInfo(name, ggml_type, ne, offset, n_rows * row_bytes(ggml_type, ne[0]))


def _tensor_view(buf, info: TensorInfo) -> np.ndarray:
    """Typed view for plain types; raw blocks [..rows.., row_bytes] for quantized ones."""
    shape = info.shape
    if info.ggml_type in PLAIN_DTYPES:
        dtype = PLAIN_DTYPES[info.ggml_type]
        return np.frombuffer(buf, dtype=dtype, count=info.n_elements, offset=info.offset).reshape(shape)
    row = row_bytes(info.ggml_type, info.ne[0])
    raw = np.frombuffer(buf, dtype=np.uint8, count=info.nbytes, offset=info.offset)
    return raw.reshape(shape[:-1] + (row,))
# --8<-- [end:parts]


from lessons.l01b_gguf_writer import write_gguf  # noqa: E402  (the writer needs the types above)

__all__ = ["GGUFFile", "GGUFError", "GGUFValueType", "GGMLType", "GGML_BLOCK_INFO",
           "TensorInfo", "row_bytes", "write_gguf"]
