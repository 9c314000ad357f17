# --8<-- [start:intro]
"""Lesson 1c: distrusting the file. What a hostile GGUF looks like, and how each check stops it.

A model file comes from the internet. Every count, length, type code and offset in it is a claim
made by whoever wrote it, and a reader that believes the claims can be made to crash, to hang, to
allocate terabytes, or to read outside its buffer. The reader of lesson 1 believes nothing: each
number it acts on first passes one of the checks below (lesson 1a's bounds-checked Cursor does the
same for every length and value inside the metadata). A failed check is a `GGUFError` whose one-line
message `run.py` prints as `error: ...` before exiting.

Worked example, by hand: a 24-byte header that reads

    47 47 55 46 | 03 00 00 00 | ff ff ff ff ff ff ff 7f | 00 00 00 00 00 00 00 00

claims 2^63 - 1 tensors. A naive reader would loop 9.2e18 times or pre-allocate a list that size;
`check_counts` sees that each tensor info takes at least 32 bytes and the file has 0 left after the
header, and stops with "header claims 9223372036854775807 tensors ... more than the file's 24 bytes
can hold".

The checks, in the order the reader meets them:

    hostile file                                    check                 would otherwise
    empty file, directory, unreadable path          map_file              mmap error, traceback
    wrong magic; version 1 or a big-endian file    check_magic, _version garbage read as numbers
    2^63 tensors or pairs                           check_counts          endless loop, huge list
    a string or array longer than the file          Cursor.need (1a)      read past the buffer
    a value type code 13 or a bool byte of 7        check_value_type,     garbage read as values
                                                    check_bool
    an array of 2^60 elements in a small file       check_array_count     a huge list, a long loop
    arrays nested 10^6 deep                         check_nesting         RecursionError
    the same key or tensor name twice               check_unique          a silent override
    general.alignment 0 or 3, or not a UINT32       check_alignment       division by zero, bad views
    0 or 100 dimensions                             check_n_dims          IndexError, huge shapes
    a type code ggml does not have                  check_ggml_type       KeyError
    a Q4_0 row of 33 weights, 2^40 x 2^40 weights   check_tensor_shape    wrong bytes, overflow
    an offset off the alignment or past the end     check_tensor_bytes    a view of bytes not there
"""
# --8<-- [end:intro]
from __future__ import annotations

import mmap
import os
import struct

from lessons.ggml_types import TYPE_TABLE, GGMLType
from lessons.l01a_gguf_values import SCALAR_FORMATS, GGUFError, GGUFValueType

GGUF_MAGIC = b"GGUF"
GGUF_DEFAULT_ALIGNMENT = 32
GGUF_VERSIONS = (2, 3)  # 1 used u32 counts; 3 added big-endian files (a byte-swapped version number)
GGML_MAX_DIMS = 4
MAX_ARRAY_NESTING = 8  # real files nest at most once; a deep nest is an attack, not a model


# --8<-- [start:file]
def map_file(path: str) -> mmap.mmap:
    """The whole file as one read-only mmap; an unusable path is one line, not a traceback."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise GGUFError(f"{path}: empty file")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except IsADirectoryError:
        raise GGUFError(f"{path}: is a directory, not a GGUF file") from None
    except OSError as e:
        raise GGUFError(f"{path}: {e.strerror or e}") from None


def check_magic(magic: bytes) -> None:
    if magic != GGUF_MAGIC:
        raise GGUFError(f"not a GGUF file (magic {magic!r}, expected b'GGUF')")


def check_version(version: int) -> None:
    if version not in GGUF_VERSIONS:
        hint = " (big-endian file?)" if version >= 1 << 16 else ""
        raise GGUFError(f"unsupported GGUF version {version}{hint}; this reader knows 2 and 3")


def check_counts(n_tensors: int, n_kv: int, bytes_left: int, file_size: int) -> None:
    """Each tensor info takes >= 8+4+8+4+8 bytes and each pair >= 8+4+1: absurd counts fail here."""
    if n_tensors * 32 + n_kv * 13 > bytes_left:
        raise GGUFError(f"header claims {n_tensors} tensors and {n_kv} metadata pairs, "
                        f"more than the file's {file_size} bytes can hold")
# --8<-- [end:file]


# --8<-- [start:metadata]
def check_value_type(code: int, what: str) -> GGUFValueType:
    if code not in GGUFValueType._value2member_map_:
        raise GGUFError(f"unknown metadata value type {code} for {what}")
    return GGUFValueType(code)


def check_bool(byte: int, what: str) -> bool:
    if byte > 1:
        raise GGUFError(f"bad bool value {byte} for {what}")
    return bool(byte)


def check_nesting(depth: int, what: str) -> None:
    if depth >= MAX_ARRAY_NESTING:
        raise GGUFError(f"arrays nested deeper than {MAX_ARRAY_NESTING} in {what}")


def check_array_count(count: int, elem_type: GGUFValueType, bytes_left: int, what: str) -> None:
    """The smallest possible element (1-byte scalars, 8-byte string lengths, 12-byte sub-array
    headers) bounds how many elements the rest of the file can hold."""
    min_size = {GGUFValueType.STRING: 8, GGUFValueType.ARRAY: 12}.get(
        elem_type, struct.calcsize(SCALAR_FORMATS.get(elem_type, "<B")))
    if count * min_size > bytes_left:
        raise GGUFError(f"array length {count} of {what} runs past the end of the file")


def check_unique(name: str, seen: dict, what: str) -> None:
    """A second 'llama.block_count' or a second 'blk.0.attn_q.weight' would silently win."""
    if name in seen:
        raise GGUFError(f"duplicate {what} '{name}'")


def check_alignment(metadata: dict, types: dict, default: int = GGUF_DEFAULT_ALIGNMENT) -> int:
    """The alignment every tensor offset is a multiple of: a UINT32 power of two."""
    if "general.alignment" not in metadata:
        return default
    value, vtype = metadata["general.alignment"], types["general.alignment"]
    if vtype != GGUFValueType.UINT32 or value == 0 or value & (value - 1):
        raise GGUFError(f"bad general.alignment {value!r}: must be a UINT32 power of two")
    return value
# --8<-- [end:metadata]


# --8<-- [start:tensors]
def check_n_dims(name: str, n_dims: int) -> None:
    if not 1 <= n_dims <= GGML_MAX_DIMS:
        raise GGUFError(f"tensor '{name}' has {n_dims} dimensions (1 to {GGML_MAX_DIMS} allowed)")


def check_ggml_type(name: str, code: int) -> GGMLType:
    """A type code in the ggml type table, as its GGMLType."""
    if code not in GGMLType._value2member_map_ or GGMLType(code) not in TYPE_TABLE:
        raise GGUFError(f"tensor '{name}' has unknown ggml type {code}")
    return GGMLType(code)


def check_tensor_shape(name: str, ne: tuple, ggml_type: GGMLType) -> None:
    """Rows of whole blocks, and fewer elements than any disk could hold."""
    block = TYPE_TABLE[ggml_type][0]
    if ne[0] % block:
        raise GGUFError(f"tensor '{name}' row length {ne[0]} is not a multiple of "
                        f"{ggml_type.name}'s block size {block}")
    n_elements = 1
    for d in ne:
        n_elements *= d  # Python ints: no overflow to hide a lie
    if n_elements >= 1 << 62:
        raise GGUFError(f"tensor '{name}' dimensions {ne} are absurd")


def check_tensor_bytes(name: str, relative: int, nbytes: int, alignment: int,
                       data_offset: int, file_size: int) -> None:
    """The tensor's bytes start on the alignment and end inside the file."""
    if relative % alignment:
        raise GGUFError(f"tensor '{name}' offset {relative} is not a multiple of "
                        f"the alignment {alignment}")
    start = data_offset + relative
    if start + nbytes > file_size:
        raise GGUFError(f"tensor '{name}' data ({nbytes} bytes at offset "
                        f"{start}) runs past the end of the file ({file_size} bytes)")
# --8<-- [end:tensors]
