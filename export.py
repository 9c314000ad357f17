#!/usr/bin/env python3
# --8<-- [start:intro]
"""export.py: llama-quantize (and llama.cpp's converter) in one readable file.

    python export.py IN.gguf OUT.gguf TYPE        TYPE: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0
                                                        Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M
                                                        Q5_K_S Q5_K_M Q6_K  (and Q3_K, Q4_K, Q5_K = the _M ones)
    python export.py HF_FOLDER OUT.gguf TYPE      a Hugging Face LlamaForCausalLM/MistralForCausalLM folder
    python export.py META_FOLDER OUT.gguf TYPE    consolidated.*.pth + params.json (+ tokenizer.model/.json)
    python export.py model.bin OUT.gguf TYPE      a llama2.c file (--tokenizer FILE, else tokenizer.bin beside it)

A training checkpoint is read by lessons 16-18 and planned by lesson 19c: every tensor gets its GGUF
name, shape, stored type and a loader, and the metadata is made from its config and tokenizer. From
there it is the same job as a GGUF input: one writer, tensor by tensor, straight from the mmap.

A preset is not one tensor type but a recipe. llama.cpp's recipe (llama_tensor_get_type in
llama-quant.cpp) starts every weight matrix at the preset's base type and then moves some:
  * 1-D tensors (norms, biases) are never quantized: they are tiny and every token touches them.
  * output.weight (or, when the model has none, the tied token_embd.weight that doubles as
    the output projection) gets Q6_K: errors there land directly on the logits.
  * attn_v and ffn_down get more bits in the "_M"/"_L" presets, in the first 1/8 of the layers,
    the last 1/8 and every third layer in between (use_more_bits below).
  * a k-quant needs rows that are a multiple of 256 values; where a row is not (SmolLM2's 576),
    the tensor falls back to a 32-block type of about the same size: Q4_K -> Q5_0, Q6_K -> Q8_0...

Worked example (SmolLM2-135M, 30 layers, rows of 576 or 1536 values), preset Q4_K_M:
  blk.0.ffn_down.weight   ne [1536, 576]: layer 0 < 30/8 -> use_more_bits -> Q6_K; 1536 % 256 == 0, keeps Q6_K
  blk.4.ffn_down.weight   ne [1536, 576]: (4 - 3) % 3 == 1 -> not more bits -> Q4_K
  blk.4.attn_q.weight     ne [576, 576] : base Q4_K, but 576 % 256 == 64 -> falls back to Q5_0
  token_embd.weight       ne [576, 49152]: tied output, 576 % 256 != 0 -> Q8_0
  blk.4.attn_norm.weight  ne [576]      : 1-D -> stays F32

The work is done tensor by tensor, a slab of rows at a time, so memory stays at one tensor's output
plus one slab of floats, whatever the model's size. The file is written under a temporary name in
OUT's folder and renamed at the very end: an error or Ctrl-C never leaves a partial OUT behind.
"""
# --8<-- [end:intro]
from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from lessons.ggml_types import TYPE_TABLE, row_bytes
from lessons.l01_gguf import GGMLType, GGUFFile, GGUFValueType
from lessons.l01b_gguf_writer import header_bytes
from lessons.l12_quants import dequantize, quantize
from lessons.l19c_checkpoint_source import open_checkpoint

T = GGMLType  # short alias: the rules below are a wall of type names

# ---- Presets ----
# name -> (llama.cpp's LLAMA_FTYPE number written to general.file_type, base tensor type)
# --8<-- [start:presets]
PRESETS: dict[str, tuple[int, GGMLType]] = {
    "F32": (0, T.F32), "F16": (1, T.F16), "BF16": (32, T.BF16),
    "Q4_0": (2, T.Q4_0), "Q4_1": (3, T.Q4_1), "Q5_0": (8, T.Q5_0), "Q5_1": (9, T.Q5_1), "Q8_0": (7, T.Q8_0),
    "Q2_K": (10, T.Q2_K),
    "Q3_K_S": (11, T.Q3_K), "Q3_K_M": (12, T.Q3_K), "Q3_K_L": (13, T.Q3_K),
    "Q4_K_S": (14, T.Q4_K), "Q4_K_M": (15, T.Q4_K),
    "Q5_K_S": (16, T.Q5_K), "Q5_K_M": (17, T.Q5_K),
    "Q6_K": (18, T.Q6_K),
}
# --8<-- [end:presets]
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}  # llama-quantize's short names
FLOAT_TYPES = (T.F32, T.F16, T.BF16)
QUANTIZATION_VERSION = 2  # ggml's GGML_QNT_VERSION: the block layouts we write
SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")  # a quantized file is one file


def block_size(ggml_type: int) -> int:
    return TYPE_TABLE[ggml_type][0]  # values per block: 32, or 256 for the k-quants


# ---- Which tensors are quantized at all ----
# Only weight matrices: 2-D or 3-D (stacked experts), named "...weight", and not one of the small
# or position-like tables that llama.cpp leaves alone. Everything else is copied byte for byte.
KEEP_AS_IS = ("_norm.weight", "ffn_gate_inp.weight", "altup", "laurel", "per_layer_model_proj",
              "ssm_conv1d", "shortconv.conv.weight", "time_mix_first.weight", "time_mix_w0.weight",
              "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
              "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
              "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
              "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
              ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger")
KEEP_EXACT = ("position_embd.weight", "token_types.weight")


def n_dims(ne) -> int:
    """ggml_n_dims: trailing dimensions of length 1 don't count (a [576, 1] tensor is 1-D)."""
    n = len(ne)
    while n > 1 and ne[n - 1] == 1:
        n -= 1
    return n


def allows_quantization(name: str, ne) -> bool:
    return (n_dims(ne) >= 2 and name.endswith("weight") and name not in KEEP_EXACT
            and not any(part in name for part in KEEP_AS_IS))


# ---- Tensor categories ----
def category(name: str) -> str:
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    # a fused QKV and MLA's kv_b carry V, so they get attn_v's treatment
    for key, cat in (("attn_qkv.weight", "attn_v"), ("attn_kv_b.weight", "attn_v"), ("attn_v.weight", "attn_v"),
                     ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"), ("attn_output.weight", "attn_output"),
                     ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"), ("ffn_down", "ffn_down")):
        if key in name:
            return cat
    return "other"


def layer_of(name: str) -> int:
    m = re.match(r"blk\.(\d+)\.", name)
    return int(m.group(1)) if m else -1


def llama_cpp_order(names: list[str]) -> list[str]:
    """llama.cpp visits (and writes) tensors sorted by layer number, then by name; the counters
    in the rules below (the i-th attn_v, the i-th ffn_down) count in this order."""
    return sorted(names, key=lambda n: (layer_of(n), n))


@dataclass
class ModelFacts:
    """The few hyperparameters the rules look at, read from any architecture's metadata."""
    arch: str
    n_layer: int
    n_gqa: int       # query heads per KV head
    n_expert: int
    is_70b: bool     # llama.cpp gives a 70B llama's small attn_v more bits

    @staticmethod
    def from_metadata(metadata: dict) -> "ModelFacts":
        arch = str(metadata.get("general.architecture", ""))

        def first(value, default):  # some architectures store a per-layer list
            if isinstance(value, list):
                value = value[0] if value else default
            return int(value) if isinstance(value, (int, float)) else default

        n_layer = first(metadata.get(f"{arch}.block_count"), 0)
        n_head = first(metadata.get(f"{arch}.attention.head_count"), 0)
        n_head_kv = first(metadata.get(f"{arch}.attention.head_count_kv"), n_head)
        n_expert = first(metadata.get(f"{arch}.expert_count"), 0)
        n_gqa = n_head // n_head_kv if n_head_kv else 0
        is_70b = arch == "llama" and n_layer == 80 and n_head != n_head_kv
        return ModelFacts(arch, n_layer, n_gqa, n_expert, is_70b)


# ---- The recipe: one preset -> a type for every tensor ----
# --8<-- [start:fallback]
def use_more_bits(i_layer: int, n_layer: int) -> bool:
    """First eighth, last eighth, and every third layer in between."""
    return i_layer < n_layer // 8 or i_layer >= 7 * n_layer // 8 or (i_layer - n_layer // 8) % 3 == 2


def fallback(new_type: GGMLType, n_per_row: int) -> GGMLType:
    """A row must hold whole blocks. If it doesn't, use a 32-block type of similar size;
    if even that doesn't fit (rows not a multiple of 32), F16."""
    if n_per_row % block_size(new_type) == 0:
        return new_type
    smaller = {T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}
    new_type = smaller.get(new_type, new_type)
    return new_type if n_per_row % block_size(new_type) == 0 else T.F16
# --8<-- [end:fallback]


# --8<-- [start:recipe]
class Recipe:
    """Mirrors llama.cpp's per-tensor choice. Stateful like the original: the attn_v and
    ffn_down rules count how many of those tensors they have seen (call in llama_cpp_order)."""

    def __init__(self, preset: str, facts: ModelFacts, names: list[str]):
        self.preset, self.facts = preset, facts
        self.ftype, self.base = PRESETS[preset]
        self.tied = "output.weight" not in names  # no output.weight: token_embd is also the output
        self.n_attn_v = sum(category(n) == "attn_v" for n in names)
        self.i_attn_v = self.i_ffn_down = 0

    def choose(self, name: str, ne, cur_type: GGMLType) -> GGMLType:
        if not allows_quantization(name, ne):
            return cur_type
        if self.base in FLOAT_TYPES:  # F32/F16/BF16 presets: every weight matrix, no exceptions
            return self.base
        return fallback(self.tweak(name, ne, category(name)), ne[0])

    def tweak(self, name: str, ne, cat: str) -> GGMLType:
        p, f, new = self.preset, self.facts, self.base
        falcon = f.arch == "falcon"
        if cat == "output" or (self.tied and cat == "token_embd"):
            if falcon or ne[0] % block_size(new) != 0:
                return T.Q8_0
            return new if new == T.Q8_0 else T.Q6_K
        if cat == "token_embd":
            return new
        if cat == "attn_v":
            i = self.i_attn_v
            self.i_attn_v += 1
            if p == "Q2_K":
                new = T.Q4_K if f.n_gqa >= 4 else T.Q3_K
            elif p == "Q3_K_M":
                new = T.Q5_K if i < 2 else T.Q4_K
            elif p == "Q3_K_L":
                new = T.Q5_K
            elif p in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, self.n_attn_v):
                new = T.Q6_K
            elif p == "Q4_K_S" and i < 4:
                new = T.Q5_K
            if f.is_70b and new in (T.Q3_K, T.Q4_K):
                new = T.Q5_K  # 8 query heads share each V head: a small tensor, worth the bits
            if f.n_expert == 8:
                new = T.Q8_0
            return new
        if cat == "attn_k":
            return T.Q8_0 if f.n_expert == 8 else new
        if cat == "ffn_down":
            i, n = self.i_ffn_down, f.n_layer
            if f.n_expert > 1:  # experts of one layer are not consecutive: take the layer from the name
                i = layer_of(name)
            self.i_ffn_down += 1
            if p == "Q2_K":
                new = T.Q3_K
            elif p == "Q3_K_M":
                new = (T.Q5_K if i < n // 16 else
                       T.Q4_K if not falcon or use_more_bits(i, n) else T.Q3_K)
            elif p == "Q3_K_L":
                new = T.Q4_K if falcon else T.Q5_K
            elif p == "Q4_K_M":
                if falcon:
                    new = T.Q6_K if i < n // 16 else T.Q5_K if use_more_bits(i, n) else T.Q4_K
                elif use_more_bits(i, n):
                    new = T.Q6_K
            elif p == "Q5_K_M" and use_more_bits(i, n):
                new = T.Q6_K
            elif p == "Q4_K_S" and not falcon and i < n // 8:
                new = T.Q5_K
            return new
        if cat == "attn_output":
            if falcon:
                return T.Q4_K if p == "Q3_K_L" else new
            if f.n_expert == 8:
                return T.Q5_K if p in ("Q2_K", "Q3_K_S", "Q3_K_M", "Q4_K_S", "Q4_K_M") else new
            return {"Q2_K": T.Q3_K, "Q3_K_M": T.Q4_K, "Q3_K_L": T.Q5_K}.get(p, new)
        return new
# --8<-- [end:recipe]


def plan_types(gguf, preset: str) -> dict[str, GGMLType]:
    """name -> output type for every tensor of an open source, in llama.cpp's visiting order."""
    names = llama_cpp_order(list(gguf.tensors))
    recipe = Recipe(preset, ModelFacts.from_metadata(gguf.metadata), names)
    return {n: recipe.choose(n, gguf.tensors[n].ne, gguf.tensors[n].ggml_type) for n in names}


# ---- Converting one tensor, a slab of rows at a time ----
SLAB_FLOATS = 1 << 24  # 64 MiB of float32 per slab: memory stays flat whatever the model's size


def encode_rows(x: np.ndarray, new_type: GGMLType) -> np.ndarray:
    """[rows, n] float32 -> those rows stored as new_type (lesson 12: floats typed, quants raw blocks)."""
    return quantize(x, new_type)


def decode_rows(raw: np.ndarray, cur_type: GGMLType, n_per_row: int) -> np.ndarray:
    """A slab of rows as stored -> [rows, n] float32."""
    if cur_type == T.F32:
        return raw
    if cur_type == T.BF16:  # lesson 12's shift, in one pass into one new array (a checkpoint's usual type)
        out = np.empty(raw.shape, np.uint32)                          # [rows, n]
        np.left_shift(raw, 16, out=out, dtype=np.uint32)              # the 16 bits back on top
        return out.view(np.float32)
    return dequantize(raw, cur_type, (raw.shape[0], n_per_row))


# --8<-- [start:convert]
def convert_tensor(info, new_type: GGMLType):
    """Yield the tensor's bytes in new_type, slab by slab (whole rows, so blocks never straddle)."""
    if info.ggml_type == new_type:  # nothing to do: copy the stored bytes
        yield np.asarray(info.data).reshape(-1).view(np.uint8)
        return
    if info.n_elements == 0:
        return
    n_per_row = int(info.ne[0])
    data = np.asarray(info.data)  # once: a checkpoint's tensor may be made on demand (lesson 19c)
    rows = data.reshape(-1, data.shape[-1])  # [n_rows, stored row] (3-D experts too)
    step = max(1, SLAB_FLOATS // max(n_per_row, 1))
    for start in range(0, rows.shape[0], step):
        x = decode_rows(rows[start:start + step], info.ggml_type, n_per_row)  # [step, n_per_row] f32
        yield np.ascontiguousarray(encode_rows(x, new_type)).reshape(-1).view(np.uint8)
# --8<-- [end:convert]


# ---- Writing: the GGUF layout, streamed ----
# write_gguf (lesson 1b) wants every tensor's bytes up front; here a model may be
# bigger than RAM, so we lay out the header (header_bytes) from the planned types and stream the data.
def out_metadata(gguf, ftype: int) -> tuple[dict, dict]:
    metadata = {k: v for k, v in gguf.metadata.items() if k not in SPLIT_KEYS}
    types = {k: v for k, v in gguf.metadata_types.items() if k in metadata}
    for key, value in (("general.quantization_version", QUANTIZATION_VERSION), ("general.file_type", ftype)):
        metadata[key], types[key] = value, GGUFValueType.UINT32
    return metadata, types


# ---- The whole job ----
@dataclass
class ExportStats:
    n_tensors: int
    n_elements: int
    bytes_in: int
    bytes_out: int     # tensor data only, as llama-quantize reports it
    seconds: float
    requantized: list  # names of quantized input tensors that were converted to another type

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.bytes_out / max(self.n_elements, 1)


# ---- The source: a GGUF file or a training checkpoint, seen the same way ----
# --8<-- [start:source]
def open_source(path: str, tokenizer: str | None = None):
    """The model to convert. Both kinds offer .metadata, .metadata_types, .alignment, .close() and
    .tensors: name -> (.ggml_type, .ne, .n_elements, .nbytes, .data), where .data is a GGUF file's
    zero-copy view, or a checkpoint tensor's values produced on demand (lesson 19c)."""
    if os.path.isfile(path) and (path.endswith(".gguf") or _starts_with(path, b"GGUF")):
        return GGUFFile(path)
    return open_checkpoint(path, tokenizer)


def _starts_with(path: str, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def write_order(src, types: dict, preset: str) -> list[str]:
    """llama-quantize writes in its visiting order; llama.cpp's converter (F32/F16/BF16 from a
    checkpoint) keeps the checkpoint's order, which lesson 19c's plan holds."""
    if getattr(src, "natural_order", False) and PRESETS[preset][1] in FLOAT_TYPES:
        return list(src.tensors)
    return list(types)  # llama.cpp's order: non-layer tensors, then layer by layer
# --8<-- [end:source]


def export(in_path: str, out_path: str, preset: str, progress=None, tokenizer: str | None = None) -> ExportStats:
    """Quantize (or convert) IN to OUT with a preset. OUT appears only when everything is written."""
    if preset not in PRESETS:
        raise ValueError(f"unknown type '{preset}' (choose from {', '.join(PRESETS)})")
    t0 = time.perf_counter()
    gguf = open_source(in_path, tokenizer)
    try:
        types = plan_types(gguf, preset)
        order = write_order(gguf, types, preset)
        layout = []
        for name in order:
            info, new = gguf.tensors[name], types[name]
            n_rows = info.n_elements // max(int(info.ne[0]), 1)
            layout.append((name, tuple(int(d) for d in info.ne), new, n_rows * row_bytes(new, int(info.ne[0]))))
        metadata, mtypes = out_metadata(gguf, PRESETS[preset][0])
        head = header_bytes(metadata, layout, mtypes, gguf.alignment)
        requantized = [n for n in order if gguf.tensors[n].ggml_type not in FLOAT_TYPES
                       and types[n] != gguf.tensors[n].ggml_type]
        with AtomicFile(out_path) as f:
            f.write(head)
            for i, (name, ne, new, nbytes) in enumerate(layout):
                if progress:
                    progress(i, len(layout), name, gguf.tensors[name].ggml_type, new)
                written = 0
                for chunk in convert_tensor(gguf.tensors[name], new):
                    f.write(chunk.data)
                    written += chunk.nbytes
                if written != nbytes:  # a quantizer that returns the wrong row size is a bug: stop
                    raise ValueError(f"tensor '{name}': wrote {written} bytes, expected {nbytes}")
                f.write(b"\0" * (-nbytes % gguf.alignment))
        return ExportStats(len(layout), sum(t.n_elements for t in gguf.tensors.values()),
                           sum(t.nbytes for t in gguf.tensors.values()), sum(n for *_, n in layout),
                           time.perf_counter() - t0, requantized)
    finally:
        gguf.close()


# --8<-- [start:atomic]
class AtomicFile:
    """Write to a hidden temporary file beside the target; rename over it only on success.
    Any exception (Ctrl-C included) deletes the temporary file, so OUT is all or nothing."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)

    def __enter__(self):
        folder, base = os.path.split(self.path)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=folder)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a model file is normally world-readable
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type, exc, tb):
        try:
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False
# --8<-- [end:atomic]


# ---- Command line ----
class UsageError(Exception):
    """Exit status 2: the command line itself is wrong."""


class Progress:
    """One line on stderr, rewritten in place on a terminal; on a pipe, a line every few seconds."""

    def __init__(self, stream=sys.stderr, every: float = 5.0):
        self.stream, self.every, self.tty = stream, every, stream.isatty()
        self.t0 = self.last = time.perf_counter()

    def __call__(self, i, n, name, cur, new):
        now = time.perf_counter()
        line = f"[{i + 1:4d}/{n:4d}] {name:36s} {cur.name:>5s} -> {new.name:<5s}"
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(80))
        elif now - self.last >= self.every:
            self.stream.write(f"{line}  ({now - self.t0:.0f} s)\n")
            self.last = now
        self.stream.flush()

    def done(self):
        if self.tty:
            self.stream.write("\r" + " " * 80 + "\r")


def parse_args(argv):
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):  # argparse prints two lines and exits; we want one line
            raise UsageError(message)

    p = Parser(prog="export.py", description="Quantize a GGUF model or convert a checkpoint (llama-quantize's presets).")
    p.add_argument("input", help="input .gguf (F32/F16/BF16 or already quantized), a Hugging Face or Meta "
                                 "checkpoint folder, or a llama2.c .bin")
    p.add_argument("output", help="output .gguf (written atomically)")
    p.add_argument("type", help="one of " + " ".join(PRESETS))
    p.add_argument("--allow-requantize", action="store_true",
                   help="accepted for llama-quantize compatibility; requantizing is always allowed here")
    p.add_argument("--dry-run", action="store_true", help="print each tensor's planned type; write nothing")
    p.add_argument("--tokenizer", help="tokenizer file for a llama2.c .bin (tokenizer.bin) or a Meta folder")
    args = p.parse_args(argv)
    args.type = ALIASES.get(args.type.upper(), args.type.upper())
    if args.type not in PRESETS:
        raise UsageError(f"unknown type '{args.type}' (choose from {', '.join(PRESETS)})")
    if not os.path.exists(args.input):
        raise UsageError(f"input file '{args.input}' does not exist")
    if args.tokenizer is not None and not os.path.isfile(args.tokenizer):
        raise UsageError(f"tokenizer file '{args.tokenizer}' does not exist")
    if not args.dry_run:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise UsageError(f"output folder '{folder}' does not exist")
        if os.path.isdir(args.output):
            raise UsageError(f"output '{args.output}' is a folder")
        if os.path.exists(args.output) and os.path.samefile(args.input, args.output):
            raise UsageError(f"output '{args.output}' is the input file; choose another name")
    return args


def dry_run(path: str, preset: str, tokenizer: str | None = None) -> None:
    src = open_source(path, tokenizer)
    try:
        for name, new in plan_types(src, preset).items():
            info = src.tensors[name]
            print(f"{name:40s} {str(list(info.ne)):16s} {info.ggml_type.name:>5s} -> {new.name}")
    finally:
        src.close()


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.dry_run:
            dry_run(args.input, args.type, args.tokenizer)
            return 0
        progress = Progress()
        stats = export(args.input, args.output, args.type, progress, args.tokenizer)
        progress.done()
        if stats.requantized and not args.allow_requantize:
            sys.stderr.write(f"warning: requantized {len(stats.requantized)} already-quantized tensors; "
                             "quality is lower than quantizing from F32/F16\n")
        sys.stderr.write(f"{args.output}: {args.type}, {stats.n_tensors} tensors, "
                         f"{stats.bytes_in / 2**20:.2f} MiB -> {stats.bytes_out / 2**20:.2f} MiB "
                         f"({stats.bits_per_weight:.2f} bits per weight) in {stats.seconds:.1f} s\n")
        return 0
    except UsageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\nerror: interrupted; no output written\n")
        return 130
    except (ValueError, OSError, MemoryError) as e:  # GGUFError is a ValueError
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write(f"error: {msg}\n")
        return 1
    except Exception as e:  # a bug of ours: still one line, but say so
        sys.stderr.write(f"error: internal error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
