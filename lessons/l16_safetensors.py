# --8<-- [start:intro]
"""Lesson 16: the safetensors file, how Hugging Face stores a checkpoint.

A `.safetensors` file is three parts, nothing else:

    8 bytes      N, the header's length, a little-endian u64
    N bytes      a JSON object (UTF-8): one entry per tensor, plus an optional "__metadata__"
    the rest     the raw data: every tensor's bytes, row-major, little-endian

Each tensor entry names its dtype ("F32", "F16", "BF16", "I64", ...), its shape (outermost first,
as PyTorch and numpy see it) and `data_offsets` [begin, end): byte offsets *relative to the end
of the header*. "__metadata__" maps strings to strings ({"format": "pt"} from transformers).

Worked example, by hand: a file holding one F16 tensor "a" of shape [2] = [1.0, -2.0]:

    header JSON  {"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}   (54 bytes)
    bytes 0-7    36 00 00 00 00 00 00 00          N = 0x36 = 54
    bytes 8-61   the JSON above
    bytes 62-65  00 3c 00 c0                      f16 0x3C00 = 1.0, 0xC000 = -2.0

Big models are split into shards (model-00001-of-00002.safetensors, ...) and a
`model.safetensors.index.json` whose "weight_map" says which shard holds each tensor name.

Nothing is copied: the file is one read-only mmap and each tensor is a numpy view into it.
BF16 has no numpy dtype, so BF16 tensors are viewed as uint16 and widened on demand.
"""
# --8<-- [end:intro]
from __future__ import annotations

import json
import mmap
import os
import stat
from dataclasses import dataclass

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file (safetensors, .pth, llama2.c) is broken, hostile or unsupported."""


# ---- the tensors a reader hands back --------------------------------------------------------

# --8<-- [start:dtypes]
DTYPES = {  # safetensors dtype -> numpy dtype of the view (little-endian, as the format says)
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # no numpy bfloat16: keep the 16 bits, widen in to_f32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
# --8<-- [end:dtypes]


# --8<-- [start:bf16]
def bf16_to_f32(u16: np.ndarray) -> np.ndarray:
    """BF16 is the top half of an F32: put the 16 bits back on top. [..] uint16 -> [..] float32

    By hand: bf16 0x3FC0 -> 0x3FC00000 = sign 0, exponent 0x7F (2^0), mantissa .1000... = 1.5
    """
    wide = np.array(u16, dtype=np.uint32, order="C")  # [..] a C-contiguous copy, 32 bits a value
    return (wide << 16).view(np.float32)               # [..] the same bits read as float32
# --8<-- [end:bf16]


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a checkpoint: its dtype name, its shape and a zero-copy view of its bytes."""
    dtype: str                # "F32" | "F16" | "BF16" | ... (safetensors' names)
    shape: tuple[int, ...]    # outermost first, as PyTorch and numpy see it
    data: np.ndarray          # float32 / float16 / uint16 (BF16) view, shape `shape`

    def to_f32(self) -> np.ndarray:
        """A C-contiguous float32 copy of the values."""
        if self.dtype == "BF16":
            return bf16_to_f32(self.data)
        if self.dtype in FLOAT_DTYPES:
            with np.errstate(over="ignore"):                 # F64 past float32's range -> inf, as torch does
                return np.array(self.data, dtype=np.float32, order="C")
        raise CheckpointError(f"a {self.dtype} tensor of shape {self.shape} holds no float weights")


# ---- one file -------------------------------------------------------------------------------

# --8<-- [start:read]
def read_safetensors(path) -> dict[str, StoredTensor]:
    """Every tensor of one .safetensors file, as zero-copy views over an mmap of it."""
    path = os.fspath(path)
    buf = map_file(path)
    header, data_start = _header(buf, path)
    entries = {name: _check_entry(name, e, path) for name, e in header.items() if name != "__metadata__"}
    _check_layout(entries, len(buf) - data_start, path)
    data = memoryview(buf)[data_start:]                    # the data part; slicing it copies nothing
    tensors = {}
    for name, (dtype, shape, begin, end) in entries.items():
        view = np.frombuffer(data[begin:end], dtype=DTYPES[dtype])          # [n] over the mmap
        tensors[name] = StoredTensor(dtype, shape, view.reshape(shape))                     # [shape]
    return tensors


def read_safetensors_metadata(path) -> dict[str, str]:
    """The header's "__metadata__" object ({} when the file has none)."""
    path = os.fspath(path)
    header, _ = _header(map_file(path), path)
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
    return dict(meta)
# --8<-- [end:read]


# ---- a folder: one file, or shards named by an index ----------------------------------------

# --8<-- [start:folder]
INDEX_NAME = "model.safetensors.index.json"


def read_safetensors_folder(folder) -> dict[str, StoredTensor]:
    """model.safetensors, or every shard that model.safetensors.index.json names."""
    folder = os.fspath(folder)
    index_path = os.path.join(folder, INDEX_NAME)
    if os.path.isfile(index_path):
        weight_map = _weight_map(index_path)               # tensor name -> shard file name
        shards = {f: read_safetensors(os.path.join(folder, f)) for f in dict.fromkeys(weight_map.values())}
        tensors = {}
        for name, shard in weight_map.items():
            if name not in shards[shard]:
                raise CheckpointError(f"{os.path.join(folder, shard)}: has no tensor '{name}' "
                                      f"(the index says it does)")
            tensors[name] = shards[shard][name]
        return tensors
    single = os.path.join(folder, "model.safetensors")
    if os.path.isfile(single):
        return read_safetensors(single)
    raise CheckpointError(f"{folder}: no model.safetensors or {INDEX_NAME}")
# --8<-- [end:folder]


# ---- distrust: everything below checks what the file claims before it is used ----------------

MAX_HEADER = 100_000_000  # the safetensors library's own limit on N


def map_file(path: str, what: str = "safetensors file") -> mmap.mmap:
    """The whole file, read-only, as one mmap; a missing, empty or special file is one error line."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):          # a folder, a FIFO (open would block), ...
            kind = "a directory" if os.path.isdir(path) else "not a regular file"
            raise CheckpointError(f"{path}: is {kind}, not a {what}")
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise CheckpointError(f"{path}: empty file")
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as e:
        raise CheckpointError(f"{path}: {e.strerror or e}") from None


def _header(buf, path: str) -> tuple[dict, int]:
    """Parse the JSON header; returns it and where the data starts. N is checked before reading."""
    if len(buf) < 8:
        raise CheckpointError(f"{path}: {len(buf)} bytes, too short for a safetensors header")
    n = int.from_bytes(buf[:8], "little")
    if n > len(buf) - 8 or n > MAX_HEADER:
        raise CheckpointError(f"{path}: header length {n} runs past the end of the file "
                              f"({len(buf)} bytes); truncated or not a safetensors file")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: header is not valid JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    return header, 8 + n


def _check_entry(name, entry, path: str):
    if not isinstance(entry, dict):
        raise CheckpointError(f"{path}: tensor '{name}' entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPES:
        raise CheckpointError(f"{path}: tensor '{name}' has unknown dtype {str(dtype)[:20]!r}")
    if not _int_list(shape) or any(d < 0 or d >= 1 << 62 for d in shape) or len(shape) > 32:
        raise CheckpointError(f"{path}: tensor '{name}' has a bad shape {str(shape)[:60]}")
    if not _int_list(offsets) or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1]:
        raise CheckpointError(f"{path}: tensor '{name}' has bad data_offsets {str(offsets)[:60]}")
    shape = tuple(shape)
    nbytes = _n_elements(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise CheckpointError(f"{path}: tensor '{name}' {dtype}{list(shape)} needs {nbytes} bytes, "
                              f"data_offsets {offsets} hold {offsets[1] - offsets[0]}")
    return dtype, shape, offsets[0], offsets[1]


def _check_layout(entries: dict, data_size: int, path: str) -> None:
    """Offsets inside the data part, and no two tensors sharing a byte."""
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items())
    last_end, last_name = 0, None
    for begin, end, name in spans:
        if end > data_size:
            raise CheckpointError(f"{path}: tensor '{name}' data [{begin}, {end}) runs past the end "
                                  f"of the file ({data_size} data bytes); truncated?")
        if begin < last_end and begin != end:
            raise CheckpointError(f"{path}: tensors '{last_name}' and '{name}' overlap")
        if end > begin:
            last_end, last_name = end, name


def _weight_map(index_path: str) -> dict[str, str]:
    try:
        with open(index_path, "rb") as f:
            index = json.loads(f.read(MAX_HEADER + 1).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{index_path}: not a valid index ({str(e).splitlines()[0][:80]})") from None
    wm = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wm, dict) or not wm:
        raise CheckpointError(f"{index_path}: no \"weight_map\" object")
    for name, shard in wm.items():
        # A shard is a plain file name beside the index: "../../etc/x" is not a shard.
        if not isinstance(shard, str) or not shard or os.path.basename(shard) != shard or shard in (".", ".."):
            raise CheckpointError(f"{index_path}: tensor '{name}' names a bad shard {str(shard)[:60]!r}")
        if not os.path.isfile(os.path.join(os.path.dirname(index_path), shard)):
            raise CheckpointError(f"{index_path}: shard '{shard}' (for tensor '{name}') is missing")
    return wm


def _int_list(x) -> bool:
    return isinstance(x, list) and all(type(v) is int for v in x)


def _n_elements(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
