"""Lesson 1b: the writer, checked by reading back with our reader AND with gguf-py, and against the
bytes llama.cpp wrote for the real model."""
import filecmp
import struct

import numpy as np
import pytest

from lessons.l01_gguf import GGML_BLOCK_INFO, GGMLType, GGUFFile, GGUFValueType, write_gguf

gguf = pytest.importorskip("gguf", reason="gguf-py (pip install gguf) is the oracle here")
V = GGUFValueType

ALL_TYPES = {  # one key per value type, arrays and a nested array too
    "t.u8": (V.UINT8, 200), "t.i8": (V.INT8, -100), "t.u16": (V.UINT16, 60000),
    "t.i16": (V.INT16, -30000), "t.u32": (V.UINT32, 4_000_000_000), "t.i32": (V.INT32, -2_000_000_000),
    "t.f32": (V.FLOAT32, 0.5), "t.bool": (V.BOOL, True), "t.str": (V.STRING, "héllo ✓"),
    "t.u64": (V.UINT64, 1 << 60), "t.i64": (V.INT64, -(1 << 60)), "t.f64": (V.FLOAT64, 1e-300),
    "t.arr": ([V.INT32], [1, -2, 3]), "t.strs": ([V.STRING], ["a", "", "ü"]),
    "t.nested": ([[V.UINT8]], [[1, 2], [], [3]]), "t.bools": ([V.BOOL], [True, False]),
}


def test_worked_example_bytes(tmp_path):
    path = tmp_path / "tiny.gguf"
    write_gguf(path, {"abcd": 42}, [])
    expected = (b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
                + struct.pack("<Q", 4) + b"abcd" + struct.pack("<II", 4, 42))
    assert path.read_bytes()[:len(expected)] == expected


@pytest.mark.parametrize("version", [2, 3])
def test_all_value_types_round_trip(tmp_path, version):
    path = tmp_path / "types.gguf"
    metadata = {k: v for k, (_, v) in ALL_TYPES.items()}
    types = {k: t for k, (t, _) in ALL_TYPES.items()}
    write_gguf(path, metadata, [], metadata_types=types, version=version)
    ours = GGUFFile(path)
    assert ours.version == version
    assert ours.metadata_types == types
    assert ours.metadata == metadata
    oracle = gguf.GGUFReader(path)
    for key, (_, value) in ALL_TYPES.items():
        if key != "t.nested":  # gguf-py's contents() flattens nested arrays; the types agree below
            assert oracle.fields[key].contents() == value, key
        assert int(oracle.fields[key].types[0]) == (V.ARRAY if isinstance(types[key], list) else types[key])


@pytest.mark.parametrize("alignment", [32, 64, 256])
def test_tensors_round_trip_and_are_aligned(tmp_path, alignment):
    rng = np.random.default_rng(0)
    q_rows = rng.integers(0, 256, size=(3, 2 * GGML_BLOCK_INFO[GGMLType.Q4_0][1]), dtype=np.uint8)
    tensors = [
        ("a.f32", GGMLType.F32, (5, 7), rng.standard_normal((5, 7)).astype(np.float32)),
        ("b.f16", GGMLType.F16, (3,), np.array([1, 2, 3], np.float16)),
        ("c.q4_0", GGMLType.Q4_0, (3, 64), q_rows),
        ("d.bf16", GGMLType.BF16, (2, 2), np.array([[1, 2], [3, 4]], np.uint16)),
    ]
    path = tmp_path / "t.gguf"
    meta = {"general.architecture": "llama"}
    if alignment != 32:
        meta["general.alignment"] = alignment
    write_gguf(path, meta, tensors)
    ours, oracle = GGUFFile(path), gguf.GGUFReader(path)
    for (name, ggml_type, shape, data), t in zip(tensors, oracle.tensors):
        mine = ours.tensors[name]
        assert t.name == name and int(t.tensor_type) == ggml_type
        assert mine.shape == shape and mine.offset % alignment == 0
        assert np.array_equal(mine.data, data)
        assert mine.data.tobytes() == t.data.tobytes()


def test_real_model_rewritten_is_llama_cpps_file_byte_for_byte(tmp_path, default_model_path, default_model):
    """Every key and every tensor of the real model, written again by our writer, give back the file
    llama.cpp wrote, byte for byte (94 MB: header, metadata, tensor infos, alignment padding, data);
    gguf-py reads the copy too."""
    tensors = [(n, t.ggml_type, t.shape, t.data) for n, t in default_model.tensors.items()]
    path = tmp_path / "copy.gguf"
    write_gguf(path, default_model.metadata, tensors, metadata_types=default_model.metadata_types)
    assert path.stat().st_size == default_model_path.stat().st_size
    assert filecmp.cmp(path, default_model_path, shallow=False)
    oracle = gguf.GGUFReader(path)
    assert oracle.fields["tokenizer.ggml.merges"].contents() == default_model.metadata["tokenizer.ggml.merges"]


def test_writer_rejects_misshapen_data_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.gguf"
    with pytest.raises(ValueError, match="expected"):
        write_gguf(path, {}, [("x", GGMLType.F32, (4, 4), np.zeros(15, np.float32))])
    with pytest.raises(ValueError, match="multiple"):
        write_gguf(path, {}, [("x", GGMLType.Q8_0, (1, 33), np.zeros(34, np.uint8))])
    assert list(tmp_path.iterdir()) == []
