"""Broken GGUF files: every one must fail with one line (GGUFError / `error: ...`), never a crash,
a traceback, a hang, or an allocation sized by a lie in the file.

Files are built byte by byte here, so each case shows exactly which field lies.
"""
import io
import struct

import numpy as np
import pytest

import run
from lessons.l01_gguf import GGMLType, GGUFError, GGUFFile, write_gguf

U32, U64, STR, ARR = 4, 10, 8, 9


def s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key, value):
    return s(key) + struct.pack("<II", U32, value)


def tensor_info(name, ne, ggml_type=GGMLType.F32, offset=0, n_dims=None):
    n_dims = len(ne) if n_dims is None else n_dims
    return s(name) + struct.pack(f"<I{len(ne)}Q", n_dims, *ne) + struct.pack("<IQ", ggml_type, offset)


def gguf(kvs=(), infos=(), data=b"", version=3, n_tensors=None, n_kv=None, magic=b"GGUF"):
    head = magic + struct.pack("<IQQ", version, len(infos) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    body += b"\0" * (-len(body) % 32)
    return body + data


GOOD = gguf([kv_u32("a.count", 7)], [tensor_info("w", (4, 2))], np.arange(8, dtype=np.float32).tobytes())

CASES = {
    "empty file": b"",
    "wrong magic": b"GGML" + GOOD[4:],
    "version 1": gguf(version=1),
    "version 4": gguf(version=4),
    "big-endian": gguf(version=3 << 24),
    "absurd tensor count": gguf(n_tensors=1 << 60),
    "absurd metadata count": gguf(n_kv=1 << 62),
    "string length past the end": gguf([struct.pack("<Q", 1 << 50) + b"key"]),
    "unknown value type": gguf([s("k") + struct.pack("<I", 99)]),
    "absurd array length": gguf([s("k") + struct.pack("<IIQ", ARR, U32, 1 << 59)]),
    "array of strings past the end": gguf([s("k") + struct.pack("<IIQ", ARR, STR, 3) + s("a")]),
    "deeply nested arrays": gguf([s("k") + struct.pack("<I", ARR) + struct.pack("<IQ", ARR, 1) * 20
                                  + struct.pack("<IQ", U32, 0)]),
    "bad bool": gguf([s("k") + struct.pack("<IB", 7, 5)]),
    "duplicate key": gguf([kv_u32("k", 1), kv_u32("k", 2)]),
    "alignment zero": gguf([kv_u32("general.alignment", 0)]),
    "alignment not a power of two": gguf([kv_u32("general.alignment", 48)]),
    "alignment of the wrong type": gguf([s("general.alignment") + struct.pack("<I", STR) + s("32")]),
    "zero dimensions": gguf(infos=[tensor_info("w", (), n_dims=0)]),
    "five dimensions": gguf(infos=[tensor_info("w", (1, 1, 1, 1, 1))]),
    "absurd dimensions": gguf(infos=[tensor_info("w", (1 << 40, 1 << 40))]),
    "unknown tensor type": gguf(infos=[tensor_info("w", (4,), ggml_type=77)]),
    "row not a whole block": gguf(infos=[tensor_info("w", (33,), ggml_type=GGMLType.Q8_0)]),
    "misaligned offset": gguf(infos=[tensor_info("w", (4,), offset=3)], data=b"\0" * 64),
    "offset past the end": gguf(infos=[tensor_info("w", (4,), offset=1 << 40)], data=b"\0" * 16),
    "data past the end": gguf(infos=[tensor_info("w", (1 << 20,))], data=b"\0" * 16),
    "duplicate tensor": gguf(infos=[tensor_info("w", (4,)), tensor_info("w", (4,), offset=32)],
                             data=b"\0" * 64),
    "truncated in the tensor infos": GOOD[:40],
}


def test_the_good_file_reads(tmp_path):
    path = tmp_path / "good.gguf"
    path.write_bytes(GOOD)
    f = GGUFFile(path)
    assert f.metadata == {"a.count": 7}
    assert np.array_equal(f.tensors["w"].data, np.arange(8, dtype=np.float32).reshape(2, 4))


@pytest.mark.parametrize("case", list(CASES))
def test_reader_rejects(tmp_path, case):
    path = tmp_path / "bad.gguf"
    path.write_bytes(CASES[case])
    with pytest.raises(GGUFError):
        GGUFFile(path)


@pytest.mark.parametrize("case", list(CASES))
def test_run_py_prints_one_line(tmp_path, case):
    path = tmp_path / "bad.gguf"
    path.write_bytes(CASES[case])
    out, err = io.StringIO(), io.StringIO()
    assert run.main(["-m", str(path), "--inspect"], out, err) == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]
    assert out.getvalue() == ""


@pytest.mark.parametrize("cut", range(0, len(GOOD) - 1, 7))
def test_truncated_anywhere(tmp_path, cut):
    path = tmp_path / "cut.gguf"
    path.write_bytes(GOOD[:cut])
    with pytest.raises(GGUFError):
        GGUFFile(path)


def test_mutation_fuzz(tmp_path):
    """Random byte flips, insertions and cuts of a small valid model file: the reader either reads
    it or raises GGUFError; anything else (IndexError, MemoryError, OverflowError...) is a bug."""
    rng = np.random.default_rng(1234)
    base = tmp_path / "base.gguf"
    write_gguf(base, {"general.architecture": "llama", "t.list": [1, 2, 3], "t.strs": ["ab", "c"],
                      "t.f": 0.5, "t.nested": [[1], [2, 3]]},
               [("a", GGMLType.F32, (3, 4), np.ones((3, 4), np.float32)),
                ("b", GGMLType.Q8_0, (2, 32), np.zeros((2, 34), np.uint8))])
    good = base.read_bytes()
    path = tmp_path / "m.gguf"
    outcomes = {"read": 0, "rejected": 0}
    for _ in range(600):
        data = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(0, len(data)))
            kind = rng.integers(0, 4)
            if kind == 0:
                data[pos] = int(rng.integers(0, 256))
            elif kind == 1:  # a plausible-but-wrong count: a large little-endian integer
                data[pos:pos + 8] = struct.pack("<Q", int(rng.integers(0, 1 << 62)))
            elif kind == 2:
                data.insert(pos, int(rng.integers(0, 256)))
            else:
                del data[pos:]
        path.write_bytes(bytes(data))
        try:
            GGUFFile(path)
            outcomes["read"] += 1
        except GGUFError as e:
            assert "\n" not in str(e)
            outcomes["rejected"] += 1
    assert outcomes["rejected"] > 100  # the mutations do break files; the reader notices


def test_missing_path_and_directory(tmp_path):
    for path, words in ((tmp_path / "nope.gguf", "No such file"), (tmp_path, "directory")):
        err = io.StringIO()
        assert run.main(["-m", str(path), "--inspect"], io.StringIO(), err) == 1
        assert err.getvalue().count("\n") == 1 and words in err.getvalue()
