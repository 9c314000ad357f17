"""Lesson 19c: a checkpoint folder or file -> a plan export.py can write, checking everything first.

A plan is what export.py's writer needs and nothing more: the GGUF metadata, and for each tensor its
GGUF name, ggml shape, stored type (F32, F16 or BF16) and a loader that produces its values only when
the writer reaches it. Lesson 19's decisions (names, the Q/K rows, hyperparameters) and 19b/19e's
(the tokenizer) are applied here; lessons 16-18 read the files. Nothing is loaded up front: a loader
returns a view of the mmap, or a copy of one tensor where rows move (Q/K) or shards are joined
(Meta's larger models), so memory stays at about one tensor whatever the model's size.

Distrust lives in lesson 19d: a config with a missing or absurd size, a tensor of the wrong shape or
dtype, a layer with a missing matrix, an unknown architecture -- each one CheckpointError with one
line, raised before the output file is opened.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lessons.l01_gguf import GGMLType
from lessons.l16_safetensors import INDEX_NAME, CheckpointError, StoredTensor, read_safetensors_folder
from lessons.l17_pth import read_pth
from lessons.l18_llama2c import read_llama2c, read_tokenizer_bin
from lessons.l19_convert import (hf_config_metadata, hf_to_gguf_name, hf_to_gguf_rows, llama2c_metadata,
                                 llama3_rope_factors, meta_params_metadata, meta_to_gguf_name)
from lessons.l19b_tokenizer_import import llama2c_pieces, vocab_from_sentencepiece
from lessons.l01a_gguf_values import GGUFValueType
from lessons.l19d_checkpoint_checks import check_shapes, checked_name, read_json
from lessons.l19e_tokenizer_files import tokenizer_metadata

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
STORED = {"F32": GGMLType.F32, "F16": GGMLType.F16, "BF16": GGMLType.BF16}


@dataclass
class PlannedTensor:
    """One output tensor: what the writer needs to lay out the file, and how to get the values."""
    name: str                        # GGUF name
    ne: tuple                        # ggml order: ne[0] is the row length
    ggml_type: GGMLType              # as the loader returns it: F32, F16 or BF16 (uint16)
    load: Callable[[], np.ndarray]   # -> the values, numpy shape = reversed(ne)

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.ne, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.n_elements * (4 if self.ggml_type == GGMLType.F32 else 2)

    @property
    def data(self) -> np.ndarray:
        return self.load()


@dataclass
class Plan:
    metadata: dict
    metadata_types: dict
    tensors: dict                    # GGUF name -> PlannedTensor, in the order the source converter writes
    natural_order: bool              # float presets keep this order (llama.cpp's convert_hf_to_gguf)
    alignment: int = 32
    keep: list = field(default_factory=list)  # objects whose mmaps must outlive the plan

    def close(self) -> None:
        self.keep.clear()


# ---- the plan for each source ----
# --8<-- [start:hf]
def plan_hf(folder: str, tokenizer: str | None = None) -> Plan:
    config = read_json(os.path.join(folder, "config.json"))
    arch = (config.get("architectures") or ["(none)"])[0]
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{folder}: architecture '{arch}' is not supported (only {', '.join(ARCHITECTURES)})")
    try:
        md = hf_config_metadata(config)
        cfg = {**config, **config.get("text_config", {})}
        factors = llama3_rope_factors(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {},
                                      md["llama.rope.freq_base"], md["llama.rope.dimension_count"])
    except KeyError as e:
        raise CheckpointError(f"{folder}/config.json: {e} is missing") from None
    except (TypeError, ValueError, ArithmeticError) as e:
        raise CheckpointError(f"{folder}/config.json: {str(e)[:100]}") from None
    n_head, n_kv = md["llama.attention.head_count"], md["llama.attention.head_count_kv"]
    stored = read_safetensors_folder(folder)
    tensors = {}
    if factors is not None:  # llama.cpp's converter writes this generated tensor first
        tensors["rope_freqs.weight"] = PlannedTensor("rope_freqs.weight", factors.shape, GGMLType.F32, lambda: factors)
    for name in convert_order(folder, stored):
        new = checked_name(hf_to_gguf_name, name, folder)
        if new is None:
            continue
        heads = n_head if new.endswith("attn_q.weight") else n_kv if new.endswith("attn_k.weight") else None
        tensors[new] = planned(new, stored[name], lambda a, h=heads: hf_to_gguf_rows(a, h) if h else a, folder)
    if not config.get("tie_word_embeddings", True) and "output.weight" not in tensors:
        raise CheckpointError(f"{folder}: tie_word_embeddings is false but lm_head.weight is missing")
    check_shapes(tensors, md, folder)
    return Plan(header(os.path.basename(os.path.abspath(folder)), md) | tokenizer_metadata(folder, config, md, tokenizer),
                TYPES, tensors, natural_order=True, keep=[stored])
# --8<-- [end:hf]


# --8<-- [start:meta]
SPLIT_AXIS = {"attn_q": 0, "attn_k": 0, "attn_v": 0, "ffn_gate": 0, "ffn_up": 0, "output": 0,
              "attn_output": 1, "ffn_down": 1, "token_embd": 1}  # norms are the same in every shard


def plan_meta(folder: str, tokenizer: str | None = None) -> Plan:
    params = read_json(os.path.join(folder, "params.json"))
    shards = [read_pth(p) for p in sorted(glob.glob(os.path.join(folder, "consolidated.*.pth")))]
    tensors = {}
    for name in shards[0]:
        new = checked_name(meta_to_gguf_name, name, folder)
        if new is None:
            continue
        parts = [s.get(name) for s in shards]
        if any(p is None or p.dtype != parts[0].dtype for p in parts):
            raise CheckpointError(f"{folder}: tensor '{name}' is missing from a shard or differs in dtype")
        axis = SPLIT_AXIS.get(new.split(".")[-2]) if len(shards) > 1 and len(parts[0].shape) == 2 else None
        tensors[new] = planned(new, joined(parts, axis, name, folder), lambda a: a, folder)
    if "blk.0.ffn_gate.weight" not in tensors or "token_embd.weight" not in tensors:
        raise CheckpointError(f"{folder}: no tok_embeddings or feed_forward.w1 weights")
    n_ff, n_vocab = tensors["blk.0.ffn_gate.weight"].ne[1], tensors["token_embd.weight"].ne[1]
    try:
        md = meta_params_metadata(params, n_ff, n_vocab)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}/params.json: missing or bad value ({str(e)[:80]})") from None
    check_shapes(tensors, md, folder)
    tok = tokenizer_metadata(folder, {}, md, tokenizer, also=os.path.dirname(os.path.abspath(folder)))
    return Plan(header(os.path.basename(os.path.abspath(folder)), md) | tok, TYPES, tensors,
                natural_order=False, keep=shards)


def joined(parts: list[StoredTensor], axis, name: str, folder: str) -> StoredTensor:
    """Meta's shards of one tensor -> one StoredTensor whose data is joined only when loaded."""
    if axis is None:
        return parts[0]
    shape = list(parts[0].shape)
    if any(len(p.shape) != 2 or p.shape[1 - axis] != shape[1 - axis] for p in parts):
        raise CheckpointError(f"{folder}: the shards of '{name}' do not fit together")
    shape[axis] = sum(p.shape[axis] for p in parts)
    return LazyJoin(parts[0].dtype, tuple(shape), parts, axis)


@dataclass(frozen=True)
class LazyJoin:
    dtype: str
    shape: tuple
    parts: list
    axis: int

    @property
    def data(self) -> np.ndarray:
        return np.concatenate([p.data for p in self.parts], axis=self.axis)  # [shape] one tensor's copy
# --8<-- [end:meta]


def plan_llama2c(path: str, tokenizer: str | None = None) -> Plan:
    config, stored = read_llama2c(path)
    tensors = {}
    for name, t in stored.items():
        new = checked_name(meta_to_gguf_name, name, path)
        if new is not None:
            tensors[new] = planned(new, t, lambda a: a, path)
    md = llama2c_metadata(config)
    check_shapes(tensors, md, path)
    tok_path = tokenizer or os.path.join(os.path.dirname(os.path.abspath(path)), "tokenizer.bin")
    if not os.path.isfile(tok_path):
        raise CheckpointError(f"{path}: no tokenizer (pass --tokenizer FILE or put tokenizer.bin beside it)")
    raw, scores, _ = read_tokenizer_bin(tok_path, config.vocab_size)
    pieces, types = llama2c_pieces(raw)
    tok = vocab_from_sentencepiece(pieces, scores, types, config.vocab_size, True)
    tok |= {"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_bos_token": True}
    name = os.path.splitext(os.path.basename(path))[0]
    return Plan(header(name, md) | tok | {"general.quantization_version": 2}, TYPES, tensors,
                natural_order=False, keep=[stored])


# ---- pieces shared by the three ----
TYPES = {"tokenizer.ggml.token_type": [GGUFValueType.INT32], "general.file_type": GGUFValueType.UINT32,
         "general.quantization_version": GGUFValueType.UINT32}


def header(name: str, md: dict) -> dict:
    return {"general.architecture": "llama", "general.type": "model", "general.name": name, **md}


def planned(new: str, t, transform, where: str) -> PlannedTensor:
    """A stored tensor -> its plan: 1-D ones (norms) load as F32, as llama.cpp keeps them."""
    if t.dtype not in ("F32", "F16", "BF16", "F64") or len(t.shape) not in (1, 2) or 0 in t.shape:
        raise CheckpointError(f"{where}: tensor '{new}' is {t.dtype} of shape {t.shape}, expected float 1-D or 2-D")
    if len(t.shape) == 1 or t.dtype == "F64":
        return PlannedTensor(new, tuple(reversed(t.shape)), GGMLType.F32,
                             lambda: transform(StoredTensor(t.dtype, t.shape, t.data).to_f32()))
    return PlannedTensor(new, tuple(reversed(t.shape)), STORED[t.dtype], lambda: transform(t.data))


def convert_order(folder: str, stored: dict) -> list[str]:
    """convert_hf_to_gguf's order: shard files sorted by name, each shard's tensors sorted by name."""
    index = os.path.join(folder, INDEX_NAME)
    shard_of = read_json(index).get("weight_map", {}) if os.path.isfile(index) else {}
    return sorted(stored, key=lambda n: (shard_of.get(n, ""), n))


def open_checkpoint(path: str, tokenizer: str | None = None) -> Plan:
    """A HF folder, a Meta folder or a llama2.c file -> its plan (GGUF files are export.py's own)."""
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            return plan_hf(path, tokenizer)
        if os.path.isfile(os.path.join(path, "params.json")) and glob.glob(os.path.join(path, "consolidated.*.pth")):
            return plan_meta(path, tokenizer)
        raise CheckpointError(f"{path}: neither a Hugging Face folder (config.json) nor a Meta folder "
                              "(params.json + consolidated.*.pth)")
    return plan_llama2c(path, tokenizer)
