"""Lesson 19: from a training checkpoint to GGUF -- names, the Q/K permutation, hyperparameters.

A checkpoint (lessons 16-18) is a bag of named arrays. Turning it into a GGUF model file takes three
decisions, and this lesson is those three decisions; the reading of each format is in 16-18, the
tokenizer in 19b, and the streaming writer is export.py's (the same one that quantizes GGUF files).

1. Names. Each trainer names the same matrices its own way; GGUF uses llama.cpp's names:

       Hugging Face                               Meta / llama2.c                GGUF
       model.embed_tokens.weight                  tok_embeddings.weight          token_embd.weight
       model.layers.3.input_layernorm.weight      layers.3.attention_norm.weight blk.3.attn_norm.weight
       model.layers.3.self_attn.q_proj.weight     layers.3.attention.wq.weight   blk.3.attn_q.weight
       model.layers.3.mlp.gate_proj.weight        layers.3.feed_forward.w1.weight blk.3.ffn_gate.weight
       lm_head.weight                             output.weight                  output.weight

   A matrix stored (out, in) by PyTorch is the same bytes as GGUF's ne = [in, out]: nothing moves.

2. The Q/K rows. RoPE (lesson 5) turns pairs of a head's query/key components. Meta's code and
   GGUF pair neighbours, (0,1) (2,3) ...; Hugging Face's `rotate_half` pairs component j with
   j + head_dim/2. When Meta's weights went to Hugging Face, its converter reordered the rows of
   wq and wk so that HF's pairing finds the same numbers; converting back undoes that. Worked
   example, one head of head_dim 4, rows named by the (pair, half) they hold:

       HF row:    0      1      2      3             GGUF row:  0      1      2      3
       holds:     p0.x   p1.x   p0.y   p1.y    -->   holds:     p0.x   p0.y   p1.x   p1.y
                                                     i.e. GGUF rows = HF rows [0, 2, 1, 3]

   Per head: view the head's rows as [2, head_dim/2] (half, pair), swap to [head_dim/2, 2], flatten.
   K is done per KV head. llama2.c files come from Meta's layout (its export.py undoes HF's order),
   and V, O and the FFN never meet RoPE: none of them moves.

3. Hyperparameters. config.json (HF) or params.json (Meta) or the llama2.c header become the
   `llama.*` keys. Meta's params.json has no FFN width: it is the rows of w1, which Meta computed as
   int(2 * 4 * dim / 3), times ffn_dim_multiplier if any, rounded up to a multiple of multiple_of.
   Worked example, Llama 2 7B: dim 4096 -> 10922 -> rounded up to 256s -> 11008 = w1's rows.
"""
from __future__ import annotations

import math
import re

import numpy as np

from lessons.l05_rope import permute_hf_to_gguf

# ---- 1. names ----
# --8<-- [start:names]
HF_LAYER = {  # model.layers.{i}.<key> -> blk.{i}.<value>
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
HF_GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}

META_LAYER = {  # layers.{i}.<key> -> blk.{i}.<value>   (llama2.c's reader uses these names too)
    "attention_norm.weight": "attn_norm.weight",
    "attention.wq.weight": "attn_q.weight",
    "attention.wk.weight": "attn_k.weight",
    "attention.wv.weight": "attn_v.weight",
    "attention.wo.weight": "attn_output.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "feed_forward.w1.weight": "ffn_gate.weight",
    "feed_forward.w3.weight": "ffn_up.weight",
    "feed_forward.w2.weight": "ffn_down.weight",
}
META_GLOBAL = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
               "output.weight": "output.weight"}
SKIPPED = ("rotary_emb.inv_freq", "rope.freqs")  # RoPE's frequencies: recomputed, never stored


def gguf_name(name: str, layer_table: dict, global_table: dict, prefix: str) -> str | None:
    """A checkpoint's tensor name -> its GGUF name; None for tensors GGUF does not keep."""
    if name.endswith(SKIPPED):
        return None
    if name in global_table:
        return global_table[name]
    m = re.fullmatch(re.escape(prefix) + r"(\d+)\.(.+)", name)
    if m and m.group(2) in layer_table:
        return f"blk.{int(m.group(1))}.{layer_table[m.group(2)]}"
    raise ValueError(f"tensor '{name}' is not part of a llama model")


def hf_to_gguf_name(name: str) -> str | None:
    return gguf_name(name, HF_LAYER, HF_GLOBAL, "model.layers.")


def meta_to_gguf_name(name: str) -> str | None:
    return gguf_name(name, META_LAYER, META_GLOBAL, "layers.")
# --8<-- [end:names]


# ---- 2. the Q/K permutation ----
# --8<-- [start:permute]
# HF -> GGUF is lesson 5's permute_hf_to_gguf: per head, [half, pair] rows -> [pair, half] rows.
hf_to_gguf_rows = permute_hf_to_gguf


def gguf_to_hf_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse, [pair, half] -> [half, pair]: what Meta's-to-HF converter did (the tests'
    checkpoint writers use it to make HF folders)."""
    hd = w.shape[0] // n_head
    return (w.reshape(n_head, hd // 2, 2, *w.shape[1:])    # [head, pair, half, ...]
            .swapaxes(1, 2)                                # [head, half, pair, ...]
            .reshape(w.shape))
# --8<-- [end:permute]


# ---- 3. hyperparameters ----
# --8<-- [start:hf_config]
def hf_config_metadata(config: dict) -> dict:
    """config.json -> the llama.* keys, in the order llama.cpp's converter writes them."""
    cfg = {**config, **config.get("text_config", {})}
    n_head = int(cfg["num_attention_heads"])
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}  # newer files: rope_parameters
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    md = {"llama.block_count": int(cfg["num_hidden_layers"])}
    if "max_position_embeddings" in cfg:
        md["llama.context_length"] = int(cfg["max_position_embeddings"])
    md["llama.embedding_length"] = int(cfg["hidden_size"])
    md["llama.feed_forward_length"] = int(cfg["intermediate_size"])
    md["llama.attention.head_count"] = n_head
    md["llama.attention.head_count_kv"] = int(cfg.get("num_key_value_heads") or n_head)
    kind = rope.get("rope_type", rope.get("type")) or "default"
    if kind == "linear":  # positions divided by the factor
        md["llama.rope.scaling.type"], md["llama.rope.scaling.factor"] = "linear", float(rope["factor"])
    elif kind not in ("default", "llama3"):  # llama3: a rope_freqs tensor, see llama3_rope_factors
        raise ValueError(f"RoPE scaling '{kind}' is not supported (default, linear, llama3)")
    md["llama.rope.freq_base"] = float(theta)
    md["llama.attention.layer_norm_rms_epsilon"] = float(cfg.get("rms_norm_eps", 1e-6))
    if cfg.get("head_dim"):
        md["llama.attention.key_length"] = md["llama.attention.value_length"] = int(cfg["head_dim"])
    md["general.file_type"] = 0  # set by the writer to the preset's number
    md["llama.vocab_size"] = int(cfg["vocab_size"])
    md["llama.rope.dimension_count"] = int(cfg.get("head_dim") or cfg["hidden_size"] // n_head)
    return md
# --8<-- [end:hf_config]


def llama3_rope_factors(rope: dict, theta: float, head_dim: int) -> np.ndarray | None:
    """Llama 3.1's RoPE scaling as llama.cpp stores it: rope_freqs.weight, one divisor per pair.
    Short wavelengths keep their frequency, long ones are slowed by `factor`, those between blend."""
    if (rope.get("rope_type", rope.get("type")) or "").lower() != "llama3":
        return None
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    freqs = 1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)))
    out = []
    for freq in freqs.astype(np.float64):
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)  # [head_dim / 2]


# --8<-- [start:meta_params]
def meta_ffn_width(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's FeedForward width: 2/3 of 4*dim, scaled, rounded up to a multiple of multiple_of."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def meta_params_metadata(params: dict, n_ff: int, n_vocab: int) -> dict:
    """params.json + the FFN width (w1's rows) and vocab size (the embedding's rows) -> llama.* keys."""
    dim, n_head = int(params["dim"]), int(params["n_heads"])
    eps = float(params.get("norm_eps", 1e-5))
    theta = float(params.get("rope_theta", 10000.0))
    # params.json has no context length (llama2.c's has max_seq_len); llama.cpp's old converter
    # guessed it from the family: CodeLlama, Llama 2, Llama 1
    n_ctx = params.get("max_seq_len") or (16384 if theta == 1e6 else 4096 if eps == 1e-5 else 2048)
    return {"llama.block_count": int(params["n_layers"]), "llama.context_length": int(n_ctx),
            "llama.embedding_length": dim, "llama.feed_forward_length": int(n_ff),
            "llama.attention.head_count": n_head,
            "llama.attention.head_count_kv": int(params.get("n_kv_heads") or n_head),
            "llama.rope.freq_base": theta, "llama.attention.layer_norm_rms_epsilon": eps,
            "general.file_type": 0, "llama.vocab_size": int(n_vocab),
            "llama.rope.dimension_count": dim // n_head}
# --8<-- [end:meta_params]


def llama2c_metadata(cfg) -> dict:
    """A llama2.c header (lesson 18's Llama2cConfig) -> llama.* keys. run.c's RMSNorm eps is 1e-5."""
    return {"llama.block_count": cfg.n_layers, "llama.context_length": cfg.seq_len,
            "llama.embedding_length": cfg.dim, "llama.feed_forward_length": cfg.hidden_dim,
            "llama.attention.head_count": cfg.n_heads, "llama.attention.head_count_kv": cfg.n_kv_heads,
            "llama.rope.freq_base": float(cfg.rope_theta), "llama.attention.layer_norm_rms_epsilon": 1e-5,
            "general.file_type": 0, "llama.vocab_size": cfg.vocab_size,
            "llama.rope.dimension_count": cfg.dim // cfg.n_heads}
