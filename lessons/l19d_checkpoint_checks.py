"""Lesson 19d: distrust of a checkpoint's config and tensors, before anything is written.

A config.json or params.json is just JSON someone wrote: a size can be missing, zero, 2^40, or not
agree with the tensors. Every tensor a llama needs must be there, with exactly the shape the
hyperparameters give; nothing may be left over. Each failure is one CheckpointError line naming
the file and the tensor, and it happens while planning -- before export.py opens its output.
"""
from __future__ import annotations

import json

from lessons.l16_safetensors import CheckpointError


def checked_name(fn, name: str, where: str):
    try:
        return fn(name)
    except ValueError:
        raise CheckpointError(f"{where}: tensor '{name}' is not part of a llama model") from None


def check_shapes(tensors: dict, md: dict, where: str) -> None:
    """Every tensor a llama needs, each of the shape the hyperparameters say."""
    d, n_ff, n_vocab = md["llama.embedding_length"], md["llama.feed_forward_length"], md["llama.vocab_size"]
    n_head, n_kv, n_layer = (md["llama.attention.head_count"], md["llama.attention.head_count_kv"],
                             md["llama.block_count"])
    if min(d, n_ff, n_vocab, n_head, n_kv, n_layer) <= 0 or d % n_head or n_head % n_kv or (d // n_head) % 2:
        raise CheckpointError(f"{where}: impossible sizes (dim {d}, heads {n_head}/{n_kv}, ffn {n_ff}, "
                              f"layers {n_layer}, vocab {n_vocab})")
    hd = md["llama.rope.dimension_count"]
    want = {"token_embd.weight": (d, n_vocab), "output_norm.weight": (d,)}
    for i in range(n_layer):
        want |= {f"blk.{i}.attn_norm.weight": (d,), f"blk.{i}.ffn_norm.weight": (d,),
                 f"blk.{i}.attn_q.weight": (d, n_head * hd), f"blk.{i}.attn_k.weight": (d, n_kv * hd),
                 f"blk.{i}.attn_v.weight": (d, n_kv * hd), f"blk.{i}.attn_output.weight": (n_head * hd, d),
                 f"blk.{i}.ffn_gate.weight": (d, n_ff), f"blk.{i}.ffn_up.weight": (d, n_ff),
                 f"blk.{i}.ffn_down.weight": (n_ff, d)}
    if "output.weight" in tensors:
        want["output.weight"] = (d, n_vocab)
    if "rope_freqs.weight" in tensors:
        want["rope_freqs.weight"] = (hd // 2,)
    for name, ne in want.items():
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor '{name}' is missing")
        if tuple(tensors[name].ne) != ne:
            raise CheckpointError(f"{where}: tensor '{name}' has ne {list(tensors[name].ne)}, expected {list(ne)}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise CheckpointError(f"{where}: tensor '{extra[0]}' is beyond the model's {n_layer} layers")


def read_json(path: str, limit: int = 100_000_000) -> dict:
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read(limit + 1).decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return value
