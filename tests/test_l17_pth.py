"""Lesson 17: .pth files read without torch, checked against files torch.save really wrote.

tests/fixtures/pth/ was written by tools/make_pth_fixtures.py with PyTorch 2.13; expected.npz
holds the values torch had in memory (float32 / int64), expected.json the plain values.
Hostile files are hand-assembled pickles (tests/ckpt_hostile.py) in a torch.save-like zip.
"""
import collections
import json
import os
import pickle
import subprocess  # noqa: F401  (named by a hostile pickle below)
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lessons.l16_safetensors import CheckpointError, StoredTensor
from lessons.l17_pth import load_pth, read_pth
import ckpt_hostile as H

FIX = Path(__file__).parent / "fixtures" / "pth"
EXPECTED = np.load(FIX / "expected.npz")
PLAIN = json.loads((FIX / "expected.json").read_text())


def flatten(obj, prefix, out):
    """Our object, flattened like the tool flattened torch's: path -> float32 / int64 array."""
    if isinstance(obj, StoredTensor):
        out[prefix] = obj.to_f32() if obj.dtype in ("F32", "F16", "BF16", "F64") else obj.data.astype(np.int64)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}/{i}", out)


FILES = ["f32.pth", "f16.pth", "bf16.pth", "ints.pth", "strided.pth", "shared.pth", "train_ckpt.pth"]


@pytest.mark.parametrize("name", FILES)
def test_torch_written_files_equal_torch_values(name):
    ours = {}
    flatten(load_pth(FIX / name), name, ours)
    theirs = {k: EXPECTED[k] for k in EXPECTED.files if k.startswith(name + "/")}
    assert theirs and set(ours) == set(theirs)
    for k in theirs:
        assert ours[k].shape == theirs[k].shape, k
        assert np.array_equal(ours[k], theirs[k]), k


def test_dtypes_and_zero_copy():
    sd = read_pth(FIX / "bf16.pth")
    assert sd["a"].dtype == "BF16" and sd["a"].data.dtype == np.uint16
    assert read_pth(FIX / "f16.pth")["a"].data.dtype == np.float16
    a = read_pth(FIX / "f32.pth")["a"]
    assert a.dtype == "F32" and a.shape == (3, 4)
    assert not a.data.flags.owndata and not a.data.flags.writeable


def test_views_strides_and_shared_storage():
    sd = read_pth(FIX / "strided.pth")
    base = sd["base"].data
    assert not sd["t"].data.flags.c_contiguous and sd["t"].to_f32().flags.c_contiguous
    assert np.shares_memory(sd["t"].data, base) and np.shares_memory(sd["cols"].data, base)
    assert np.array_equal(sd["t"].data, base.T) and np.array_equal(sd["cols"].data, base[1:, ::2])
    tied = read_pth(FIX / "shared.pth")
    assert np.shares_memory(tied["emb"].data, tied["out"].data)   # one storage, two names
    assert isinstance(load_pth(FIX / "shared.pth"), collections.OrderedDict)


def test_train_py_checkpoint():
    obj = load_pth(FIX / "train_ckpt.pth")
    want = PLAIN["train_ckpt.pth"]
    assert obj["model_args"] == want["model_args"] and obj["iter_num"] == want["iter_num"]
    assert obj["config"] == want["config"]
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
              for g in obj["optimizer"]["param_groups"]]
    assert groups == want["param_groups"]
    sd = read_pth(FIX / "train_ckpt.pth")                     # the state dict under "model"
    assert set(sd) == {"0.weight", "0.bias", "1.weight"}
    assert np.array_equal(sd["0.weight"].to_f32(), EXPECTED["train_ckpt.pth/model/0.weight"])


def test_legacy_format_refused():
    with pytest.raises(CheckpointError, match="pre-1.6"):
        load_pth(FIX / "legacy.pth")


def test_docstring_worked_example(tmp_path):
    """x = arange(6.).reshape(2, 3).t(): storage 0..5, size (3, 2), stride (1, 3); row 1 = [1, 4]."""
    pkl = H.program(H.dict_(x=H.tensor("0", 0, (3, 2), (1, 3), numel=6)))
    p = H.write_pth(tmp_path / "x.pth", pkl, {"0": np.arange(6, dtype="<f4").tobytes()})
    x = read_pth(p)["x"]
    assert x.shape == (3, 2) and x.data[1].tolist() == [1.0, 4.0]
    assert np.array_equal(x.data, np.arange(6.0).reshape(2, 3).T)


# ---- hostile pickles: refused before anything runs ---------------------------------------------

def storages():
    return {"0": np.arange(4, dtype="<f4").tobytes()}


def refuse(path, match=None):
    with pytest.raises(CheckpointError, match=match) as e:
        read_pth(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    return msg


class Evil:
    """What a malicious checkpoint carries: unpickling calls cmd via __reduce__."""
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def evil_payloads(marker):
    return [Evil(os.system, f"touch {marker}"), Evil(eval, f"open({str(marker)!r}, 'w')"),
            Evil(exec, f"open({str(marker)!r}, 'w')"), Evil(subprocess.call, ["touch", str(marker)]),
            Evil(__import__, "os"), Evil(getattr, Evil(__import__, "os"), "system"), Evil(open, str(marker), "w")]


@pytest.mark.parametrize("i", range(7))
def test_reduce_payloads_never_run(tmp_path, i):
    marker = tmp_path / "PWNED"
    payload = evil_payloads(marker)[i]
    pkl = pickle.dumps({"w": payload}, protocol=2)
    p = H.write_pth(tmp_path / "evil.pth", pkl, storages())
    assert "not on the allow-list" in refuse(p)
    assert not marker.exists()
    pickle.loads(pkl) if i == 0 else None                      # the same bytes DO run under pickle
    assert marker.exists() == (i == 0)


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("builtins", "__import__"), ("__builtin__", "eval"), ("subprocess", "Popen"),
    ("importlib", "import_module"), ("copyreg", "_reconstructor"), ("torch.storage", "_load_from_bytes"),
    ("torch", "load"), ("numpy.core.multiarray", "_reconstruct"), ("collections", "defaultdict"),
    ("torch._utils", "_rebuild_tensor"), ("torch._utils", "__builtins__"), ("torch", "FloatStorage.x"),
])
def test_globals_outside_allow_list(tmp_path, module, name):
    pkl = H.program(H.dict_(w=H.call(H.G(module, name), H.S("x"))))
    refuse(H.write_pth(tmp_path / "g.pth", pkl, storages()), "not on the allow-list")


T = H.tensor()
OD = H.call(H.G("collections", "OrderedDict"))
TRICKS = {
    # REDUCE whose callable is the result of another REDUCE
    "reduce-on-reduce-result": H.call(OD, H.S("x")),
    "reduce-on-tensor": H.call(T),
    "reduce-on-storage-type": H.call(H.G("torch", "FloatStorage"), H.I(4)),
    "reduce-args-not-tuple": H.G("collections", "OrderedDict") + H.EMPTY_LIST + H.REDUCE,
    # BUILD setting the state of something that is not an OrderedDict
    "build-on-tensor": T + H.dict_(shape=H.tup(H.I(10 ** 9))) + H.BUILD,
    "build-on-dict": H.dict_() + H.dict_(__class__=H.S("x")) + H.BUILD,
    # STACK_GLOBAL with names pushed as strings and through the memo, or not strings at all
    "stack-global": H.S("os") + H.MEMOIZE + H.S("system") + H.MEMOIZE + H.STACK_GLOBAL,
    "stack-global-memo": H.S("posix") + H.MEMOIZE + H.S("system") + H.MEMOIZE + b"h\x00h\x01" + H.STACK_GLOBAL,
    "stack-global-not-str": H.I(1) + H.I(2) + H.STACK_GLOBAL,
    # the object-building opcodes a tensor checkpoint never needs
    "inst": H.MARK + H.S("touch x") + b"ios\nsystem\n",
    "obj": H.MARK + H.G("collections", "OrderedDict") + b"o",
    "newobj": H.G("collections", "OrderedDict") + H.EMPTY_TUPLE + b"\x81",
    "ext1": b"\x82\x01",
    "ext4": b"\x84\x01\x00\x00\x00",
    # persistent ids that are not torch storages
    "pid-not-storage": H.tup(H.S("module"), H.S("os"), H.S("0"), H.S("cpu"), H.I(4)) + H.BINPERSID,
    "pid-type-is-str": H.tup(H.S("storage"), H.S("FloatStorage"), H.S("0"), H.S("cpu"), H.I(4)) + H.BINPERSID,
    "pid-path-key": H.storage(key="../../etc/passwd"),
    "pid-text": b"P0\n",
    "rebuild-fake-storage": H.call(H.G("torch._utils", "_rebuild_tensor_v2"), H.tup(H.S("F32"), H.NONE),
                                   H.I(0), H.tup(H.I(1)), H.tup(H.I(1)), H.NEWFALSE, H.NONE),
}


@pytest.mark.parametrize("trick", list(TRICKS))
def test_nested_tricks_refused(tmp_path, trick):
    pkl = H.program(H.dict_(w=TRICKS[trick]))
    refuse(H.write_pth(tmp_path / "t.pth", pkl, storages()))


def test_build_on_ordereddict_state_is_dropped(tmp_path):
    od = OD + H.dict_(_metadata=H.dict_(), __class__=H.S("x")) + H.BUILD
    pkl = H.program(H.dict_(w=T, meta=od))
    obj = load_pth(H.write_pth(tmp_path / "b.pth", pkl, storages()))
    assert type(obj["meta"]) is collections.OrderedDict and not obj["meta"].__dict__


# ---- broken storages, shapes and zips -----------------------------------------------------------

@pytest.mark.parametrize("tensor, match", [
    (H.tensor(key="7"), "data/7 is missing"),
    (H.tensor(size=(3, 3), stride=(3, 1)), "past its storage"),
    (H.tensor(size=(2,), stride=(1,), offset=3), "past its storage"),
    (H.tensor(size=(1 << 40, 1 << 40), stride=(1 << 20, 1)), "past its storage"),
    (H.tensor(size=(4,), stride=(-1,)), "out of range"),
    (H.tensor(size=(1 << 40,), stride=(0,)), "more elements than its storage"),  # 4 TB from 16 bytes
    (H.tensor(size=(2, 2), stride=(0, 1), numel=4), None),                     # 4 of 4: allowed
    (H.tensor(size=(4,), stride=(1 << 63,)), "out of range"),
    (H.tensor(offset=-1), "out of range"),
    (H.tensor(size=(2, 2), stride=(1,)), "do not match"),
    (H.tensor(numel=100), "claims 100 elements"),
    (H.tensor(typ="DoubleStorage", numel=2, size=(2,)), None),        # 16 bytes = 2 doubles: fine
    (H.tup(H.tensor(), H.tensor(typ="HalfStorage")), "two dtypes"),   # one key, two dtypes
])
def test_bad_tensor_claims(tmp_path, tensor, match):
    p = H.write_pth(tmp_path / "s.pth", H.program(H.dict_(w=tensor)), storages())
    if match is None:
        assert read_pth(p)["w"].shape in ((2,), (2, 2))
    else:
        refuse(p, match)


def test_broken_zips(tmp_path):
    good = H.program(H.dict_(w=T))
    refuse(H.write_pth(tmp_path / "c.pth", good, storages(), compress=True), "compressed")
    refuse(H.write_pth(tmp_path / "b.pth", good, storages(), byteorder=b"big"), "little-endian")
    assert read_pth(H.write_pth(tmp_path / "o.pth", good, storages(), byteorder=None))["w"].shape == (4,)
    refuse(H.write_pth(tmp_path / "odd.pth", good, {"0": b"\0" * 15}), "whole number")
    two = H.write_pth(tmp_path / "two.pth", good, storages(), extra={"other/data.pkl": good})
    refuse(two, "found 2")
    whole = H.write_pth(tmp_path / "w.pth", good, storages()).read_bytes()
    for cut in (len(whole) // 2, len(whole) - 30, 40):
        (tmp_path / "cut.pth").write_bytes(whole[:cut])
        refuse(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_bytes(b"hello")
    refuse(tmp_path / "text.pth", "not a zip")
    refuse(H.write_pth(tmp_path / "nostop.pth", good[:-1], storages()), "broken")
    refuse(H.write_pth(tmp_path / "list.pth", H.program(H.EMPTY_LIST), storages()), "not a dict")
    refuse(H.write_pth(tmp_path / "val.pth", H.program(H.dict_(w=H.I(3))), storages()), "not a tensor")
    with pytest.raises(CheckpointError, match="No such file"):
        read_pth(tmp_path / "missing.pth")


def test_memo_index_allocates_nothing(tmp_path):
    """LONG_BINPUT 0xFFFFFFF0: the C unpickler would grow its memo array to that index."""
    pkl = H.program(H.dict_(w=T) + b"r\xf0\xff\xff\xff")
    p = H.write_pth(tmp_path / "m.pth", pkl, storages())
    tracemalloc.start()
    try:
        assert read_pth(p)["w"].shape == (4,)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# ---- the exercise of docs/17-pth.md: list a pickle's globals without running it ----------------

def test_exercise_list_globals(tmp_path):
    """Checker: your static list must equal the names the unpickler really asks for."""
    import zipfile

    import ckpt_exercises
    from lessons.l17_pth import RestrictedUnpickler
    list_globals = ckpt_exercises.solution("list_globals")
    asked = []

    class Recording(RestrictedUnpickler):
        def find_class(self, module, name):
            asked.append((module, name))
            return super().find_class(module, name)

    from lessons.l17b_pth_checks import ZipView
    for name in FILES:
        asked.clear()
        view = ZipView(str(FIX / name))
        Recording(bytes(view.read("data.pkl")), view).load()
        with zipfile.ZipFile(FIX / name) as z:
            pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
        assert list_globals(pkl) == set(asked), name
    evil = H.program(H.dict_(w=T, x=H.S("os") + H.S("system") + H.STACK_GLOBAL))
    assert list_globals(evil) == {("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
                                  ("collections", "OrderedDict"), ("os", "system")}


def test_fifo_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.pth")
    refuse(tmp_path / "pipe.pth", "not a regular file")
