"""Test helpers (numpy only, no torch): write a GGUF llama's weights and vocabulary back out as the
checkpoints trainers make -- a Hugging Face folder (safetensors F32 or BF16, optionally sharded with
an index), a Meta folder (consolidated.NN.pth zips with a hand-written pickle, params.json, optionally
split in two shards along each tensor's model-parallel axis) and llama2.c files (legacy .bin and
tokenizer.bin). export.py converting them back must give the GGUF's weights and vocabulary again.

Everything streams one tensor at a time, so the default model (540 MB of float32) is fine.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from lessons.l01_gguf import GGMLType, GGUFFile
from lessons.l12_quants import dequantize
from lessons.l19_convert import gguf_to_hf_rows

HF_NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
            "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj"}
META_NAMES = {"attn_norm": "attention_norm", "attn_q": "attention.wq", "attn_k": "attention.wk",
              "attn_v": "attention.wv", "attn_output": "attention.wo", "ffn_norm": "ffn_norm",
              "ffn_gate": "feed_forward.w1", "ffn_up": "feed_forward.w3", "ffn_down": "feed_forward.w2"}
GLOBAL_HF = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
GLOBAL_META = {"token_embd": "tok_embeddings", "output_norm": "norm", "output": "output"}


# ---- reading the GGUF side ----
class Source:
    def __init__(self, path):
        self.gguf = GGUFFile(path)
        md = self.md = self.gguf.metadata
        self.dim, self.n_layer = md["llama.embedding_length"], md["llama.block_count"]
        self.n_head = md["llama.attention.head_count"]
        self.n_kv = md.get("llama.attention.head_count_kv", self.n_head)
        self.n_ff = md["llama.feed_forward_length"]
        self.n_vocab = self.gguf.tensors["token_embd.weight"].ne[1]
        self.tied = "output.weight" not in self.gguf.tensors

    def f32(self, name: str) -> np.ndarray:
        """One tensor as float32, numpy shape (out, in); a view when the file stores F32."""
        t = self.gguf.tensors[name]
        if t.ggml_type == GGMLType.F32:
            return t.data
        return dequantize(t.data, t.ggml_type, t.shape)

    def names(self, table: dict, glob: dict, prefix: str) -> list[tuple[str, str]]:
        """(gguf name, checkpoint name) for every tensor."""
        out = []
        for name in self.gguf.tensors:
            parts = name.split(".")
            if parts[0] == "blk":
                out.append((name, f"{prefix}{parts[1]}.{table[parts[2]]}.weight"))
            else:
                out.append((name, f"{glob[parts[0]]}.weight"))
        return out


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, rounded to nearest even (what torch's .to(torch.bfloat16) does)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


# ---- Hugging Face ----
def write_hf(gguf_path, folder, dtype: str = "F32", shards: int = 1, rope_parameters: bool = False,
             chat_template_file: bool = False) -> Path:
    src, folder = Source(gguf_path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = src.md
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": src.dim,
              "intermediate_size": src.n_ff, "num_attention_heads": src.n_head,
              "num_key_value_heads": src.n_kv, "num_hidden_layers": src.n_layer, "vocab_size": src.n_vocab,
              "max_position_embeddings": md["llama.context_length"],
              "rms_norm_eps": float(md["llama.attention.layer_norm_rms_epsilon"]),
              "tie_word_embeddings": src.tied, "torch_dtype": "bfloat16" if dtype == "BF16" else "float32"}
    theta = float(md.get("llama.rope.freq_base", 10000.0))
    config |= {"rope_parameters": {"rope_type": "default", "rope_theta": theta}} if rope_parameters \
        else {"rope_theta": theta, "rope_scaling": None}
    (folder / "config.json").write_text(json.dumps(config, indent=2))

    def values(gname):
        x = src.f32(gname)
        kind = gname.split(".")[-2]
        if kind in ("attn_q", "attn_k"):
            x = gguf_to_hf_rows(x, src.n_head if kind == "attn_q" else src.n_kv)
        return to_bf16(x) if dtype == "BF16" and x.ndim == 2 else np.ascontiguousarray(x, dtype=np.float32)

    pairs = sorted(src.names(HF_NAMES, GLOBAL_HF, "model.layers."), key=lambda p: p[1])
    groups = [pairs[i::shards] for i in range(shards)] if shards > 1 else [pairs]
    weight_map, total = {}, 0
    for k, group in enumerate(groups):
        fname = "model.safetensors" if shards == 1 else f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors(folder / fname, [(hf, values(g)) for g, hf in group])  # a generator-free list
        weight_map |= {hf: fname for _, hf in group}
    if shards > 1:
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    write_tokenizer(src, folder, chat_template_file)
    src.gguf.close()
    return folder


def write_safetensors(path, items) -> int:
    """[(name, array)] -> one .safetensors file: u64 header length, JSON header, the raw data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    kinds = {np.dtype(np.float32): "F32", np.dtype(np.uint16): "BF16", np.dtype(np.float16): "F16"}
    for name, a in items:
        header[name] = {"dtype": kinds[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _, a in items:
            f.write(np.ascontiguousarray(a).data)
    return offset


def write_tokenizer(src: Source, folder: Path, chat_template_file: bool = False) -> None:
    md = src.md
    tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    text = {key: tokens[md[f"tokenizer.ggml.{key}_token_id"]] for key in ("bos", "eos", "unknown", "padding")
            if f"tokenizer.ggml.{key}_token_id" in md}
    config = {f"{k}_token" if k != "unknown" else "unk_token": v for k, v in text.items()}
    config = {("pad_token" if k == "padding_token" else k): v for k, v in config.items()}
    if "tokenizer.ggml.add_bos_token" in md:
        config["add_bos_token"] = md["tokenizer.ggml.add_bos_token"]
    template = md.get("tokenizer.chat_template")
    if template and chat_template_file:
        (folder / "chat_template.jinja").write_text(template)
    elif template:
        config["chat_template"] = template
    if md["tokenizer.ggml.model"] == "llama":
        (folder / "tokenizer.model").write_bytes(sentencepiece_model(md))
    else:
        config["add_prefix_space"] = bool(md.get("tokenizer.ggml.add_space_prefix", False))
        pre = {"smollm": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
               "gpt-2": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}}
        added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": types[i] == 3} for i, t in enumerate(tokens) if types[i] in (3, 4)]
        tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
               "pre_tokenizer": pre[md["tokenizer.ggml.pre"]], "post_processor": None, "decoder": {"type": "ByteLevel"},
               "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False, "byte_fallback": False,
                         "vocab": {t: i for i, t in enumerate(tokens)},
                         "merges": [m.split(" ") for m in md["tokenizer.ggml.merges"]]}}
        (folder / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2))


# ---- SentencePiece's protobuf, written by hand ----
def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32s are written as 10-byte two's complement
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + _varint(len(payload)) + payload


def sentencepiece_model(md: dict) -> bytes:
    """tokenizer.ggml.* of a "llama" vocabulary -> a tokenizer.model ModelProto."""
    out = []
    for text, score, kind in zip(md["tokenizer.ggml.tokens"], md["tokenizer.ggml.scores"], md["tokenizer.ggml.token_type"]):
        out.append(_field(1, 2, _field(1, 2, text.encode()) + _field(2, 5, score) + _field(3, 0, kind)))
    ids = [(40, "unknown", 0), (41, "bos", 1), (42, "eos", 2), (43, "padding", -1)]
    trainer = _field(3, 0, 2) + b"".join(_field(n, 0, md.get(f"tokenizer.ggml.{k}_token_id", d)) for n, k, d in ids)
    out.append(_field(2, 2, trainer))
    out.append(_field(3, 2, _field(1, 2, b"identity") + _field(3, 0, int(md.get("tokenizer.ggml.add_space_prefix", True)))))
    return b"".join(out)


# ---- Meta: consolidated.NN.pth + params.json ----
SPLIT_AXIS = {"attn_q": 0, "attn_k": 0, "attn_v": 0, "ffn_gate": 0, "ffn_up": 0, "output": 0,
              "attn_output": 1, "ffn_down": 1, "token_embd": 1}


def write_meta(gguf_path, folder, shards: int = 1, dtype: str = "F32") -> Path:
    src, folder = Source(gguf_path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md = src.md
    params = {"dim": src.dim, "n_layers": src.n_layer, "n_heads": src.n_head, "n_kv_heads": src.n_kv,
              "vocab_size": src.n_vocab, "multiple_of": 256, "norm_eps": float(md["llama.attention.layer_norm_rms_epsilon"]),
              "rope_theta": float(md.get("llama.rope.freq_base", 10000.0)), "max_seq_len": md["llama.context_length"]}
    (folder / "params.json").write_text(json.dumps(params))
    pairs = src.names(META_NAMES, GLOBAL_META, "layers.")
    for k in range(shards):
        def part(gname, k=k):
            x = src.f32(gname)
            axis = SPLIT_AXIS.get(gname.split(".")[-2]) if x.ndim == 2 and shards > 1 else None
            x = x if axis is None else np.array_split(x, shards, axis=axis)[k]
            return to_bf16(x) if dtype == "BF16" and x.ndim == 2 else np.ascontiguousarray(x, dtype=np.float32)
        write_pth(folder / f"consolidated.{k:02d}.pth", [(meta, lambda g=g: part(g)) for g, meta in pairs])
    write_tokenizer(src, folder)
    src.gguf.close()
    return folder


def write_pth(path, items, top: str = "consolidated") -> None:
    """[(name, loader)] -> a torch.save zip: data.pkl (an OrderedDict of _rebuild_tensor_v2 calls,
    each naming its storage by a persistent id), data/N (raw storages), version, byteorder."""
    storage_type = {np.dtype(np.float32): "FloatStorage", np.dtype(np.uint16): "BFloat16Storage",
                    np.dtype(np.float16): "HalfStorage"}
    pkl = [b"\x80\x02", _global("collections", "OrderedDict"), b")R(" ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for key, (name, load) in enumerate(items):
            a = np.ascontiguousarray(load())
            with z.open(f"{top}/data/{key}", "w", force_zip64=True) as f:
                f.write(a.data)
            stride, s = [], 1
            for d in reversed(a.shape):
                stride.insert(0, s)
                s *= d
            pid = b"(" + _str("storage") + _global("torch", storage_type[a.dtype]) + _str(str(key)) + _str("cpu") \
                + _int(a.size) + b"tQ"
            pkl += [_str(name), _global("torch._utils", "_rebuild_tensor_v2"), b"(", pid, _int(0),
                    _tuple(a.shape), _tuple(stride), b"\x89", _global("collections", "OrderedDict"), b")R", b"tR"]
        pkl += [b"u."]
        z.writestr(f"{top}/data.pkl", b"".join(pkl))
        z.writestr(f"{top}/byteorder", "little")
        z.writestr(f"{top}/version", "3\n")


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(n: int) -> bytes:
    if 0 <= n < 1 << 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _tuple(values) -> bytes:
    return b"(" + b"".join(_int(int(v)) for v in values) + b"t"


# ---- llama2.c ----
def write_llama2c(gguf_path, path, tokenizer_path=None) -> Path:
    """The legacy llama2.c layout (7 int32s, then the weights by kind across layers, RoPE's tables,
    the classifier if not shared), and tokenizer.bin the way llama2.c's tokenizer.py writes it."""
    src, path = Source(gguf_path), Path(path)
    md = src.md
    n_ctx, hs = md["llama.context_length"], src.dim // src.n_head
    theta = float(md.get("llama.rope.freq_base", 10000.0))
    with open(path, "wb") as f:
        f.write(struct.pack("7i", src.dim, src.n_ff, src.n_layer, src.n_head, src.n_kv,
                            src.n_vocab if src.tied else -src.n_vocab, n_ctx))
        put = lambda name: f.write(np.ascontiguousarray(src.f32(name), dtype="<f4").data)  # noqa: E731
        put("token_embd.weight")
        for kind in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
                     "ffn_down", "ffn_up"):
            for i in range(src.n_layer):
                put(f"blk.{i}.{kind}.weight")
        put("output_norm.weight")
        i = np.arange(0, hs, 2)[: hs // 2].astype(np.float32)
        freqs = (np.float32(1.0) / (np.float32(theta) ** (i / np.float32(hs)))).astype(np.float32)
        angles = np.outer(np.arange(n_ctx, dtype=np.float32), freqs).astype(np.float32)
        f.write(np.cos(angles).astype("<f4").data)
        f.write(np.sin(angles).astype("<f4").data)
        if not src.tied:
            put("output.weight")
    tokens, scores = md["tokenizer.ggml.tokens"], md.get("tokenizer.ggml.scores") or [0.0] * len(md["tokenizer.ggml.tokens"])
    pieces = []
    for i, t in enumerate(tokens):
        t = f"\n{t}\n" if i in (1, 2) and md["tokenizer.ggml.model"] == "llama" else t.replace("▁", " ")
        pieces.append(t.encode())
    with open(tokenizer_path or path.parent / "tokenizer.bin", "wb") as f:
        f.write(struct.pack("I", max(len(p) for p in pieces)))
        for p, s in zip(pieces, scores):
            f.write(struct.pack("fI", s, len(p)) + p)
    src.gguf.close()
    return path
