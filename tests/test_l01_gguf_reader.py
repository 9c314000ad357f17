"""Lesson 1 checked against llama.cpp's own Python reader (gguf-py) on the real model.

Every metadata key, its type and value, and every tensor's name, type, shape, offset and bytes
must agree. gguf-py is the oracle; our reader is the lesson.
"""
import numpy as np
import pytest

from lessons.l01_gguf import GGMLType, GGUFValueType

gguf = pytest.importorskip("gguf", reason="gguf-py (pip install gguf) is the oracle here")


@pytest.fixture(scope="module")
def both(default_model_path):
    from lessons.l01_gguf import GGUFFile
    return GGUFFile(default_model_path), gguf.GGUFReader(default_model_path)


def _oracle_types(field):
    """gguf-py lists a field's types flat ([ARRAY, STRING]); ours nest ([STRING])."""
    types = [GGUFValueType(int(t)) for t in field.types]
    nested = types[-1]
    for t in reversed(types[:-1]):
        assert t == GGUFValueType.ARRAY
        nested = [nested]
    return nested


def test_every_metadata_key_type_and_value(both):
    ours, oracle = both
    oracle_keys = [k for k in oracle.fields if not k.startswith("GGUF.")]
    assert list(ours.metadata) == oracle_keys
    for key in oracle_keys:
        field = oracle.fields[key]
        assert ours.metadata_types[key] == _oracle_types(field), key
        expected = field.contents()
        got = ours.metadata[key]
        if isinstance(expected, float):
            assert np.float32(got) == np.float32(expected), key
        else:
            assert got == expected, key


def test_header_counts(both):
    ours, oracle = both
    assert ours.version == oracle.fields["GGUF.version"].contents()
    assert len(ours.tensors) == oracle.fields["GGUF.tensor_count"].contents()
    assert ours.alignment == oracle.alignment


def test_every_tensor_info_and_byte(both):
    ours, oracle = both
    assert [t.name for t in oracle.tensors] == list(ours.tensors)
    for t in oracle.tensors:
        mine = ours.tensors[t.name]
        assert mine.ggml_type == GGMLType(int(t.tensor_type))
        assert mine.ne == tuple(int(d) for d in t.shape)           # gguf-py's shape is ggml's ne
        assert mine.offset == t.data_offset
        assert mine.nbytes == t.n_bytes
        assert np.array_equal(mine.data.view(np.uint8).reshape(-1), t.data.view(np.uint8).reshape(-1))


def test_tensors_are_zero_copy_views(both):
    ours, _ = both
    embd = ours.tensors["token_embd.weight"]
    assert not embd.data.flags.owndata and not embd.data.flags.writeable
    assert embd.shape == (49152, 576)          # numpy order: 49152 rows of 576
    assert embd.data.shape == (49152, 576 // 32 * 34)  # Q8_0 rows: 18 blocks of 34 bytes


def test_inspect_lists_what_gguf_py_reads(default_model_path, both):
    """`run.py --inspect` prints one line per key and per tensor, with gguf-py's values."""
    import io

    import run
    out = io.StringIO()
    assert run.main(["-m", str(default_model_path), "--inspect"], out, io.StringIO()) == 0
    lines = out.getvalue().splitlines()
    oracle = both[1]
    keys = [k for k in oracle.fields if not k.startswith("GGUF.")]
    meta_lines = [ln for ln in lines if " = " in ln]
    assert len(meta_lines) == len(keys)
    for key, line in zip(keys, meta_lines):
        value = oracle.fields[key].contents()
        assert f"| {key} = " in line
        if not isinstance(value, list):
            shown = repr(float(np.float32(value))) if isinstance(value, float) else repr(value)
            assert line.endswith(f"{key} = {shown[:200]}")
        else:
            assert f"| {len(value):8} |" in line
    tensor_lines = [ln for ln in lines if ln.endswith(tuple(f"| {t.name}" for t in oracle.tensors))]
    assert len(tensor_lines) == len(oracle.tensors)
    for t, line in zip(oracle.tensors, tensor_lines):
        assert f"| {t.tensor_type.name:6} |" in line and f"{t.n_bytes:10} bytes" in line
        assert line.split("|")[1].replace(" ", "").startswith(",".join(str(int(d)) for d in t.shape))
