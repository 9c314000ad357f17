"""CppLlama: the whole forward pass in C++ (cpp_core/src/model/model.cpp), with NumpyLlama's protocol.

    from lessons.l01_gguf import GGUFFile
    from cpp_core.model import CppLlama
    model = CppLlama(GGUFFile("model.gguf"), n_ctx=512, n_threads=2)
    logits = model.forward(np.array([1, 2, 3], np.int32), pos=0)            # [3, n_vocab]
    logits = model.forward(np.array([4], np.int32), pos=3, last_only=True)  # [1, n_vocab]

The weights are not loaded: every matrix is a numpy view of the GGUF file's mmap, handed to C++ as a
pointer to its raw ggml blocks, which quant_matmul reads in place. Only the norm vectors (a few KB) are
converted when a file stores them in another type than F32. The memory the model adds is its KV cache
([n_layer][n_head_kv][n_ctx][head_dim] for K and for V: float32, or float16 with kv_type="f16", run.py's
default and llama.cpp's) and scratch for one batch of tokens.

Activations: for a prompt the kernels' fast path keeps the activations in float32 and dequantizes the
weights in registers, so the logits are the F32 model's (KL ~4e-7 from llama.cpp's run on F32 weights).
Decoding one token at a time rounds them to 16 bits per block of 32 instead (quant_matmul v11-v18), which
leaves the logits as close to the F32 model's (KL ~7e-7).
int8_activations=True does what llama.cpp does instead: round the activations to 8 bits per block of
32 before each product with quantized weights and use int8 dot products (a KL of ~3e-3 from F32).

last_only=True computes the final norm and the output matrix for the last token only: generation needs
just that row, and for SmolLM2 the output product (49152 x 576) costs as much as 8 layers. Perplexity
needs every row, so the default stays False.
"""

from __future__ import annotations

import numpy as np

from lessons.l01_gguf import GGMLType
from lessons.l06_attention import check_kv_type
from lessons.l08_transformer import LlamaConfig, check_forward_args

from . import _core

__all__ = ["CppLlama", "attention", "attention_versions", "attention_active"]


# quant_matmul versions that round the activations to 8 bits (llama.cpp's method), fastest first
INT8_MATMUL_VERSIONS = ("v5_pairs", "v4_avx512vnni", "v3_avx2", "v4_neon_dotprod", "v3_neon_int8", "v2_int8")


def int8_matmul_version() -> str:
    """The fastest int8-activation quant_matmul version this CPU runs."""
    available = {name for name, _idea, ok in _core.list_versions("quant_matmul") if ok}
    return next(v for v in INT8_MATMUL_VERSIONS if v in available)


def _norm_vector(t) -> np.ndarray:
    """A 1-D norm weight as float32: the mmap view itself when the file stores F32, else a small converted copy."""
    if t.ggml_type == GGMLType.F32:
        return np.ascontiguousarray(t.data)
    from lessons.l12_quants import dequantize

    return np.ascontiguousarray(dequantize(t.data, t.ggml_type, tuple(t.shape)), dtype=np.float32)


def model_spec(gguf):
    """(config, hparams, weights) as _core.LlamaModel and _core.Backend take them: norms as float32 vectors,
    2-D weights as (ggml type, rows, cols, their raw blocks: views of the mmap)."""
    c = LlamaConfig.from_gguf(gguf)  # validates the file before anything is allocated
    hparams = dict(n_vocab=c.n_vocab, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head, n_head_kv=c.n_head_kv,
                   head_dim=c.head_dim, n_ff=c.n_ff, n_rot=c.n_rot or c.head_dim, rope_base=c.rope_base,
                   rms_eps=c.rms_eps, rope_neox=c.rope_neox)
    weights = {}
    for name, shape in c.tensor_shapes().items():
        t = gguf.tensors[name]
        weights[name] = _norm_vector(t) if len(shape) == 1 else \
            (int(t.ggml_type), int(shape[0]), int(shape[1]), np.ascontiguousarray(t.data))
    return c, hparams, weights


class CppLlama:
    """A LLaMA model evaluated by the C++ core. forward() evaluates new tokens and returns logits."""

    def __init__(self, gguf, n_ctx: int, n_threads: int = 1, int8_activations: bool = False, kv_type: str = "f32"):
        check_kv_type(kv_type)
        c, hparams, weights = model_spec(gguf)  # the file validated; the weights are views of its mmap
        self.config = c
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, (int, np.integer)) or not 1 <= n_ctx <= c.n_ctx_train:
            raise ValueError(f"n_ctx must be between 1 and the model's training context {c.n_ctx_train}, got {n_ctx}")
        if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or not 1 <= n_threads <= 1024:
            raise ValueError(f"n_threads must be between 1 and 1024, got {n_threads}")
        self.n_ctx, self.n_threads = int(n_ctx), int(n_threads)
        self._gguf = gguf  # keeps the mmap open: C++ reads the weights from it
        try:
            self._model = _core.LlamaModel(hparams, weights, self.n_ctx, self.n_threads, kv_type)
            if int8_activations:
                self._model.matmul_version = int8_matmul_version()
        except ValueError as e:  # e.g. a ggml type the kernels cannot multiply: one line naming the problem
            raise ValueError(f"C++ backend: {e}") from None

    @property
    def int8_activations(self) -> bool:
        return self._model.matmul_version in INT8_MATMUL_VERSIONS

    @property
    def kv_cache_bytes(self) -> int:
        return self._model.kv_cache_bytes

    @property
    def kv_type(self) -> str:
        """What the KV cache stores: "f16" or "f32"."""
        return self._model.kv_type

    def reset(self) -> None:
        """Forget the cache."""
        self._model.reset()

    def forward(self, tokens, pos: int, last_only: bool = False) -> np.ndarray:
        """Evaluate tokens [n] at positions pos..pos+n-1, append their K/V to the cache.

        Returns logits [n, n_vocab], or [1, n_vocab] for the last token only when last_only.
        Raises ValueError for bad tokens or positions, or when pos + n > n_ctx.
        """
        tokens = check_forward_args(tokens, pos, self.n_ctx, self.config.n_vocab)
        return self._model.forward(tokens.astype(np.int32), int(pos), bool(last_only))


# ---- the attention kernel alone (for tests and benchmarks) ----
def attention(q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: int, version: str | None = None,
              n_threads: int = 1, heads: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Causal GQA attention: q [n, n_head, hd] at positions pos..pos+n-1 against k/v caches [n_head_kv, n_ctx, hd].

    Returns [n, n_head * hd], like lessons.l06_attention.attention, whose cache has the same layout; here the
    cache may hold more positions than pos + n (the ones after are never read).
    version: one of attention_versions() (None = the fastest this CPU runs).
    heads: (begin, end) computes only those query heads, as each thread of a decoding team does; (0, 0) = all.
    """
    return _core.attention(q, k_cache, v_cache, int(pos), version or "", int(n_threads), (int(heads[0]), int(heads[1])))


def attention_versions() -> list[str]:
    """Every attention version this build has and this CPU can run, slowest first."""
    return [name for name, _idea, available in _core.attention_versions() if available]


def attention_active() -> str:
    return _core.attention_active()
