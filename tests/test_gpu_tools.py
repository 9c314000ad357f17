"""The GPU check's CPU-side pieces: the synthetic model generator, the scripts' syntax and their message without a GPU.

Oracles: lessons' GGUF reader and gguf-py (llama.cpp's own reader) for the generated files; the C++ model running
them; bash -n for the script's syntax."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpp_core import cuda
from cpp_core.model import CppLlama
from lessons.l01_gguf import GGMLType, GGUFFile
from lessons.l08_transformer import LlamaConfig
from tools.make_synthetic_gguf import SHAPES, F16_FIELDS, main, use_more_bits, write_synthetic

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", ["Q4_0", "Q8_0", "Q4_K_M", "Q5_1", "Q2_K", "F16"])
def test_synthetic_model_is_a_valid_gguf(tmp_path, kind):
    path = tmp_path / f"s-{kind}.gguf"
    size = write_synthetic(path, "tiny", kind, seed=1)
    assert size == path.stat().st_size
    g = GGUFFile(path)
    c = LlamaConfig.from_gguf(g)  # every tensor present with its shape
    n_vocab, d, n_layer, n_head, n_head_kv, n_ff = SHAPES["tiny"]
    assert (c.n_vocab, c.n_embd, c.n_layer, c.n_head, c.n_head_kv, c.n_ff) == SHAPES["tiny"]
    types = {name: t.ggml_type for name, t in g.tensors.items()}
    if kind == "Q4_K_M":
        assert types["output.weight"] == GGMLType.Q6_K  # 2 layers: use_more_bits picks layer 1 (the last eighth)
        assert types["blk.1.attn_v.weight"] == types["blk.1.ffn_down.weight"] == GGMLType.Q6_K
        assert types["blk.0.attn_v.weight"] == types["blk.0.attn_q.weight"] == GGMLType.Q4_K
    else:
        assert types["blk.1.ffn_up.weight"] == GGMLType[kind]
    for name, t in g.tensors.items():  # every fp16 scale finite and small
        if int(t.ggml_type) in F16_FIELDS:
            _, block, nbytes = None, *{2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 10: (256, 84),
                                       11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210)}[int(t.ggml_type)]
            blocks = np.ascontiguousarray(t.data).reshape(-1, nbytes)
            for off, scale in F16_FIELDS[int(t.ggml_type)]:
                vals = blocks[:, off:off + 2].copy().view(np.float16).astype(np.float32)
                assert np.all(np.isfinite(vals)) and np.abs(vals).max() <= scale * 1.001 and np.abs(vals).min() > 0
    gguf_py = pytest.importorskip("gguf")
    reader = gguf_py.GGUFReader(str(path))  # llama.cpp's own reader agrees on names and types
    assert {t.name: int(t.tensor_type) for t in reader.tensors} == {k: int(v) for k, v in types.items()}
    logits = CppLlama(g, n_ctx=16, n_threads=2).forward(np.arange(8, dtype=np.int32), 0)
    assert np.all(np.isfinite(logits))


def test_q4_k_m_layer_rule():
    """llama-quantize's use_more_bits for 32 layers: the first 4, the last 4, and every third from layer 6."""
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]


def test_generator_cli(tmp_path, capsys):
    assert main([str(tmp_path / "a.gguf"), "--shape", "tiny", "--type", "Q8_0"]) == 0
    assert "tiny Q8_0" in capsys.readouterr().out
    assert main([str(tmp_path / "b.gguf"), "--type", "Q9_9"]) == 2
    assert capsys.readouterr().err.startswith("error: --type")
    assert not (tmp_path / "b.gguf").exists()


def test_gpu_check_script_syntax():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(REPO / "tools" / "gpu_check.sh")], check=True)


def test_gpu_check_without_a_gpu_says_so(tmp_path):
    if cuda.cuda_status()[0] or shutil.which("nvidia-smi"):
        pytest.skip("this machine has an NVIDIA GPU: tools/gpu_check.sh would run for real")
    r = subprocess.run(["bash", str(REPO / "tools" / "gpu_check.sh")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("error: no NVIDIA GPU here") and len(r.stderr.splitlines()) == 1, r.stderr


def test_bench_without_a_gpu_says_so():
    if cuda.cuda_status()[0]:
        pytest.skip("a GPU is here")
    r = subprocess.run([sys.executable, str(REPO / "tools" / "bench_cuda.py")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.startswith("error: no CUDA") and len(r.stderr.splitlines()) == 1, r.stderr


def test_prebuilt_kernel_images(tmp_path, monkeypatch):
    """Kernels compiled where NVRTC is, for a GPU machine without it: named by the sources' hash, so an edit to a
    kernel makes the old image unfindable instead of loading stale code."""
    if cuda.find_nvrtc() is None:
        pytest.skip("no NVRTC installed")
    monkeypatch.setattr(cuda, "IMAGE_DIR", tmp_path)
    [path] = cuda.prebuild(["compute_80"])  # PTX: quick
    assert path.name.startswith(cuda.source_hash()) and b".entry matvec_v2" in path.read_bytes()
    main_src, headers = cuda.kernel_sources()
    monkeypatch.setattr(cuda, "kernel_sources", lambda: (main_src, dict(headers, **{"cuda/ops.cu": headers["cuda/ops.cu"] + "//"})))
    assert cuda.image_path("compute_80") != path
