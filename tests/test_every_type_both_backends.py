"""Both backends run a model quantized to every export TYPE, and agree with each other.

A tiny model with rows of 256 (so the k-quants apply without fallbacks) is quantized by export.py
to each preset; export.py's files are byte-identical to llama-quantize's on the default model
(tests/test_export_presets.py), so this is the check that run.py reads what llama.cpp writes.
The oracle for the C++ backend is the numpy lesson on the same file.
"""
import io

import numpy as np
import pytest

import export
import run
from lessons.l01_gguf import GGUFFile
from lessons.l08_transformer import NumpyLlama

cpp_model = pytest.importorskip("cpp_core.model", reason="C++ core not built")

TOKENS = np.array([5, 17, 42, 99, 3, 250], dtype=np.int32)


@pytest.fixture(scope="module")
def f32_model(tmp_path_factory):
    from conftest import build_tiny_llama
    folder = tmp_path_factory.mktemp("every-type")
    return build_tiny_llama(folder, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_layer=2,
                            n_vocab=512, tied=False, seed=7)


@pytest.mark.parametrize("preset", list(export.PRESETS))
def test_both_backends_agree_on_every_type(f32_model, tmp_path, preset):
    path = tmp_path / f"tiny-{preset}.gguf"
    export.export(str(f32_model), str(path), preset)
    gguf = GGUFFile(path)
    types = {t.ggml_type.name for t in gguf.tensors.values() if len(t.ne) == 2}
    expected = export.PRESETS[preset][1].name
    assert expected in types, (preset, types)  # the preset's own type really is in the file
    reference = NumpyLlama(gguf, n_ctx=16).forward(TOKENS, 0)           # [6, n_vocab]
    fast = cpp_model.CppLlama(gguf, n_ctx=16, n_threads=2).forward(TOKENS, 0)
    # Where the C++ fast path keeps activations in float32 the two agree to ~1e-7 KL; for the types
    # whose fastest kernel still rounds activations to 8 bits (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K) KL is
    # ~1e-4. Reading a block layout wrong costs KL > 0.1 (these weights' own quantization error is
    # 1e-2 to 0.3), so 1e-3 separates "same weights" from "wrong weights".
    assert kl_divergence(reference, fast).max() <= 1e-3, preset


def kl_divergence(p_logits, q_logits):
    """KL(p || q) per row, from logits [n, n_vocab] -> [n]."""
    log_p = p_logits - np.logaddexp.reduce(p_logits, axis=-1, keepdims=True)
    log_q = q_logits - np.logaddexp.reduce(q_logits, axis=-1, keepdims=True)
    return (np.exp(log_p) * (log_p - log_q)).sum(-1)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
@pytest.mark.parametrize("preset", ["Q4_K_M", "Q6_K"])
def test_run_py_generates_from_k_quant_files(f32_model, tmp_path, preset, backend):
    path = tmp_path / f"tiny-{preset}.gguf"
    export.export(str(f32_model), str(path), preset)
    out, err = io.StringIO(), io.StringIO()
    rc = run.main(["-m", str(path), "-p", "the quick", "-n", "4", "--temp", "0", "--ignore-eos",
                   "--backend", backend], out, err)
    assert rc == 0, err.getvalue()
    assert out.getvalue().startswith("the quick") and "eval time" in err.getvalue()
