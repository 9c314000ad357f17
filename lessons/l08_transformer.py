"""Lesson 8: the whole LLaMA transformer, in numpy.

Lessons 4-7 built the parts; here they are assembled. For n new tokens at positions pos..pos+n-1:

    x = token_embd[tokens]                                       [n, n_embd]
    for each of the n_layer blocks:
        h = rmsnorm(x) * attn_norm
        q, k, v = h @ W_q.T, h @ W_k.T, h @ W_v.T                   RoPE on q and k, k and v into the cache
        x = x + attention(q, cached k, cached v) @ W_o.T          the residual stream: each block adds to x
        h = rmsnorm(x) * ffn_norm
        x = x + swiglu_ffn(h)
    logits = (rmsnorm(x) * output_norm) @ W_out.T                 [n, n_vocab]

W_out is `output.weight`, or when the file has none (SmolLM2 "ties" its embeddings) the embedding table
itself: the same [n_vocab, n_embd] matrix reads tokens in and scores them out.

All weights are dequantized once, at load, to float32 [out, in] (about 540 MB for SmolLM2-135M), so the
forward pass is plain numpy matrix products. Two small speed tricks: W_q, W_k, W_v are stacked into one
matrix (one product instead of three), and so are W_gate and W_up. Decoding one token is then about a
dozen numpy calls per layer, and the time goes where it should: reading the weights from memory.

Worked example: with a tiny model whose weights are all zero except the norms (all ones) and
token_embd, every block adds zero, so logits = rmsnorm(e_t) @ token_embd.T: token t's logit for
itself is sqrt(n_embd) * |e_t| -- a check you can do on paper, and tests/test_l08_transformer.py does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lessons.l04_rmsnorm import rmsnorm
from lessons.l05_rope import apply_rope, rope_angles
from lessons.l06_attention import KVCache, attention, check_kv_type
from lessons.l07_swiglu import silu
from lessons.l08b_config import LlamaConfig  # noqa: F401  (the config lesson; re-exported here)
from lessons.l12_quants import dequantize
from lessons.model_checks import (MAX_CACHE_BYTES, check_cache_bytes, check_forward_args,  # noqa: F401
                                  check_n_ctx)

__all__ = ["LlamaConfig", "NumpyLlama", "check_forward_args", "load_weights"]

# ---- weights ----
@dataclass
class LayerWeights:
    attn_norm: np.ndarray  # [n_embd]
    wqkv: np.ndarray  # [(n_head + 2*n_head_kv) * head_dim, n_embd]: W_q, W_k, W_v stacked
    wo: np.ndarray  # [n_embd, n_head * head_dim]
    ffn_norm: np.ndarray  # [n_embd]
    w_gate_up: np.ndarray  # [2 * n_ff, n_embd]: W_gate then W_up
    w_down: np.ndarray  # [n_embd, n_ff]


@dataclass
class ModelWeights:
    token_embd: np.ndarray  # [n_vocab, n_embd]
    layers: list[LayerWeights]
    output_norm: np.ndarray  # [n_embd]
    output: np.ndarray  # [n_vocab, n_embd]; the same array as token_embd when the embeddings are tied


# --8<-- [start:load_weights]
def load_weights(gguf, config: LlamaConfig) -> ModelWeights:
    """Dequantize every tensor the forward pass needs to float32 (shapes already checked by the config)."""

    def f32(name: str) -> np.ndarray:
        t = gguf.tensors[name]
        return np.ascontiguousarray(dequantize(t.data, t.ggml_type, tuple(t.shape)), dtype=np.float32)

    def blk(i: int, name: str) -> np.ndarray:
        return f32(f"blk.{i}.{name}.weight")

    layers = [
        LayerWeights(
            attn_norm=blk(i, "attn_norm"),
            wqkv=np.concatenate([blk(i, "attn_q"), blk(i, "attn_k"), blk(i, "attn_v")]),
            wo=blk(i, "attn_output"),
            ffn_norm=blk(i, "ffn_norm"),
            w_gate_up=np.concatenate([blk(i, "ffn_gate"), blk(i, "ffn_up")]),
            w_down=blk(i, "ffn_down"),
        )
        for i in range(config.n_layer)
    ]
    token_embd = f32("token_embd.weight")
    output = token_embd if config.tied_embeddings else f32("output.weight")
    return ModelWeights(token_embd, layers, f32("output_norm.weight"), output)
# --8<-- [end:load_weights]


# ---- the model ----
class NumpyLlama:
    """A LLaMA model in float32 numpy with a KV cache (float32, or float16 with kv_type="f16" as llama.cpp
    keeps it). forward() evaluates new tokens and returns logits."""

    def __init__(self, gguf, n_ctx: int, kv_type: str = "f32"):
        check_kv_type(kv_type)
        self.config = c = LlamaConfig.from_gguf(gguf)  # validates everything before we allocate
        self.n_ctx, self.kv_type = check_n_ctx(n_ctx, c.n_ctx_train), kv_type
        check_cache_bytes(c, self.n_ctx, kv_type)  # refuses a cache bigger than MAX_CACHE_BYTES (model_checks.py)
        self.weights = load_weights(gguf, c)
        self.cache = KVCache(c.n_layer, self.n_ctx, c.n_head_kv, c.head_dim, kv_type)
        # RoPE angles for every position we can ever see, computed once: two [n_ctx, n_rot/2] tables.
        self.rope_cos, self.rope_sin = rope_angles(np.arange(self.n_ctx), c.n_rot or c.head_dim, c.rope_base)

    def reset(self) -> None:
        """Forget the cache: the next forward() should start at pos 0.

        Zeroing is only tidiness: forward() reads the cache at positions below pos + n, and those are
        the ones the caller has evaluated since the reset.
        """
        self.cache.k[:] = 0
        self.cache.v[:] = 0

    @staticmethod
    def linear(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x [n, in] times a weight W [out, in] -> [n, out]: every weight product of the model goes through
        here, so lesson 14 can swap in llama.cpp's quantized product (an instance attribute overrides it)."""
        return x @ w.T

    # --8<-- [start:forward]
    def forward(self, tokens: np.ndarray, pos: int, last_only: bool = False) -> np.ndarray:
        """Evaluate tokens [n] at positions pos..pos+n-1, append their K/V to the cache, return logits [n, n_vocab].

        last_only=True returns only the last position's logits [1, n_vocab] (all generation needs),
        skipping the output product for the others: for SmolLM2 it costs as much as 8 blocks.
        """
        tokens = check_forward_args(tokens, pos, self.n_ctx, self.config.n_vocab)  # int64 [n], or ValueError
        c, w = self.config, self.weights
        n, end = tokens.size, pos + tokens.size
        n_q, n_kv = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
        cos, sin = self.rope_cos[pos:end], self.rope_sin[pos:end]  # [n, n_rot/2]
        x = w.token_embd[tokens]  # [n, n_embd]
        for i, layer in enumerate(w.layers):
            # ---- attention block ----
            h = rmsnorm(x, layer.attn_norm, c.rms_eps)  # [n, n_embd]
            qkv = self.linear(h, layer.wqkv)  # [n, n_embd] -> [n, n_q + 2*n_kv]
            # q and k heads turn by the same angles: rotate them together, then split
            qk = apply_rope(qkv[:, : n_q + n_kv].reshape(n, c.n_head + c.n_head_kv, c.head_dim), cos, sin, c.rope_neox)
            q, k = qk[:, : c.n_head], qk[:, c.n_head :]  # [n, n_head, hd], [n, n_head_kv, hd]
            v = qkv[:, n_q + n_kv :].reshape(n, c.n_head_kv, c.head_dim)  # [n, n_head_kv, hd]
            self.cache.store(i, pos, k, v)
            att = attention(q, self.cache.k[i, :, :end], self.cache.v[i, :, :end], pos)  # [n, n_q]
            x = x + self.linear(att, layer.wo)  # [n, n_q] -> [n, n_embd]
            # ---- feed-forward block ----
            h = rmsnorm(x, layer.ffn_norm, c.rms_eps)  # [n, n_embd]
            gate_up = self.linear(h, layer.w_gate_up)  # [n, n_embd] -> [n, 2*n_ff]
            x = x + self.linear(silu(gate_up[:, : c.n_ff]) * gate_up[:, c.n_ff :], layer.w_down)  # [n, n_ff] -> [n, n_embd]
        if last_only:
            x = x[-1:]  # [1, n_embd]
        x = rmsnorm(x, w.output_norm, c.rms_eps)  # [n, n_embd]
        return self.linear(x, w.output)  # [n, n_embd] -> [n, n_vocab]
    # --8<-- [end:forward]
