"""Lesson 17b: distrusting a .pth: the zip, the pickle machine and the tensors' claims.

Lesson 17 reads a .pth the way torch.save wrote it. This module holds what stands between that
reader and a hostile or broken file:

- the zip: every entry we read is stored (not compressed), lies inside the file, and is viewed in
  place from one mmap, so a zip bomb or a lying size cannot allocate anything;
- the pickle machine: Python's pure-Python unpickler (its memo is a dict: the C one grows an array
  to whatever memo index a file names, gigabytes from 5 bytes), with the opcodes a tensor
  checkpoint never needs switched off (BUILD outside OrderedDict, INST/OBJ/NEWOBJ, extensions),
  and REDUCE allowed to call only the allow-listed functions;
- the tensors: persistent ids, offsets, sizes and strides checked against the storage's size.
"""
from __future__ import annotations

import collections
import contextlib
import pickle
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from lessons.l16_safetensors import DTYPES, CheckpointError, StoredTensor, map_file

MAX_DIMS = 32  # numpy's limit; a checkpoint's tensors have 1 to 4


@dataclass(frozen=True)
class StorageType:
    """What GLOBAL torch.FloatStorage (etc.) resolves to: a name, deliberately not callable."""
    dtype: str

    @property
    def numpy(self) -> np.dtype:
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class Storage:
    """A storage as persistent_load hands it back: made only there, never by the pickle."""
    dtype: str
    flat: np.ndarray  # [numel] view of the zip entry


def check_storage(x) -> Storage:
    if not isinstance(x, Storage):
        raise CheckpointError(f"_rebuild_tensor_v2 got a {type(x).__name__} for its storage")
    return x


# ---- errors: one line, naming the file ------------------------------------------------------

@contextlib.contextmanager
def errors_name(path: str):
    """Any failure inside becomes one CheckpointError line that starts with the file's name."""
    try:
        yield
    except CheckpointError as e:
        msg = str(e)
        raise CheckpointError(msg if msg.startswith(path) else f"{path}: {msg}") from None
    except Exception as e:  # zipfile, struct, the pickle machine: all mean "broken file"
        detail = (str(e).splitlines() or [""])[0][:100]
        raise CheckpointError(f"{path}: broken .pth ({type(e).__name__}: {detail})") from None


# ---- the zip, viewed in place ---------------------------------------------------------------

LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # pickle protocol 2, then the long that pre-1.6 torch.save wrote


class ZipView:
    """The .pth's zip over one read-only mmap; entries by their name under the top folder."""

    def __init__(self, path: str):
        self.buf = map_file(path, ".pth file")
        if self.buf[:4] == LEGACY_MAGIC:
            raise CheckpointError("a pre-1.6 torch.save file (not a zip); re-save it with a newer "
                                  "PyTorch")
        if len(self.buf) < 22 or not zipfile.is_zipfile(self.buf):  # 22: the end-of-zip record
            raise CheckpointError("not a zip archive, so not a torch.save .pth")
        with zipfile.ZipFile(self.buf) as z:
            infos = z.infolist()
        tops = {i.filename.split("/", 1)[0] for i in infos if i.filename.endswith("/data.pkl")
                and i.filename.count("/") == 1}
        if len(tops) != 1:
            raise CheckpointError(f"expected one */data.pkl in the zip, found {len(tops)}")
        self.top = tops.pop()
        self.infos = {i.filename[len(self.top) + 1:]: i for i in infos
                      if i.filename.startswith(self.top + "/")}
        order = bytes(self.read("byteorder")) if "byteorder" in self.infos else b"little"
        if order.strip() != b"little":
            raise CheckpointError(f"byte order {order[:10]!r}: only little-endian files are read")

    def read(self, name: str) -> memoryview:
        """The bytes of entry top/name, in place (the entry must be stored, not compressed)."""
        info = self.infos.get(name)
        if info is None:
            raise CheckpointError(f"entry {self.top}/{name} is missing from the zip")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise CheckpointError(f"entry {info.filename} is compressed; torch.save stores "
                                  f"entries uncompressed")
        at, size = info.header_offset, len(self.buf)
        if at + 30 > size or self.buf[at:at + 4] != b"PK\x03\x04":
            raise CheckpointError(f"entry {info.filename}: bad local header")
        name_len = int.from_bytes(self.buf[at + 26:at + 28], "little")
        extra_len = int.from_bytes(self.buf[at + 28:at + 30], "little")
        start = at + 30 + name_len + extra_len                 # torch pads `extra` to align to 64
        if start + info.file_size > size:
            raise CheckpointError(f"entry {info.filename} runs past the end of the file")
        return memoryview(self.buf)[start:start + info.file_size]

    def view(self, name: str, dtype: np.dtype) -> np.ndarray:
        raw = self.read(name)
        if len(raw) % dtype.itemsize:
            raise CheckpointError(f"entry {self.top}/{name}: {len(raw)} bytes is not a whole "
                                  f"number of {dtype.itemsize}-byte elements")
        return np.frombuffer(raw, dtype=dtype)                 # [n] read-only, over the mmap


# ---- the pickle machine, with the dangerous opcodes off -------------------------------------

def _refuse(opname):
    def op(self):
        raise CheckpointError(f"pickle opcode {opname} is not allowed in a checkpoint")
    return op


def _load_reduce(self):
    """REDUCE: call stack[-2](*stack[-1]), but only an allow-listed function."""
    args = self.stack.pop()
    func = self.stack[-1]
    if not any(func is allowed for allowed in self.allowed_callables()):
        raise CheckpointError(f"pickle REDUCE on {type(func).__name__}, not an allow-listed function")
    if type(args) is not tuple:
        raise CheckpointError(f"pickle REDUCE with {type(args).__name__} arguments, not a tuple")
    self.stack[-1] = func(*args)


def _load_build(self):
    """BUILD sets an object's state: an OrderedDict's (torch keeps `_metadata` there) is dropped."""
    self.stack.pop()
    if type(self.stack[-1]) is not collections.OrderedDict:
        raise CheckpointError(f"pickle BUILD on a {type(self.stack[-1]).__name__} is not allowed")


class SaferUnpickler(pickle._Unpickler):  # the pure-Python unpickler: see the module docstring
    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    for _op in ("INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"):
        dispatch[getattr(pickle, _op)[0]] = _refuse(_op)

    def allowed_callables(self):
        return [v for v in self.ALLOWED.values() if callable(v)]


# ---- the tensors' claims --------------------------------------------------------------------

KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


def check_pid(pid):
    """('storage', StorageType, key, location, numel) -> (type, key, numel), or refuse."""
    if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
        raise CheckpointError(f"unknown persistent id {str(pid)[:60]}")
    _, storage_type, key, _, numel = pid
    if not isinstance(storage_type, StorageType):
        raise CheckpointError(f"persistent id names a storage type {str(storage_type)[:40]}")
    if type(key) is not str or not KEY.fullmatch(key):
        raise CheckpointError(f"bad storage key {str(key)[:40]!r}")
    if type(numel) is not int or numel < 0:
        raise CheckpointError(f"storage {key}: bad element count {str(numel)[:40]}")
    return storage_type, key, numel


def check_strides(offset, size, stride, numel):
    """The last element a (size, stride) view at offset reaches must lie inside the storage."""
    if type(size) not in (tuple, list) or type(stride) not in (tuple, list):
        raise CheckpointError("tensor size and stride must be tuples")
    size, stride = tuple(size), tuple(stride)
    if not all(type(v) is int and 0 <= v < 1 << 62 for v in (offset, *size, *stride)):
        raise CheckpointError(f"tensor offset/size/stride {offset}/{size}/{stride} out of range"[:120])
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise CheckpointError(f"tensor size {size[:8]} and stride {stride[:8]} do not match")
    if 0 not in size:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= numel:
            raise CheckpointError(f"tensor of size {size} stride {stride} at offset {offset} "
                                  f"reaches element {last}, past its storage of {numel}")
        if np.prod(size, dtype=object) > numel:  # stride 0 repeats elements: a copy could be huge
            raise CheckpointError(f"tensor of size {size} has more elements than its storage ({numel})")
    return size, stride


def check_tensor(x) -> None:
    if not isinstance(x, StoredTensor):
        raise CheckpointError(f"expected a tensor, the pickle gave a {type(x).__name__}")


def check_state_dict(obj, path: str) -> dict[str, StoredTensor]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    for k, v in obj.items():
        if type(k) is not str or not isinstance(v, StoredTensor):
            raise CheckpointError(f"{path}: entry {str(k)[:60]!r} is a {type(v).__name__}, "
                                  f"not a tensor; not a state dict")
    return dict(obj)
