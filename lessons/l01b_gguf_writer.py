"""Lesson 1b: writing a GGUF file.

The writer is the reader run backwards: header, metadata, tensor infos, padding, tensor data.
The only decisions are (a) which value type each Python value gets and (b) where each tensor
starts: every offset is rounded up to the alignment, so a reader can mmap and view in place.

Worked example: `write_gguf(p, {"abcd": 42}, [])` writes exactly the 44 bytes of the example in
lesson 1 (24 header bytes, then the pair: 8 + 4 + 4 + 4 bytes); no tensors, so no padding.

Tests and `export.py` use it. It writes to a temporary file next to the target and renames it at
the end, so a crash or Ctrl-C never leaves a half-written model behind.
"""
from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from lessons.ggml_types import PLAIN_DTYPES, TYPE_TABLE, GGMLType, row_bytes
from lessons.l01a_gguf_values import SCALAR_FORMATS, GGUFValueType
from lessons.l01c_gguf_distrust import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC


# ---- choosing value types ----------------------------------------------------------------------

def infer_type(value):
    """The GGUF type a plain Python value gets: llama.cpp's habits (u32 counts, f32 floats)."""
    if isinstance(value, (bool, np.bool_)):
        return GGUFValueType.BOOL
    if isinstance(value, (int, np.integer)):
        if 0 <= value < 1 << 32:
            return GGUFValueType.UINT32
        if -(1 << 31) <= value < 0:
            return GGUFValueType.INT32
        return GGUFValueType.INT64 if value < 0 else GGUFValueType.UINT64
    if isinstance(value, (float, np.floating)):
        return GGUFValueType.FLOAT32
    if isinstance(value, str):
        return GGUFValueType.STRING
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) == 0:
            return [GGUFValueType.UINT32]
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            lo, hi = min(value), max(value)
            return [infer_type(lo if lo < 0 else hi)] if lo >= -(1 << 31) else [GGUFValueType.INT64]
        return [infer_type(value[0])]
    raise TypeError(f"cannot store {type(value).__name__} in GGUF metadata")


# ---- encoding ----------------------------------------------------------------------------------

def _string(s: str) -> bytes:
    raw = s.encode("utf-8", errors="surrogateescape")
    return struct.pack("<Q", len(raw)) + raw


def _value(value, vtype) -> bytes:
    if isinstance(vtype, list):  # array: element type, count, elements
        (elem,) = vtype
        head = struct.pack("<IQ", GGUFValueType.ARRAY if isinstance(elem, list) else elem, len(value))
        if not isinstance(elem, list) and elem in SCALAR_FORMATS and elem != GGUFValueType.BOOL:
            return head + np.asarray(value, dtype=np.dtype(SCALAR_FORMATS[elem])).tobytes()
        return head + b"".join(_value(v, elem) for v in value)
    if vtype == GGUFValueType.STRING:
        return _string(value)
    return struct.pack(SCALAR_FORMATS[vtype], value)


def _type_code(vtype) -> int:
    return GGUFValueType.ARRAY if isinstance(vtype, list) else int(vtype)


def _tensor_bytes(name: str, ggml_type: GGMLType, shape: tuple, data) -> bytes:
    """Check a tensor's data against its type and shape, return its raw bytes."""
    arr = np.ascontiguousarray(data)
    block_elems, _ = TYPE_TABLE[ggml_type]
    if shape[-1] % block_elems:
        raise ValueError(f"tensor '{name}': row length {shape[-1]} is not a multiple of {block_elems}")
    if ggml_type in PLAIN_DTYPES:
        arr = arr.astype(PLAIN_DTYPES[ggml_type], copy=False)
        expected = tuple(shape)
    else:
        expected = tuple(shape[:-1]) + (row_bytes(ggml_type, shape[-1]),)
    if arr.size != int(np.prod(expected, dtype=np.int64)):
        raise ValueError(f"tensor '{name}': data has {arr.size} items, {expected} expected")
    return arr.tobytes()


# --8<-- [start:write]
def header_bytes(metadata: dict, tensor_layout, metadata_types: dict | None = None,
                 alignment: int = GGUF_DEFAULT_ALIGNMENT, version: int = 3) -> bytes:
    """Everything before the tensor data, padded to the alignment.

    tensor_layout: [(name, ne, ggml_type, nbytes)] in file order; each tensor's offset is the
    previous one's plus its bytes rounded up to the alignment.
    """
    types = metadata_types or {}
    out = [GGUF_MAGIC, struct.pack("<IQQ", version, len(tensor_layout), len(metadata))]
    for key, value in metadata.items():
        vtype = types[key] if key in types else infer_type(value)
        out += [_string(key), struct.pack("<I", _type_code(vtype)), _value(value, vtype)]
    offset = 0
    for name, ne, ggml_type, nbytes in tensor_layout:  # ne: ggml order, the numpy shape reversed
        out += [_string(name), struct.pack(f"<I{len(ne)}Q", len(ne), *ne),
                struct.pack("<IQ", ggml_type, offset)]
        offset += -(-nbytes // alignment) * alignment
    head = b"".join(out)
    return head + b"\0" * (-len(head) % alignment)


def write_gguf(path, metadata: dict, tensors, metadata_types: dict | None = None,
               alignment: int = GGUF_DEFAULT_ALIGNMENT, version: int = 3) -> None:
    """Write a GGUF file. tensors: [(name, ggml_type, numpy_shape, array)]."""
    types = dict(metadata_types or {})
    if "general.alignment" in metadata:
        alignment = int(metadata["general.alignment"])
        types.setdefault("general.alignment", GGUFValueType.UINT32)
    blobs, layout = [], []
    for name, ggml_type, shape, data in tensors:
        ggml_type, shape = GGMLType(ggml_type), tuple(int(d) for d in shape)
        blob = _tensor_bytes(name, ggml_type, shape, data)
        blobs.append(blob)
        layout.append((name, tuple(reversed(shape)), ggml_type, len(blob)))
    head = header_bytes(metadata, layout, types, alignment, version)
    write_atomically(path, head, blobs, alignment)
# --8<-- [end:write]


def write_atomically(path, head: bytes, blobs, alignment: int) -> None:
    """head, then each blob at the next multiple of the alignment; via a temporary file. blobs may be a
    generator, so a writer can make one tensor at a time (tools/make_synthetic_gguf.py)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".gguf", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            for blob in blobs:
                f.write(blob)
                f.write(b"\0" * (-f.tell() % alignment))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
