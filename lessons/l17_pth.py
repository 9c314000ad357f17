# --8<-- [start:intro]
"""Lesson 17: the .pth file, how torch.save stores a checkpoint, read without torch.

A `.pth` (or `.pt`, `.bin` from older transformers) written by torch.save since PyTorch 1.6 is a
zip archive. Every entry sits under one top folder (often "archive/", or the file's stem):

    archive/data.pkl      a pickle of the saved object (a dict of tensors, usually)
    archive/data/0        the raw bytes of storage "0", little-endian, stored uncompressed
    archive/data/1        ...one entry per storage (two tensors may share one storage)
    archive/version       "3": the archive format's version
    archive/byteorder     "little" (newer files; absent in older ones, which are little-endian)

The pickle holds no tensor bytes. Each tensor pickles as a call

    torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)

and each storage as a *persistent id*, the tuple ('storage', torch.FloatStorage, "0", "cpu", numel),
which the unpickler hands to `persistent_load`. So a reader needs: open the zip, find data.pkl,
unpickle it resolving those few names, and view each storage's zip entry as a numpy array.

Worked example, by hand: x = torch.arange(6.).reshape(2, 3).t() saves storage "0" with the six
floats 0..5 and the call _rebuild_tensor_v2(storage, 0, (3, 2), (1, 3), ...). Element [i, j] sits
at storage[0 + i*1 + j*3]: row 1 of x is storage[1], storage[4] = [1.0, 4.0].

A pickle is a program: GLOBAL names any importable function, REDUCE calls it. Unpickling an
untrusted file with pickle.load can run os.system. Our unpickler resolves an allow-list of names
only (to functions of ours, never torch's) and anything else stops the load before it runs.
"""
# --8<-- [end:intro]
from __future__ import annotations

import collections
import io
import os

import numpy as np

from lessons.l16_safetensors import CheckpointError, StoredTensor
from lessons import l17b_pth_checks as checks

# ---- the storage types: torch's class name -> our dtype name and numpy dtype ---------------

# --8<-- [start:storages]
STORAGE_TYPES = {
    "FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16", "DoubleStorage": "F64",
    "LongStorage": "I64", "IntStorage": "I32", "ShortStorage": "I16", "CharStorage": "I8",
    "ByteStorage": "U8", "BoolStorage": "BOOL",
}
# --8<-- [end:storages]


# ---- the tensor rebuilders: what the pickle's REDUCE calls -----------------------------------

# --8<-- [start:rebuild]
def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, hooks=None,
                      metadata=None) -> StoredTensor:
    """torch's _rebuild_tensor_v2, as a numpy strided view of the storage (no copy)."""
    dtype, flat = checks.check_storage(storage).dtype, storage.flat   # flat: [numel] over the zip entry
    size, stride = checks.check_strides(storage_offset, size, stride, flat.size)
    if 0 in size:                                            # empty: nothing to view
        return StoredTensor(dtype, size, np.zeros(size, dtype=flat.dtype))
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[storage_offset:], shape=size,
                                           strides=[s * item for s in stride], writeable=False)
    return StoredTensor(dtype, size, view)                   # [size] element [i..] at offset+sum(i*stride)


def rebuild_parameter(data, requires_grad=False, hooks=None, *state) -> StoredTensor:
    """nn.Parameter(tensor) pickles as _rebuild_parameter(tensor, ...): keep the tensor."""
    checks.check_tensor(data)
    return data
# --8<-- [end:rebuild]


# --8<-- [start:allow_list]
ALLOWED = {  # (module, name) in the pickle -> what it resolves to. Nothing else, ever.
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): checks.StorageType(dtype) for name, dtype in STORAGE_TYPES.items()},
}
# --8<-- [end:allow_list]


# ---- the restricted unpickler ---------------------------------------------------------------

# --8<-- [start:unpickler]
class RestrictedUnpickler(checks.SaferUnpickler):
    """pickle's Unpickler with find_class limited to ALLOWED and storages mapped to zip entries."""
    ALLOWED = ALLOWED

    def __init__(self, data_pkl: bytes, archive: checks.ZipView):
        super().__init__(io.BytesIO(data_pkl))
        self.archive, self.storages = archive, {}

    def find_class(self, module, name):                      # GLOBAL / STACK_GLOBAL land here
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(f"the pickle asks for {str(module)[:40]}.{str(name)[:40]}, "
                                  f"which is not on the allow-list (refused, nothing run)") from None

    def persistent_load(self, pid):                          # ('storage', type, key, location, numel)
        storage_type, key, numel = checks.check_pid(pid)
        if key not in self.storages:
            flat = self.archive.view(f"data/{key}", storage_type.numpy)   # [entry bytes / itemsize]
            if numel > flat.size:
                raise CheckpointError(f"storage {key} claims {numel} elements, its entry holds {flat.size}")
            self.storages[key] = checks.Storage(storage_type.dtype, flat[:numel])
        if self.storages[key].dtype != storage_type.dtype:
            raise CheckpointError(f"storage {key} is named with two dtypes")
        return self.storages[key]
# --8<-- [end:unpickler]


# ---- reading a .pth -------------------------------------------------------------------------

# --8<-- [start:load]
def load_pth(path) -> object:
    """The object torch.save wrote, with every tensor a StoredTensor viewing the file's mmap."""
    path = os.fspath(path)
    with checks.errors_name(path):
        archive = checks.ZipView(path)                       # the zip, checked, over one mmap
        data_pkl = archive.read("data.pkl")
        return RestrictedUnpickler(data_pkl, archive).load()


def read_pth(path) -> dict[str, StoredTensor]:
    """The state dict: the saved dict itself, or the one under "model" / "state_dict"."""
    obj = load_pth(path)
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):                  # llama2.c's train.py: {"model": ...}
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    return checks.check_state_dict(obj, os.fspath(path))
# --8<-- [end:load]
