"""Fuzzing the file readers: safetensors, .pth (the zip and the pickle), llama2.c, tokenizer.bin,
GGUF and (when present) the SentencePiece tokenizer.model reader.

Each reader gets the committed seed corpus (tests/fixtures/fuzz/, from tools/make_fuzz_seeds.py)
with hypothesis-chosen mutations: bit flips, bytes, 4/8-byte integers set to edge values (sizes,
counts and offsets live there), cuts, deletions, insertions. The properties, for every input:
- the reader returns, or raises its own error class (CheckpointError, GGUFError), nothing else;
- it returns within a few seconds (an interval timer turns a hang into a failure);
- the Python heap it allocates (tracemalloc) stays under 64 x the input's size + 2 MB, whatever
  the header claims; a subprocess replays hostile headers under an address-space limit as well.
The budget is fixed (derandomize=True, no example database): the same examples every run.
"""
import atexit
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ckpt_hostile as H
from lessons.l01_gguf import GGUFError, GGUFFile
from lessons.l16_safetensors import CheckpointError, StoredTensor, read_safetensors, read_safetensors_metadata
from lessons.l17_pth import load_pth
from lessons.l18_llama2c import read_llama2c, read_tokenizer_bin

try:
    from lessons.l19b_tokenizer_import import read_sentencepiece
except ImportError:  # the tokenizer.model reader belongs to another lesson; fuzz it when it is there
    read_sentencepiece = None

SEEDS = Path(__file__).parent / "fixtures" / "fuzz"
WORK = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
atexit.register(shutil.rmtree, WORK, True)
EDGE = [0, 1, 2, 7, 8, 255, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 62, (1 << 63) - 1, (1 << 64) - 1]
FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def seeds(kind):
    return [p.read_bytes() for p in sorted((SEEDS / kind).iterdir())]


# ---- mutations --------------------------------------------------------------------------------

position = st.integers(0, 63) | st.integers(0, 1 << 20)          # headers first, anywhere else too
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(0, 7)),
    st.tuples(st.just("byte"), position, st.integers(0, 255)),
    st.tuples(st.just("int"), position, st.sampled_from([4, 8]), st.sampled_from(EDGE)),
    st.tuples(st.just("cut"), position),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op in ops:
        if not b:
            break
        at = op[1] % len(b)
        if op[0] == "flip":
            b[at] ^= 1 << op[2]
        elif op[0] == "byte":
            b[at] = op[2]
        elif op[0] == "int":
            raw = (op[3] % (1 << 8 * op[2])).to_bytes(op[2], "little")
            b[at:at + op[2]] = raw
        elif op[0] == "cut":
            del b[at:]
        elif op[0] == "delete":
            del b[at:at + op[2]]
        else:
            b[at:at] = op[2]
    return bytes(b)


def mutated(kind):
    return st.tuples(st.sampled_from(seeds(kind)), st.lists(mutation, min_size=1, max_size=4))


# ---- the harness: allowed errors only, no hang, bounded heap --------------------------------------

class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("reader ran past its time limit")


def check(read, data: bytes, allowed, name="input.bin"):
    path = WORK / name
    path.write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 10.0)
    tracemalloc.start()
    try:
        read(path)
    except allowed as e:
        assert "\n" not in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert peak < 64 * len(data) + (2 << 20), f"{peak} bytes of heap for a {len(data)}-byte input"


def touch(obj):
    """Read every value a reader handed back (a bad view would fault or raise here)."""
    if isinstance(obj, StoredTensor):
        if obj.dtype in ("F32", "F16", "BF16", "F64"):
            obj.to_f32()
        else:
            np.array(obj.data)
    elif isinstance(obj, dict):
        for v in obj.values():
            touch(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            touch(v)


def read_st(p):
    touch(read_safetensors(p))
    read_safetensors_metadata(p)


def read_gguf(p):
    with GGUFFile(p) as g:
        for info in g.tensors.values():
            np.array(info.data)


# ---- the properties ---------------------------------------------------------------------------------

def test_seeds_are_valid():
    for data in seeds("safetensors"):
        check(read_st, data, ())
    for data in seeds("pth"):
        check(lambda p: touch(load_pth(p)), data, (), "x.pth")
    for data in seeds("llama2c"):
        check(lambda p: touch(read_llama2c(p)), data, ())
    check(lambda p: read_tokenizer_bin(p, 8), seeds("tokenizer_bin")[0], ())
    check(read_gguf, seeds("gguf")[0], ())


@FUZZ
@given(mutated("safetensors"))
def test_fuzz_safetensors(case):
    check(read_st, mutate(*case), CheckpointError)


number = st.sampled_from(EDGE) | st.integers(-4, 40) | st.sampled_from([True, 1.5, "8", None])
st_entry = st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F8_E4M3", "", None, 3]),
    "shape": st.lists(number, max_size=4) | number,
    "data_offsets": st.lists(number, max_size=3) | number})
st_header = st.dictionaries(st.sampled_from(["a", "b", "c", "__metadata__"]), st_entry, max_size=4)


@FUZZ
@given(st_header, st.integers(0, 96))
def test_fuzz_safetensors_headers(header, n_data):
    """Structure-aware: well-formed JSON whose claims (dtypes, shapes, offsets) are anything."""
    raw = json.dumps(header).encode()
    check(read_st, struct.pack("<Q", len(raw)) + raw + bytes(range(n_data)), CheckpointError)


@FUZZ
@given(mutated("pth"))
def test_fuzz_pth_zip(case):
    check(lambda p: touch(load_pth(p)), mutate(*case), CheckpointError, "x.pth")


def rezip(seed: bytes, new_pkl) -> bytes:
    """The same archive with data.pkl replaced: mutations that always land in the pickle."""
    src = WORK / "seed.pth"
    src.write_bytes(seed)
    with zipfile.ZipFile(src) as z:
        names = z.namelist()
        top = names[0].split("/")[0]
        storages = {n.split("/data/")[1]: z.read(n) for n in names if "/data/" in n}
        pkl = z.read(f"{top}/data.pkl")
    H.write_pth(src, new_pkl(pkl), storages, top=top)
    return src.read_bytes()


@FUZZ
@given(mutated("pth"))
def test_fuzz_pickle_bytes(case):
    seed, ops = case
    check(lambda p: touch(load_pth(p)), rezip(seed, lambda pkl: mutate(pkl, ops)), CheckpointError, "x.pth")


FRAGMENTS = [H.MARK, H.TUPLE, H.EMPTY_TUPLE, H.EMPTY_DICT, H.EMPTY_LIST, H.SETITEMS, H.APPENDS, H.REDUCE,
             H.BUILD, H.BINPERSID, H.NONE, H.NEWFALSE, H.STACK_GLOBAL, H.MEMOIZE, b"h\x00", b"r\xff\xff\xff\x7f",
             b"2", b"0", b"\x85", b"\x86", b"\x87", b"s", b"a", b"o", b"\x81", b"i", b"P0\n",
             H.S("storage"), H.S("0"), H.S("os"), H.S("system"), H.S("touch PWNED"), H.I(0), H.I(4), H.I(-1),
             H.I(1 << 62), H.G("torch._utils", "_rebuild_tensor_v2"), H.G("torch", "FloatStorage"),
             H.G("collections", "OrderedDict"), H.G("os", "system"), H.G("builtins", "getattr"),
             H.storage(), H.tensor(), H.tensor(size=(2, 2), stride=(2, 1)), H.F(1.5)]


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=24))
def test_fuzz_pickle_programs(parts):
    """Random programs for the pickle machine, built from the opcodes a checkpoint uses and abuses."""
    marker = Path.cwd() / "PWNED"
    data = rezip(seeds("pth")[1], lambda pkl: H.program(b"".join(parts)))
    check(lambda p: touch(load_pth(p)), data, CheckpointError, "x.pth")
    assert not marker.exists()


@FUZZ
@given(mutated("llama2c"))
def test_fuzz_llama2c(case):
    check(lambda p: touch(read_llama2c(p)), mutate(*case), CheckpointError)


@FUZZ
@given(mutated("tokenizer_bin"), st.sampled_from([0, 1, 8, 9, 1 << 20]))
def test_fuzz_tokenizer_bin(case, vocab):
    check(lambda p: read_tokenizer_bin(p, vocab), mutate(*case), CheckpointError)


@FUZZ
@given(mutated("gguf"))
def test_fuzz_gguf(case):
    check(read_gguf, mutate(*case), GGUFError, "x.gguf")


@pytest.mark.skipif(read_sentencepiece is None, reason="no tokenizer.model reader (lesson 19b) here")
@FUZZ
@given(mutated("spm"))
def test_fuzz_sentencepiece(case):
    check(lambda p: read_sentencepiece(p.read_bytes()), mutate(*case), CheckpointError, "tokenizer.model")


# ---- whatever the header claims, under an address-space limit -------------------------------------

LIMITED = r"""
import resource, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
import numpy as np
from test_fuzz_readers import READERS, seeds
BIG = [0x7FFFFFFF, 0xFFFFFFFF, 1 << 40, 1 << 62, (1 << 64) - 1]
status = open("/proc/self/status").read()
vm = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmSize"))) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (256 << 20), vm + (256 << 20)))
try:                                                          # the limit is real: 512 MB fails
    np.ones(512 << 20, np.uint8)
    sys.exit("the address-space limit did not hold")
except MemoryError:
    pass
n = 0
for kind, (read, allowed) in READERS.items():
    for seed in seeds(kind):
        for at in range(0, min(len(seed), 64), 4):          # every 4-byte header field ...
            for value in BIG:                                 # ... set to every huge value
                for width in (4, 8):
                    b = bytearray(seed)
                    b[at:at + width] = (value % (1 << 8 * width)).to_bytes(width, "little")
                    path = sys.argv[2]
                    open(path, "wb").write(bytes(b))
                    try:
                        read(__import__("pathlib").Path(path))
                    except allowed:
                        pass
                    n += 1
print("replayed", n)
"""

READERS = {"safetensors": (read_st, CheckpointError),
           "pth": (lambda p: touch(load_pth(p)), CheckpointError),
           "llama2c": (lambda p: touch(read_llama2c(p)), CheckpointError),
           "tokenizer_bin": (lambda p: read_tokenizer_bin(p, 8), CheckpointError),
           "gguf": (read_gguf, GGUFError)}


def test_edge_headers_under_address_space_limit(tmp_path):
    """Every header field set to huge values, in a process that cannot map 256 MB more."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[1])
    r = subprocess.run([sys.executable, "-c", LIMITED, root, str(tmp_path / "x.bin")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("replayed")
