"""Lesson 18: llama2.c model files and tokenizer.bin.

The oracle: known random weights written in llama2.c's documented byte layouts
(tests/ckpt_llama2c.py follows export.py / runq.c / tokenizer.py), read back equal; v2's
dequantization against a float64 computation; RoPE's theta recovered from the cos/sin tables.
"""
import struct
import tracemalloc

import numpy as np
import pytest

import ckpt_llama2c as W
from lessons.l16_safetensors import CheckpointError
from lessons.l18_llama2c import Llama2cConfig, read_llama2c, read_tokenizer_bin

SIZES = dict(dim=16, hidden=40, n_layers=2, n_heads=4, n_kv=2, vocab=32, seq_len=24)


def write(tmp_path, version, shared=False, theta=10000.0, sizes=SIZES, name="m.bin"):
    w = W.random_weights(sizes["dim"], sizes["hidden"], sizes["n_layers"], sizes["n_heads"],
                         sizes["n_kv"], sizes["vocab"], shared)
    gs = W.write_llama2c(tmp_path / name, w, **sizes, version=version, theta=theta)
    return tmp_path / name, w, gs


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("shared", [False, True])
def test_float_files_read_back_exactly(tmp_path, version, shared):
    path, w, _ = write(tmp_path, version, shared)
    config, tensors = read_llama2c(path)
    assert config == Llama2cConfig(16, 40, 2, 4, 2, 32, 24, shared, 10000.0, version)
    assert set(tensors) == set(w)
    for name, x in w.items():
        t = tensors[name]
        assert t.dtype == "F32" and t.shape == x.shape and np.array_equal(t.data, x), name
        assert not t.data.flags.owndata                       # a view over the mmap
    assert ("output.weight" in tensors) == (not shared)


@pytest.mark.parametrize("shared", [False, True])
def test_v2_int8_groups_against_float64(tmp_path, shared):
    path, w, gs = write(tmp_path, 2, shared)
    assert gs == 16                                           # export.py backs 64 off to fit dim 16
    config, tensors = read_llama2c(path)
    assert config.version == 2 and config.shared_classifier == shared
    for name, x in w.items():
        t = tensors[name]
        if x.ndim == 1:                                       # norms stay float32
            assert np.array_equal(t.data, x)
            continue
        q, s = W.quantize_q80(x, gs)
        want = (q.astype(np.float64).reshape(-1, gs) * s.astype(np.float64)[:, None]).reshape(x.shape)
        assert t.data.dtype == np.float32 and np.array_equal(t.data, want.astype(np.float32)), name
        assert np.abs(t.data - x).max() <= np.abs(x).max() / 127 / 2 * 1.0001   # half a step


def test_docstring_worked_example(tmp_path):
    head = bytes.fromhex("08000000 10000000 01000000 02000000 02000000 e0ffffff 04000000".replace(" ", ""))
    assert struct.unpack("7i", head) == (8, 16, 1, 2, 2, -32, 4)
    sizes = dict(dim=8, hidden=16, n_layers=1, n_heads=2, n_kv=2, vocab=32, seq_len=4)
    path, w, _ = write(tmp_path, 0, sizes=sizes)
    raw = path.read_bytes()
    assert raw[:28] == head and len(raw) == 28 + 4 * 1192 == 28 + 4768
    config, tensors = read_llama2c(path)
    assert (config.vocab_size, config.shared_classifier) == (32, False)


@pytest.mark.parametrize("theta", [10000.0, 500000.0, 1000000.0, 12345.0])
@pytest.mark.parametrize("head_size, seq_len", [(4, 24), (8, 64), (64, 256)])
def test_theta_read_back_from_rope_tables(tmp_path, theta, head_size, seq_len):
    sizes = dict(SIZES, dim=2 * head_size, n_heads=2, n_kv=1, seq_len=seq_len, n_layers=1)
    path, _, _ = write(tmp_path, 0, theta=theta, sizes=sizes)
    assert read_llama2c(path)[0].rope_theta == theta


def test_theta_by_hand():
    """freq_cis_real[1, 1] = cos(theta^(-2/hs)): hs 8, theta 10000 -> cos(0.1) -> theta = 0.1^-4."""
    cos, sin = W.rope_tables(2, 8, 10000.0)
    f = np.arctan2(sin[1, 1], cos[1, 1])
    assert abs(f - 0.1) < 1e-7 and abs(f ** -4.0 - 10000.0) < 0.1


# ---- tokenizer.bin ------------------------------------------------------------------------------

def test_tokenizer_bin_round_trip(tmp_path):
    pieces = [b"<unk>", b"<s>", b"</s>", b"<0x0A>", " the".encode(), "é".encode(), b""]
    scores = [0.0, 0.0, 0.0, -1.5, -2.25, -1e9, 3.0]
    W.write_tokenizer_bin(tmp_path / "tokenizer.bin", pieces, scores)
    got_pieces, got_scores, max_len = read_tokenizer_bin(tmp_path / "tokenizer.bin", len(pieces))
    assert got_pieces == pieces and max_len == len(b"<0x0A>") == 6
    assert got_scores == [float(np.float32(s)) for s in scores]


def test_tokenizer_bin_broken(tmp_path):
    W.write_tokenizer_bin(tmp_path / "t.bin", [b"ab", b"cd"], [1.0, 2.0])
    raw = (tmp_path / "t.bin").read_bytes()
    with pytest.raises(CheckpointError, match="ends inside token 2"):
        read_tokenizer_bin(tmp_path / "t.bin", 3)               # fewer tokens than the model's vocab
    (tmp_path / "t.bin").write_bytes(raw[:-1])
    with pytest.raises(CheckpointError, match="ends inside token 1"):
        read_tokenizer_bin(tmp_path / "t.bin", 2)
    (tmp_path / "t.bin").write_bytes(raw[:8] + struct.pack("<i", -5) + raw[12:])
    with pytest.raises(CheckpointError, match="length -5"):
        read_tokenizer_bin(tmp_path / "t.bin", 2)
    (tmp_path / "t.bin").write_bytes(raw[:8] + struct.pack("<I", 1 << 31 - 1) + raw[12:])
    with pytest.raises(CheckpointError, match="ends inside token 0"):
        read_tokenizer_bin(tmp_path / "t.bin", 2)
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_tokenizer_bin(tmp_path / "e.bin", 2)


# ---- hostile and broken model files --------------------------------------------------------------

def patch_header(path, version, **values):
    """Overwrite header fields in place (legacy: at byte 0; versioned: after magic and version)."""
    fields = ["dim", "hidden", "n_layers", "n_heads", "n_kv", "vocab", "seq_len"]
    raw = bytearray(path.read_bytes())
    base = 0 if version == 0 else 8
    for k, v in values.items():
        struct.pack_into("<i", raw, base + 4 * fields.index(k), v)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("values, match", [
    (dict(n_layers=10 ** 6), "need"), (dict(dim=(1 << 31) - 1, hidden=(1 << 31) - 1), "need|divide"),
    (dict(vocab=(1 << 31) - 1), "need"), (dict(seq_len=(1 << 31) - 1), "need"),
    (dict(n_layers=0), "<= 0"), (dict(n_heads=-4), "<= 0"), (dict(n_heads=5), "divide"),
    (dict(n_kv=3), "divide"), (dict(hidden=-40), "<= 0"),
])
def test_absurd_headers_refused_before_allocation(tmp_path, version, values, match):
    path, _, _ = write(tmp_path, version)
    if version == 0 and "vocab" in values:
        values = dict(vocab=-values["vocab"])
    patch_header(path, version, **values)
    if version > 0 and "seq_len" in values:                   # v1/v2 hold no tables: just a number
        assert read_llama2c(path)[0].seq_len == values["seq_len"]
        return
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=match) as e:
            read_llama2c(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_truncated_and_padded(tmp_path, version):
    path, _, _ = write(tmp_path, version)
    raw = path.read_bytes()
    for bad in (raw[:-4], raw + b"\0" * 4, raw[:20], raw[:200]):
        path.write_bytes(bad)
        with pytest.raises(CheckpointError):
            read_llama2c(path)


def test_bad_versions_and_tables(tmp_path):
    path, _, _ = write(tmp_path, 1)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<i", raw, 4, 3)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="version 3"):
        read_llama2c(path)
    path, _, gs = write(tmp_path, 2)
    raw = bytearray(path.read_bytes())
    for bad_gs in (0, -16, 7):
        struct.pack_into("<i", raw, 37, bad_gs)
        path.write_bytes(bytes(raw))
        with pytest.raises(CheckpointError, match="group size"):
            read_llama2c(path)
    # legacy tables that are not RoPE's: zeros, then noise
    path, w, _ = write(tmp_path, 0)
    c = SIZES
    n_before = 4 * (c["vocab"] * c["dim"] + c["n_layers"] * (2 * c["dim"] + 2 * 16 * 16 + 2 * 8 * 16
                                                             + 3 * 40 * 16) + c["dim"])
    table_bytes = 2 * 4 * c["seq_len"] * 2
    raw = bytearray(path.read_bytes())
    raw[28 + n_before:28 + n_before + table_bytes] = bytes(table_bytes)
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="not RoPE tables"):
        read_llama2c(path)
    noise = np.random.default_rng(0).uniform(-1, 1, table_bytes // 4).astype("<f4").tobytes()
    raw[28 + n_before:28 + n_before + table_bytes] = noise
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="not RoPE tables"):
        read_llama2c(path)


def test_missing_empty_directory(tmp_path):
    for p, match in ((tmp_path / "nope.bin", "No such file"), (tmp_path, "directory")):
        with pytest.raises(CheckpointError, match=match):
            read_llama2c(p)
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_llama2c(tmp_path / "e.bin")


# ---- the exercise of docs/18-llama2c.md: write a version-1 file -----------------------------------

@pytest.mark.parametrize("shared", [False, True])
def test_exercise_write_llama2c_v1(tmp_path, shared):
    """Checker: export.py's layout (tests/ckpt_llama2c.py) and your file must be the same bytes."""
    import ckpt_exercises
    write = ckpt_exercises.solution("write_llama2c_v1")
    w = W.random_weights(16, 40, 2, 4, 2, 32, shared)
    W.write_llama2c(tmp_path / "ref.bin", w, **SIZES, version=1)
    config = Llama2cConfig(16, 40, 2, 4, 2, 32, 24, shared, 10000.0, 1)
    write(tmp_path / "mine.bin", config, w)
    assert (tmp_path / "mine.bin").read_bytes() == (tmp_path / "ref.bin").read_bytes()
    _, back = read_llama2c(tmp_path / "mine.bin")
    assert all(np.array_equal(back[k].data, x) for k, x in w.items())


def test_fifo_refused_without_blocking(tmp_path):
    import os
    os.mkfifo(tmp_path / "pipe.bin")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_llama2c(tmp_path / "pipe.bin")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_tokenizer_bin(tmp_path / "pipe.bin", 4)
