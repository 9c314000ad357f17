"""export.py: the command line, atomic writes, and a tiny random model through every preset.

The per-tensor recipe is checked against llama.cpp's own choices in test_export_presets.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import export
from lessons.l01_gguf import GGMLType, GGUFFile, GGUFValueType, write_gguf

ROOT = Path(__file__).resolve().parents[1]
T = GGMLType


# ---- a tiny llama with random weights ----
N_EMBD, N_FF, N_VOCAB, N_LAYER = 256, 288, 64, 2  # 288: a multiple of 32 but not of 256 -> fallbacks


def tiny_tensors(rng, dtype=np.float32):
    def w(rows, cols):
        return (rng.standard_normal((rows, cols)) * 0.05).astype(dtype)

    tensors = [("token_embd.weight", T.F32, (N_VOCAB, N_EMBD), w(N_VOCAB, N_EMBD)),
               ("output_norm.weight", T.F32, (N_EMBD,), np.ones(N_EMBD, np.float32))]
    for i in range(N_LAYER):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", T.F32, (N_EMBD,), 1 + w(1, N_EMBD)[0]),
                    (b + "attn_q.weight", T.F32, (N_EMBD, N_EMBD), w(N_EMBD, N_EMBD)),
                    (b + "attn_k.weight", T.F32, (N_EMBD // 2, N_EMBD), w(N_EMBD // 2, N_EMBD)),
                    (b + "attn_v.weight", T.F32, (N_EMBD // 2, N_EMBD), w(N_EMBD // 2, N_EMBD)),
                    (b + "attn_output.weight", T.F32, (N_EMBD, N_EMBD), w(N_EMBD, N_EMBD)),
                    (b + "ffn_norm.weight", T.F32, (N_EMBD,), 1 + w(1, N_EMBD)[0]),
                    (b + "ffn_gate.weight", T.F32, (N_FF, N_EMBD), w(N_FF, N_EMBD)),
                    (b + "ffn_up.weight", T.F32, (N_FF, N_EMBD), w(N_FF, N_EMBD)),
                    (b + "ffn_down.weight", T.F32, (N_EMBD, N_FF), w(N_EMBD, N_FF))]
    return tensors


TINY_METADATA = {"general.architecture": "llama", "general.name": "tiny", "general.file_type": 0,
                 "llama.block_count": N_LAYER, "llama.embedding_length": N_EMBD,
                 "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
                 "llama.rope.freq_base": 10000.0, "tokenizer.ggml.scores": [0.5, -1.0],
                 "llama.some_signed": -3}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny-f32.gguf"
    write_gguf(path, TINY_METADATA, tiny_tensors(np.random.default_rng(0)))
    return path


def run(argv, capsys):
    rc = export.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


# ---- every preset: the file reads back, with the planned types and bounded error ----
# Bound on the relative RMS error of a whole tensor, for the lowest-bit type a preset can pick.
MAX_REL_RMS = {T.F32: 0, T.F16: 1e-3, T.BF16: 8e-3, T.Q8_0: 0.01, T.Q6_K: 0.03, T.Q5_0: 0.06,
               T.Q5_1: 0.05, T.Q5_K: 0.05, T.Q4_0: 0.12, T.Q4_1: 0.1, T.Q4_K: 0.1, T.Q3_K: 0.22,
               T.Q2_K: 0.45}


@pytest.mark.parametrize("preset", list(export.PRESETS))
def test_tiny_model_round_trip(tiny, tmp_path, preset, capsys):
    out = tmp_path / f"tiny-{preset}.gguf"
    rc, err = run([tiny, out, preset], capsys)
    assert rc == 0, err
    import gguf as gguf_py  # llama.cpp's own reader: the oracle for the layout we wrote
    from lessons.l12_quants import dequantize
    with GGUFFile(tiny) as src, GGUFFile(out) as dst:
        planned = export.plan_types(src, preset)
        assert list(dst.tensors) == export.llama_cpp_order(list(src.tensors))
        assert dst.metadata["general.file_type"] == export.PRESETS[preset][0]
        assert dst.metadata_types["general.file_type"] == GGUFValueType.UINT32
        assert dst.metadata["general.quantization_version"] == 2
        for key in ("general.name", "llama.rope.freq_base", "tokenizer.ggml.scores", "llama.some_signed"):
            assert dst.metadata[key] == pytest.approx(src.metadata[key])
            assert dst.metadata_types[key] == src.metadata_types[key]
        reader = gguf_py.GGUFReader(out)
        assert {t.name: int(t.tensor_type) for t in reader.tensors} == {n: int(t) for n, t in planned.items()}
        for t in reader.tensors:
            ours, original = dst.tensors[t.name], src.tensors[t.name].data
            assert ours.ggml_type == planned[t.name] and tuple(ours.ne) == tuple(src.tensors[t.name].ne)
            got = dequantize(ours.data, ours.ggml_type, ours.shape)
            oracle = gguf_py.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(ours.shape)
            np.testing.assert_array_equal(got, oracle.astype(np.float32))
            rel = np.sqrt(np.mean((got - original) ** 2) / np.mean(original ** 2))
            assert rel <= MAX_REL_RMS[ours.ggml_type], (t.name, ours.ggml_type.name, rel)
    assert leftovers(tmp_path) == []


def test_short_names_are_llama_quantizes_aliases(tiny, tmp_path, capsys):
    assert run([tiny, tmp_path / "a.gguf", "q4_k"], capsys)[0] == 0
    with GGUFFile(tmp_path / "a.gguf") as f:
        assert f.metadata["general.file_type"] == export.PRESETS["Q4_K_M"][0]


def test_rows_that_are_not_whole_k_blocks_fall_back(tiny):
    with GGUFFile(tiny) as f:
        q4_k_m = export.plan_types(f, "Q4_K_M")
        q6_k = export.plan_types(f, "Q6_K")
    assert q4_k_m["blk.0.attn_q.weight"] == T.Q4_K        # 256 per row: fits
    assert q4_k_m["blk.0.ffn_down.weight"] == T.Q5_0      # Q4_K, but 288 % 256 != 0 -> Q5_0
    assert q4_k_m["blk.1.ffn_down.weight"] == T.Q8_0      # last 1/8 of the layers: Q6_K -> 288 -> Q8_0
    assert q6_k["blk.1.ffn_down.weight"] == T.Q8_0
    assert q4_k_m["output_norm.weight"] == T.F32          # 1-D stays as it is
    assert q4_k_m["token_embd.weight"] == T.Q6_K          # tied output: Q6_K


def test_requantizing_a_quantized_file_works_and_warns(tiny, tmp_path, capsys):
    q8 = tmp_path / "q8.gguf"
    assert run([tiny, q8, "Q8_0"], capsys)[0] == 0
    rc, err = run([q8, tmp_path / "q4.gguf", "Q4_0"], capsys)
    assert rc == 0 and "warning: requantized" in err
    rc, err = run([q8, tmp_path / "q4b.gguf", "Q4_0", "--allow-requantize"], capsys)
    assert rc == 0 and "warning" not in err
    with GGUFFile(tmp_path / "q4.gguf") as f:
        assert f.tensors["blk.0.attn_q.weight"].ggml_type == T.Q4_0


# ---- errors: one line, the right exit status, nothing left behind ----
@pytest.mark.parametrize("case", ["missing", "unknown_type", "no_dir", "same", "same_symlink",
                                  "same_relative", "arg_count", "out_is_dir"])
def test_usage_errors(tiny, tmp_path, capsys, monkeypatch, case):
    link = tmp_path / "link.gguf"
    link.symlink_to(tiny)
    monkeypatch.chdir(tiny.parent)
    argv = {"missing": [tmp_path / "nope.gguf", tmp_path / "o.gguf", "Q4_0"],
            "unknown_type": [tiny, tmp_path / "o.gguf", "Q4_9"],
            "no_dir": [tiny, tmp_path / "nodir" / "o.gguf", "Q4_0"],
            "same": [tiny, tiny, "Q4_0"],
            "same_symlink": [tiny, link, "Q4_0"],
            "same_relative": [tiny, Path("..") / tiny.parent.name / tiny.name, "Q4_0"],
            "arg_count": [tiny, "Q4_0"],
            "out_is_dir": [tiny, tmp_path, "Q4_0"]}[case]
    before = tiny.read_bytes()
    rc, err = run(argv, capsys)
    assert rc == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert tiny.read_bytes() == before
    assert not (tmp_path / "o.gguf").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_broken_input_is_a_runtime_error(tiny, tmp_path, capsys, damage):
    bad = tmp_path / "bad.gguf"
    data = tiny.read_bytes()
    bad.write_bytes({"garbage": b"not a gguf file at all" * 10, "truncated": data[: len(data) // 2],
                     "empty": b""}[damage])
    rc, err = run([bad, tmp_path / "o.gguf", "Q8_0"], capsys)
    assert rc == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o.gguf").exists() and leftovers(tmp_path) == []


def test_failure_midway_keeps_the_old_output_and_leaves_no_part_file(tiny, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.gguf"
    out.write_bytes(b"previous contents")
    real = export.convert_tensor
    calls = []

    def flaky(info, new_type):
        calls.append(info.name)
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the tensor data
        return real(info, new_type)

    monkeypatch.setattr(export, "convert_tensor", flaky)
    rc, err = run([tiny, out, "Q8_0"], capsys)
    assert rc == 130 and "interrupted" in err
    assert out.read_bytes() == b"previous contents"
    assert leftovers(tmp_path) == []


def test_the_script_prints_one_line_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)  # 2^64-1 tensors: a lie
    proc = subprocess.run([sys.executable, str(ROOT / "export.py"), str(bad), str(tmp_path / "o.gguf"), "Q4_0"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_output_file_is_readable_by_others(tiny, tmp_path, capsys):
    out = tmp_path / "o.gguf"
    assert run([tiny, out, "F16"], capsys)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_untied_output_and_a_3d_expert_tensor(tmp_path, capsys):
    """Another architecture's layout: output.weight present (token_embd keeps the base type), and a
    3-D stack of experts quantized row by row."""
    rng = np.random.default_rng(7)
    experts = (rng.standard_normal((4, 64, 256)) * 0.05).astype(np.float32)  # [n_expert, rows, 256]
    tensors = [("token_embd.weight", T.F32, (64, 256), (rng.standard_normal((64, 256)) * 0.05).astype(np.float32)),
               ("output.weight", T.F32, (64, 256), (rng.standard_normal((64, 256)) * 0.05).astype(np.float32)),
               ("blk.0.ffn_down_exps.weight", T.F32, experts.shape, experts),
               ("blk.0.ffn_gate_inp.weight", T.F32, (4, 256), np.ones((4, 256), np.float32))]
    src = tmp_path / "moe.gguf"
    write_gguf(src, {"general.architecture": "qwen2moe", "qwen2moe.block_count": 1,
                     "qwen2moe.attention.head_count": 4, "qwen2moe.attention.head_count_kv": 4,
                     "qwen2moe.expert_count": 4}, tensors)
    out = tmp_path / "moe-q4_k_m.gguf"
    assert run([src, out, "Q4_K_M"], capsys)[0] == 0
    from lessons.l12_quants import dequantize
    with GGUFFile(out) as f:
        types = {n: t.ggml_type for n, t in f.tensors.items()}
        assert types == {"token_embd.weight": T.Q4_K, "output.weight": T.Q6_K,
                         "blk.0.ffn_down_exps.weight": T.Q6_K,  # layer 0 of 1: the last eighth, more bits
                         "blk.0.ffn_gate_inp.weight": T.F32}    # the router is never quantized
        t = f.tensors["blk.0.ffn_down_exps.weight"]
        assert tuple(t.ne) == (256, 64, 4)
        got = dequantize(t.data, t.ggml_type, t.shape)
        assert np.sqrt(np.mean((got - experts) ** 2) / np.mean(experts ** 2)) < MAX_REL_RMS[T.Q6_K]
