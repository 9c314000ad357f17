#!/usr/bin/env python3
"""Write a synthetic llama GGUF of any shape: random bits in every block, sane half-float scales. For benchmarks.

    python tools/make_synthetic_gguf.py out.gguf --shape 7b --type Q4_0        # Llama-2-7B's shapes, 3.8 GB
    python tools/make_synthetic_gguf.py out.gguf --shape 7b --type Q4_K_M      # Q4_K, Q6_K where llama-quantize puts it
    python tools/make_synthetic_gguf.py out.gguf --shape tiny --type Q8_0      # a few MB, for the tests

The weights are noise (the text it writes is nonsense), but every block is a valid block of its type: the integer
fields take every bit pattern and the fp16 scales (d, and dmin/m where the type has one) are small finite numbers,
so the forward pass stays finite and reads exactly the bytes a real model of that shape and type would. That is
what a speed benchmark needs, without downloading gigabytes. Random bytes come from one pool of 16 MB, reused at
random offsets, so a 7B file takes about as long as the disk takes to write it. No tokenizer: {arch}.vocab_size only
(the models never read the tokens; feed them ids).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lessons.l01_gguf import GGUF_DEFAULT_ALIGNMENT, GGMLType  # noqa: E402
from lessons.l01b_gguf_writer import header_bytes, write_atomically  # noqa: E402
from lessons.l12_quants import GGML_TYPES, row_bytes  # noqa: E402

# n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff
SHAPES = {
    "tiny": (512, 256, 2, 4, 2, 512),
    "135m": (49152, 576, 30, 9, 3, 1536),      # SmolLM2-135M
    "7b": (32000, 4096, 32, 32, 32, 11008),    # Llama-2-7B
    "8b": (128256, 4096, 32, 32, 8, 14336),    # Llama-3-8B (grouped queries)
}

# byte offset of each fp16 scale in a block, and the largest magnitude it gets
F16_FIELDS = {
    2: [(0, 0.01)], 3: [(0, 0.01), (2, 0.05)], 6: [(0, 0.005)], 7: [(0, 0.005), (2, 0.05)], 8: [(0, 0.001)],
    10: [(80, 0.01), (82, 0.01)], 11: [(108, 0.005)], 12: [(0, 0.002), (2, 0.002)], 13: [(0, 0.001), (2, 0.001)],
    14: [(208, 0.0005)],
}
POOL_BYTES = 16 << 20


def random_blocks(t: int, n_rows: int, n_cols: int, rng: np.random.Generator, pool: np.ndarray | None = None) -> np.ndarray:
    """[n_rows, row_bytes] uint8 of ggml type t (F32/F16: values ~ N(0, 1/n_cols)): random integer bits, valid scales.

    pool: random bytes to copy from (a slice at a random offset) instead of drawing every byte: fast, and as good
    for timing. k-quant d and dmin are positive, as in real files (the mins are subtracted)."""
    if t == 0:
        return (rng.standard_normal((n_rows, n_cols), dtype=np.float32) / np.float32(np.sqrt(n_cols))).view(np.uint8)
    if t == 1:
        return (rng.standard_normal((n_rows, n_cols), dtype=np.float32) / np.float32(np.sqrt(n_cols))).astype(np.float16).view(np.uint8)
    _, block, nbytes = GGML_TYPES[t]
    n = n_rows * (n_cols // block) * nbytes
    if pool is None or n > pool.size:
        raw = rng.integers(0, 256, size=n, dtype=np.uint8)
    else:
        start = int(rng.integers(0, pool.size - n + 1))
        raw = pool[start:start + n].copy()
    raw = raw.reshape(n_rows, n_cols // block, nbytes)
    for off, scale in F16_FIELDS[t]:
        vals = rng.uniform(scale / 4, scale, size=raw.shape[:2]).astype(np.float16)
        if t in (2, 3, 6, 7, 8, 11, 14):  # symmetric scales (and the Q4_1/Q5_1 min) may be negative
            vals *= np.where(rng.integers(0, 2, size=vals.shape) == 1, 1, -1).astype(np.float16)
        raw[..., off:off + 2] = vals.view(np.uint8).reshape(raw.shape[:2] + (2,))
    return raw.reshape(n_rows, -1)


def use_more_bits(i: int, n: int) -> bool:
    """llama-quantize's Q4_K_M rule for attn_v and ffn_down: Q6_K in the first and last eighth, every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_types(kind: str, n_layer: int) -> dict:
    """ggml type per tensor role and layer for a file type name: Q4_0, Q8_0, Q4_K_M, F16, ..."""
    if kind == "Q4_K_M":
        def pick(role, i):
            if role == "output":
                return GGMLType.Q6_K
            if role in ("attn_v", "ffn_down") and use_more_bits(i, n_layer):
                return GGMLType.Q6_K
            return GGMLType.Q4_K
        return pick
    t = GGMLType[kind]
    return lambda role, i: t


def synthetic_tensors(shape, kind):
    """[(name, ggml_type, numpy shape)] of a llama model: untied output, F32 norms."""
    n_vocab, d, n_layer, n_head, n_head_kv, n_ff = shape
    hd = d // n_head
    pick = tensor_types(kind, n_layer)
    out = [("token_embd.weight", pick("token_embd", 0), (n_vocab, d))]
    for i in range(n_layer):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", GGMLType.F32, (d,)),
                (b + "attn_q.weight", pick("attn_q", i), (n_head * hd, d)),
                (b + "attn_k.weight", pick("attn_k", i), (n_head_kv * hd, d)),
                (b + "attn_v.weight", pick("attn_v", i), (n_head_kv * hd, d)),
                (b + "attn_output.weight", pick("attn_output", i), (d, n_head * hd)),
                (b + "ffn_norm.weight", GGMLType.F32, (d,)),
                (b + "ffn_gate.weight", pick("ffn_gate", i), (n_ff, d)),
                (b + "ffn_up.weight", pick("ffn_up", i), (n_ff, d)),
                (b + "ffn_down.weight", pick("ffn_down", i), (d, n_ff))]
    out += [("output_norm.weight", GGMLType.F32, (d,)), ("output.weight", pick("output", 0), (n_vocab, d))]
    return out


def write_synthetic(path, shape_name: str = "tiny", kind: str = "Q4_0", seed: int = 0) -> int:
    """Write the file (via a temporary next to it, renamed at the end); returns its size in bytes."""
    shape = SHAPES[shape_name]
    n_vocab, d, n_layer, n_head, n_head_kv, n_ff = shape
    rng = np.random.default_rng(seed)
    metadata = {
        "general.architecture": "llama", "general.name": f"synthetic-{shape_name}-{kind}",
        "llama.vocab_size": n_vocab, "llama.context_length": 4096, "llama.embedding_length": d,
        "llama.block_count": n_layer, "llama.feed_forward_length": n_ff, "llama.attention.head_count": n_head,
        "llama.attention.head_count_kv": n_head_kv, "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.freq_base": 10000.0, "llama.rope.dimension_count": d // n_head,
    }
    tensors = synthetic_tensors(shape, kind)
    layout = []
    for name, t, shp in tensors:
        nbytes = int(np.prod(shp[:-1], dtype=np.int64)) * row_bytes(int(t), shp[-1])
        layout.append((name, tuple(reversed(shp)), t, nbytes))
    head = header_bytes(metadata, layout, {}, GGUF_DEFAULT_ALIGNMENT)
    pool = rng.integers(0, 256, size=POOL_BYTES, dtype=np.uint8)

    def blobs():  # one tensor's bytes at a time: a 7B model never sits in memory
        for name, t, shp in tensors:
            if len(shp) == 1:
                yield (1.0 + 0.1 * rng.standard_normal(shp)).astype(np.float32).view(np.uint8).tobytes()
            else:
                yield random_blocks(int(t), shp[0], shp[1], rng, pool).tobytes()

    write_atomically(path, head, blobs(), GGUF_DEFAULT_ALIGNMENT)
    return os.path.getsize(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="the GGUF file to write")
    p.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--type", default="Q4_0", help="Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, Q4_K_M, F16, F32")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    kinds = {"Q4_K_M", "F16", "F32"} | {name for t, (name, _, _) in GGML_TYPES.items() if t in F16_FIELDS}
    if args.type not in kinds:
        print(f"error: --type must be one of {', '.join(sorted(kinds))}", file=sys.stderr)
        return 2
    try:
        size = write_synthetic(args.out, args.shape, args.type, args.seed)
    except OSError as e:
        print(f"error: {args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"{args.out}: {args.shape} {args.type}, {size / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
