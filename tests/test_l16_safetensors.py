"""Lesson 16: safetensors files, checked against files the `safetensors` package wrote.

The oracle for reading is the safetensors library's own numpy writer; for BF16 it is the float64
value of the bf16 bit pattern computed from its fields (sign, exponent, mantissa), not the shift.
"""
import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from lessons.l16_safetensors import (CheckpointError, StoredTensor, bf16_to_f32, read_safetensors,
                                     read_safetensors_folder, read_safetensors_metadata)

RNG = np.random.default_rng(16)


def bf16_value(bits: int) -> float:
    """The float64 value of a bf16 bit pattern, from its fields (1 sign, 8 exponent, 7 mantissa)."""
    sign = -1.0 if bits >> 15 else 1.0
    exp, man = (bits >> 7) & 0xFF, bits & 0x7F
    if exp == 0xFF:
        return sign * np.inf if man == 0 else np.nan
    if exp == 0:
        return sign * man / 128 * 2.0 ** -126
    return sign * (1 + man / 128) * 2.0 ** (exp - 127)


# ---- the worked example of the docstring, by hand -------------------------------------------

def test_docstring_worked_example(tmp_path):
    header = b'{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}'
    assert len(header) == 0x36 == 54
    raw = struct.pack("<Q", 54) + header + bytes([0x00, 0x3C, 0x00, 0xC0])
    (tmp_path / "a.safetensors").write_bytes(raw)
    t = read_safetensors(tmp_path / "a.safetensors")["a"]
    assert (t.dtype, t.shape) == ("F16", (2,))
    assert t.to_f32().tolist() == [1.0, -2.0]
    # and the library agrees with our hand-made bytes
    save_file({"a": np.array([1.0, -2.0], np.float16)}, tmp_path / "lib.safetensors")
    assert read_safetensors(tmp_path / "lib.safetensors")["a"].to_f32().tolist() == [1.0, -2.0]


@pytest.mark.parametrize("bits, value", [(0x3FC0, 1.5), (0x3F80, 1.0), (0xC000, -2.0),
                                         (0x4049, 3.140625), (0x0000, 0.0), (0x7F80, np.inf)])
def test_bf16_worked_examples(bits, value):
    assert bf16_to_f32(np.array([bits], np.uint16))[0] == value == bf16_value(bits)


def test_bf16_every_pattern_against_float64_fields():
    bits = np.arange(1 << 16, dtype=np.uint16)
    got = bf16_to_f32(bits)                                    # float32 (NaNs kept as float32)
    want = np.array([bf16_value(int(b)) for b in bits])        # float64 from the fields
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan) and nan.sum() == 2 * 127
    assert np.array_equal(got[~nan].astype(np.float64), want[~nan])


def test_bf16_is_the_top_half_of_float32():
    x = RNG.standard_normal(1000).astype(np.float32)
    top = (x.view(np.uint32) >> 16).astype(np.uint16)         # truncate: the bf16 below x
    assert np.array_equal(bf16_to_f32(top), (x.view(np.uint32) & 0xFFFF0000).view(np.float32))


# ---- files the safetensors library wrote ---------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64, np.int32, np.uint8, np.bool_])
def test_reads_library_files(tmp_path, dtype):
    arrays = {"w": (RNG.standard_normal((3, 5)) * 10).astype(dtype),
              "v": (RNG.standard_normal(7) * 10).astype(dtype), "scalar": np.array(3, dtype=dtype),
              "empty": np.zeros((0, 4), dtype=dtype)}
    save_file(arrays, tmp_path / "m.safetensors", metadata={"format": "pt", "who": "test"})
    got = read_safetensors(tmp_path / "m.safetensors")
    assert set(got) == set(arrays)
    for name, x in arrays.items():
        assert got[name].shape == x.shape
        assert got[name].data.dtype == x.dtype and np.array_equal(got[name].data, x)
    assert read_safetensors_metadata(tmp_path / "m.safetensors") == {"format": "pt", "who": "test"}
    if np.dtype(dtype).kind == "f":
        f32 = got["w"].to_f32()
        assert f32.dtype == np.float32 and f32.flags.c_contiguous
        assert np.array_equal(f32, arrays["w"].astype(np.float32))
    else:
        with pytest.raises(CheckpointError, match="no float weights"):
            got["w"].to_f32()


def test_bf16_file_from_bits(tmp_path):
    # the library's numpy API has no bf16 array: write F32 then relabel the header by hand
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    bits = (x.view(np.uint32) >> 16).astype(np.uint16)
    header = json.dumps({"b": {"dtype": "BF16", "shape": [4, 6], "data_offsets": [0, bits.nbytes]}}).encode()
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    t = read_safetensors(tmp_path / "b.safetensors")["b"]
    assert t.dtype == "BF16" and t.data.dtype == np.uint16
    want = np.array([bf16_value(int(b)) for b in bits.ravel()]).reshape(4, 6)
    assert np.array_equal(t.to_f32(), want.astype(np.float32))


def test_views_are_zero_copy(tmp_path):
    save_file({"w": np.ones((64, 64), np.float32)}, tmp_path / "m.safetensors")
    t = read_safetensors(tmp_path / "m.safetensors")["w"]
    assert not t.data.flags.owndata and not t.data.flags.writeable
    assert isinstance(t, StoredTensor)


def test_no_metadata_is_empty_dict(tmp_path):
    save_file({"w": np.ones(2, np.float32)}, tmp_path / "m.safetensors")
    assert read_safetensors_metadata(tmp_path / "m.safetensors") == {}


# ---- folders: one file or shards --------------------------------------------------------------

def write_sharded(folder, arrays: dict, n_shards: int):
    names = list(arrays)
    weight_map = {}
    for s in range(n_shards):
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {n: arrays[n] for n in names[s::n_shards]}
        save_file(part, folder / fname)
        weight_map.update({n: fname for n in part})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return weight_map


def test_folder_sharded_and_single(tmp_path):
    arrays = {f"layers.{i}.w": RNG.standard_normal((2, 3)).astype(np.float32) for i in range(5)}
    (tmp_path / "sharded").mkdir()
    write_sharded(tmp_path / "sharded", arrays, 3)
    got = read_safetensors_folder(tmp_path / "sharded")
    assert set(got) == set(arrays)
    assert all(np.array_equal(got[n].data, arrays[n]) for n in arrays)
    (tmp_path / "single").mkdir()
    save_file(arrays, tmp_path / "single" / "model.safetensors")
    got = read_safetensors_folder(tmp_path / "single")
    assert all(np.array_equal(got[n].data, arrays[n]) for n in arrays)


def test_folder_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        read_safetensors_folder(tmp_path)
    arrays = {"a": np.ones(2, np.float32), "b": np.zeros(3, np.float32)}
    wm = write_sharded(tmp_path, arrays, 2)
    (tmp_path / wm["b"]).unlink()                              # an index naming a missing file
    with pytest.raises(CheckpointError, match="is missing") as e:
        read_safetensors_folder(tmp_path)
    assert "\n" not in str(e.value)
    save_file({"a": np.ones(2, np.float32)}, tmp_path / wm["b"])  # the shard lacks "b"
    with pytest.raises(CheckpointError, match="has no tensor 'b'"):
        read_safetensors_folder(tmp_path)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["b"] = "../../etc/passwd"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="bad shard"):
        read_safetensors_folder(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid index"):
        read_safetensors_folder(tmp_path)


def test_truncated_shard(tmp_path):
    arrays = {"a": np.ones(100, np.float32), "b": np.zeros(100, np.float32)}
    wm = write_sharded(tmp_path, arrays, 2)
    shard = tmp_path / wm["b"]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="runs past the end"):
        read_safetensors_folder(tmp_path)


# ---- hostile and broken files: one line, CheckpointError, nothing allocated ---------------------

def raw_file(tmp_path, header, data=b"", n=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + data)
    return p


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize("header, data, n, match", [
    ({"a": entry()}, b"\0" * 8, 1 << 62, "header length 4611686018427387904 runs past"),
    ({"a": entry()}, b"\0" * 8, 1 << 63, "runs past the end"),
    ({"a": entry()}, b"\0" * 4, None, "runs past the end"),                        # truncated data
    ({"a": entry(offsets=(0, 8)), "b": entry(offsets=(4, 12))}, b"\0" * 12, None, "overlap"),
    ({"a": entry(offsets=(8, 16))}, b"\0" * 8, None, "runs past the end"),
    ({"a": entry(offsets=(0, 12))}, b"\0" * 12, None, "needs 8 bytes"),            # shape*itemsize
    ({"a": entry(shape=(1 << 40, 1 << 40), offsets=(0, 8))}, b"\0" * 8, None, "needs"),
    ({"a": entry(offsets=(8, 0))}, b"\0" * 8, None, "bad data_offsets"),
    ({"a": entry(offsets=(-8, 0))}, b"\0" * 8, None, "bad data_offsets"),
    ({"a": entry(shape=(-2,))}, b"\0" * 8, None, "bad shape"),
    ({"a": entry(shape=(True,), offsets=(0, 4))}, b"\0" * 8, None, "bad shape"),
    ({"a": entry(dtype="F128")}, b"\0" * 8, None, "unknown dtype"),
    ({"a": {"dtype": "F32"}}, b"", None, "bad shape"),
    ({"a": [1, 2]}, b"", None, "not an object"),
    ([1, 2], b"", None, "not a JSON object"),
    (b"{\"a\": ", b"", None, "not valid JSON"),
    (b"\xff\xfe{}", b"", None, "not valid JSON"),
    (b"[" * 100000, b"", None, "not valid JSON"),                                  # deep nesting
])
def test_hostile_headers(tmp_path, header, data, n, match):
    p = raw_file(tmp_path, header, data, n)
    with pytest.raises(CheckpointError, match=match) as e:
        read_safetensors(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("content", [b"", b"\x01\x02"])
def test_too_short(tmp_path, content):
    (tmp_path / "s.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError):
        read_safetensors(tmp_path / "s.safetensors")


def test_missing_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="No such file"):
        read_safetensors(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="directory"):
        read_safetensors(tmp_path)


def test_bad_metadata(tmp_path):
    p = raw_file(tmp_path, {"__metadata__": {"a": 1}})
    with pytest.raises(CheckpointError, match="strings to strings"):
        read_safetensors_metadata(p)
    assert read_safetensors(p) == {}


# ---- the exercise of docs/16-safetensors.md: write a safetensors file ---------------------------

def test_exercise_write_safetensors(tmp_path):
    """Checker: the safetensors library must read your file back equal (EXERCISE=your_file.py)."""
    from safetensors.numpy import load_file
    from safetensors import safe_open
    import ckpt_exercises
    write = ckpt_exercises.solution("write_safetensors")
    arrays = {"w": RNG.standard_normal((3, 5)).astype(np.float32), "h": np.arange(7, dtype=np.float16),
              "i": np.arange(-2, 2, dtype=np.int64), "empty": np.zeros((0, 2), np.float32)}
    write(tmp_path / "mine.safetensors", arrays, {"format": "pt"})
    back = load_file(tmp_path / "mine.safetensors")
    assert set(back) == set(arrays)
    assert all(back[k].dtype == x.dtype and np.array_equal(back[k], x) for k, x in arrays.items())
    with safe_open(tmp_path / "mine.safetensors", framework="np") as f:
        assert f.metadata() == {"format": "pt"}


def test_f64_past_float32_range_becomes_inf(tmp_path):
    x = np.array([1e300, -1e300, 1.5, np.nan], np.float64)
    save_file({"x": x}, tmp_path / "d.safetensors")
    got = read_safetensors(tmp_path / "d.safetensors")["x"].to_f32()
    assert got[:3].tolist() == [np.inf, -np.inf, 1.5] and np.isnan(got[3])


def test_special_files_refused_without_blocking(tmp_path):
    """A FIFO would block open() forever: refused by its type before anything opens it."""
    os.mkfifo(tmp_path / "pipe.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_safetensors(tmp_path / "pipe.safetensors")
