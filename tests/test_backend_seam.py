"""The seam (cpp_core/src/backend/backend.h): the CPU model behind it, the CPU half of a partial offload (-ngl),
and run.py's --backend cuda / -ngl flags on a machine without a GPU.

Oracles: CppLlama (the CPU model without the seam), lessons.l04_rmsnorm and the model's own output matrix for the
hidden state a partial offload hands over, and run.py's promise of one error line."""
import io

import numpy as np
import pytest

import run
from cpp_core import _core
from cpp_core.cuda import cuda_status, model_spec
from cpp_core.model import CppLlama
from lessons.l01_gguf import GGMLType, GGUFFile
from lessons.l04_rmsnorm import rmsnorm
from lessons.l12_quants import dequantize


def cpu_backend(gguf, n_ctx=32, n_threads=2, kv_type="f16"):
    _, hparams, weights = model_spec(gguf)
    return _core.Backend("cpu", hparams, weights, n_ctx, n_threads=n_threads, kv_type=kv_type)


@pytest.mark.parametrize("kv_type", ["f16", "f32"])
def test_cpu_backend_is_the_cpu_model(tiny_llama, kv_type):
    """Behind the seam the CPU model computes exactly what it computes alone: prompt, then decoded tokens."""
    gguf = GGUFFile(tiny_llama(weight_type=GGMLType.Q8_0, n_embd=64, n_ff=128))
    seam, alone = cpu_backend(gguf, kv_type=kv_type), CppLlama(gguf, n_ctx=32, n_threads=2, kv_type=kv_type)
    prompt = np.array([1, 5, 9, 2, 7], np.int32)
    np.testing.assert_array_equal(seam.forward(prompt, 0), alone.forward(prompt, 0))
    for i, tok in enumerate([3, 8, 4]):
        np.testing.assert_array_equal(seam.forward(np.array([tok], np.int32), 5 + i, last_only=True),
                                      alone.forward(np.array([tok], np.int32), 5 + i, last_only=True))
    assert "cpu" in seam.describe() and seam.kv_cache_bytes == alone.kv_cache_bytes and seam.device_bytes == 0


def test_unknown_backend_and_bad_cache_type(tiny_llama):
    gguf = GGUFFile(tiny_llama())
    _, hparams, weights = model_spec(gguf)
    with pytest.raises(ValueError, match="unknown backend"):
        _core.Backend("metal", hparams, weights, 16)
    with pytest.raises(ValueError, match="f32 or f16"):
        _core.Backend("cpu", hparams, weights, 16, kv_type="q8_0")


def logits_from_hidden(gguf, hidden):
    """The output layer by hand: rmsnorm (lesson 4) * output_norm, times the (tied) embedding matrix."""
    c, _, weights = model_spec(gguf)
    t = gguf.tensors["token_embd.weight"]
    w_out = dequantize(t.data, t.ggml_type, (c.n_vocab, c.n_embd))  # [n_vocab, n_embd]
    return rmsnorm(hidden, weights["output_norm.weight"], c.rms_eps) @ w_out.T  # [n, n_vocab]


def test_hidden_after_every_layer_gives_the_logits(tiny_llama):
    """forward_hidden through all layers, then the output layer by hand = the model's logits (prompt and decode)."""
    gguf = GGUFFile(tiny_llama(n_layer=3))
    _, hparams, weights = model_spec(gguf)
    steps = [(np.array([1, 4, 2, 6], np.int32), 0), (np.array([3], np.int32), 4), (np.array([5], np.int32), 5)]
    hidden = _core.forward_hidden(hparams, weights, 16, 2, "f16", steps, 3)
    model = CppLlama(gguf, n_ctx=16, n_threads=2, kv_type="f16")
    for (tokens, pos), h in zip(steps, hidden):
        assert h.shape == (len(tokens), hparams["n_embd"])
        np.testing.assert_allclose(logits_from_hidden(gguf, h), model.forward(tokens, pos), rtol=0, atol=2e-4)


def test_hidden_after_the_first_layers(tmp_path, tiny_llama):
    """The first k layers alone: a 3-layer model stopped after 1 layer = the 1-layer model with the same first layer
    (same seed), which is checked through its logits; the decode steps read the cache those layers wrote."""
    deep, shallow = (GGUFFile(tiny_llama(tmp_path, n_layer=n, seed=4, tied=True)) for n in (3, 1))
    for name in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight"):  # the premise: same first layer
        np.testing.assert_array_equal(deep.tensors[name].data, shallow.tensors[name].data)
    steps = [(np.array([2, 7, 1], np.int32), 0), (np.array([9], np.int32), 3)]
    _, hp_deep, w_deep = model_spec(deep)
    _, hp_shallow, w_shallow = model_spec(shallow)
    got = _core.forward_hidden(hp_deep, w_deep, 16, 2, "f16", steps, 1)
    want = _core.forward_hidden(hp_shallow, w_shallow, 16, 2, "f16", steps, 1)
    model = CppLlama(shallow, n_ctx=16, n_threads=2, kv_type="f16")
    for (tokens, pos), g, w in zip(steps, got, want):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_allclose(logits_from_hidden(shallow, w), model.forward(tokens, pos), rtol=0, atol=2e-4)
    with pytest.raises(ValueError, match="layer count"):
        _core.forward_hidden(hp_deep, w_deep, 16, 1, "f16", steps, 4)


# ---- run.py ----
def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = run.main([str(a) for a in argv], out, err)
    return rc, out.getvalue(), err.getvalue()


def one_line_error(rc, err, status, *words):
    assert rc == status, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize("flags", [["--backend", "cuda"], ["-ngl", "99"], ["--backend", "cuda", "-ngl", "2"]])
def test_cuda_without_a_gpu_is_one_error_line(tiny_llama, flags):
    ok, why = cuda_status()
    if ok:
        pytest.skip(f"a GPU is here ({why}): tests/test_cuda_model.py runs the CUDA backend")
    rc, _, err = call("-m", tiny_llama(), "-p", "hi", "-n", "2", *flags)
    one_line_error(rc, err, 1, "--backend cuda", why.split(":")[0])


def test_cuda_perplexity_without_a_gpu(tmp_path, tiny_llama):
    if cuda_status()[0]:
        pytest.skip("a GPU is here")
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 200)
    rc, _, err = call("-m", tiny_llama(), "--perplexity", "-f", text, "-c", "16", "--backend", "cuda")
    one_line_error(rc, err, 1, "--backend cuda")


@pytest.mark.parametrize("flags, words", [(["-ngl", "-1"], "0 or more"), (["--backend", "numpy", "-ngl", "2"], "cuda backend"),
                                          (["--backend", "cpp", "-ngl", "2"], "cuda backend")])
def test_bad_gpu_layer_flags(tiny_llama, flags, words):
    rc, _, err = call("-m", tiny_llama(), "-p", "hi", "-n", "1", *flags)
    one_line_error(rc, err, 2, words)


def test_ngl_zero_runs_on_the_cpu(tiny_llama):
    """llama.cpp's -ngl 0: nothing offloaded, so no GPU needed: the same greedy text as the CPU backend."""
    path = tiny_llama()
    rc0, out0, err0 = call("-m", path, "-p", "hi", "-n", "4", "--temp", "0", "-ngl", "0")
    rc1, out1, _ = call("-m", path, "-p", "hi", "-n", "4", "--temp", "0", "--backend", "cpp")
    assert rc0 == 0 and rc1 == 0, err0
    assert out0 == out1
