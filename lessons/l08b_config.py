# --8<-- [start:keys]
"""Lesson 8b: reading a LLaMA model's hyper-parameters from GGUF, and distrusting them.

The transformer in l08_transformer.py needs a dozen numbers. GGUF stores them under keys prefixed by
the architecture name (`general.architecture`, "llama" here):

    {arch}.context_length                    n_ctx_train   (8192 for SmolLM2)
    {arch}.embedding_length                  n_embd        (576)
    {arch}.block_count                       n_layer       (30)
    {arch}.feed_forward_length               n_ff          (1536)
    {arch}.attention.head_count              n_head        (9)
    {arch}.attention.head_count_kv           n_head_kv     (3; absent = n_head, plain multi-head attention)
    {arch}.attention.layer_norm_rms_epsilon  rms_eps       (1e-5)
    {arch}.rope.freq_base                    rope_base     (100000; absent = 10000)
    {arch}.rope.dimension_count              n_rot         (absent = head_dim = n_embd / n_head)
    {arch}.vocab_size                        n_vocab       (absent = len(tokenizer.ggml.tokens))

A file is input from the outside world, so LlamaConfig.from_gguf checks everything before the model
allocates a byte: the numbers must be positive and sane, the heads must divide evenly, and every tensor
the forward pass will touch must exist with exactly the shape these numbers imply. Anything else is a
GGUFError with one line naming the problem.

Worked example: SmolLM2 has n_embd 576 and 9 heads, so head_dim = 576 / 9 = 64; 3 KV heads make
attn_k.weight [3*64, 576] = [192, 576] in numpy order (GGUF lists it the other way round, ne = [576, 192]).
"""
# --8<-- [end:keys]

from __future__ import annotations

from dataclasses import dataclass

from lessons.l01_gguf import GGUFError

# Architectures whose tensors and maths are exactly what l08_transformer computes, and their RoPE style.
ROPE_NEOX_BY_ARCH = {"llama": False}

# Sanity limits: far above any real model of this family, far below what would exhaust memory by accident.
MAX_DIM = 1 << 16  # n_embd, n_ff, head_dim
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_VOCAB = 1 << 22
MAX_CTX = 1 << 22


@dataclass(frozen=True)
class LlamaConfig:
    n_vocab: int
    n_ctx_train: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    rope_base: float
    rms_eps: float
    rope_neox: bool
    tied_embeddings: bool
    n_rot: int = 0  # channels RoPE rotates per head; 0 = all of head_dim
    arch: str = "llama"

    @classmethod
    def from_gguf(cls, gguf) -> LlamaConfig:
        """Read and validate the hyper-parameters and tensor shapes of a GGUFFile."""
        md = gguf.metadata
        arch = md.get("general.architecture")
        if not isinstance(arch, str):
            raise GGUFError("missing general.architecture: not a model file")
        if arch not in ROPE_NEOX_BY_ARCH:
            raise GGUFError(f"unsupported architecture {arch!r} (supported: {', '.join(ROPE_NEOX_BY_ARCH)})")

        def get_int(key: str, lo: int, hi: int, default: int | None = None) -> int:
            value = md.get(f"{arch}.{key}", default)
            if value is None:
                raise GGUFError(f"missing {arch}.{key}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise GGUFError(f"{arch}.{key} must be an integer, got {type(value).__name__}")
            if not lo <= value <= hi:
                raise GGUFError(f"{arch}.{key} = {value} is out of range [{lo}, {hi}]")
            return value

        def get_float(key: str, default: float | None = None) -> float:
            value = md.get(f"{arch}.{key}", default)
            if value is None:
                raise GGUFError(f"missing {arch}.{key}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise GGUFError(f"{arch}.{key} must be a positive number, got {value!r}")
            return float(value)

        n_embd = get_int("embedding_length", 1, MAX_DIM)
        n_head = get_int("attention.head_count", 1, MAX_HEADS)
        n_head_kv = get_int("attention.head_count_kv", 1, MAX_HEADS, default=n_head)
        if n_head % n_head_kv:
            raise GGUFError(f"{arch}.attention.head_count_kv = {n_head_kv} does not divide head_count = {n_head}")
        if n_embd % n_head:
            raise GGUFError(f"{arch}.embedding_length = {n_embd} is not divisible by head_count = {n_head}")
        head_dim = n_embd // n_head
        for key in ("attention.key_length", "attention.value_length"):
            if md.get(f"{arch}.{key}", head_dim) != head_dim:
                raise GGUFError(f"{arch}.{key} != embedding_length / head_count is not supported")
        n_rot = get_int("rope.dimension_count", 2, head_dim, default=head_dim)
        if n_rot % 2:
            raise GGUFError(f"{arch}.rope.dimension_count = {n_rot} must be even")
        for key in ("rope.scaling.type", "expert_count"):
            if md.get(f"{arch}.{key}", "none") not in ("none", 0):
                raise GGUFError(f"{arch}.{key} = {md[f'{arch}.{key}']!r} is not supported")
        if "rope_freqs.weight" in gguf.tensors:
            raise GGUFError("rope_freqs.weight (Llama 3.1 RoPE scaling) is not supported")

        if f"{arch}.vocab_size" in md:
            n_vocab = get_int("vocab_size", 1, MAX_VOCAB)
        else:
            tokens = md.get("tokenizer.ggml.tokens")
            if not isinstance(tokens, list) or not 1 <= len(tokens) <= MAX_VOCAB:
                raise GGUFError(f"neither {arch}.vocab_size nor a usable tokenizer.ggml.tokens list")
            n_vocab = len(tokens)

        config = cls(
            n_vocab=n_vocab,
            n_ctx_train=get_int("context_length", 1, MAX_CTX),
            n_embd=n_embd,
            n_layer=get_int("block_count", 1, MAX_LAYERS),
            n_head=n_head,
            n_head_kv=n_head_kv,
            head_dim=head_dim,
            n_ff=get_int("feed_forward_length", 1, MAX_DIM),
            rope_base=get_float("rope.freq_base", default=10000.0),
            rms_eps=get_float("attention.layer_norm_rms_epsilon"),
            rope_neox=ROPE_NEOX_BY_ARCH[arch],
            tied_embeddings="output.weight" not in gguf.tensors,
            n_rot=n_rot,
            arch=arch,
        )
        config.check_tensors(gguf.tensors)
        return config

    # --8<-- [start:tensor_shapes]
    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the forward pass reads, with its numpy shape [out, in] (GGUF's ne reversed)."""
        d, q, kv, ff = self.n_embd, self.n_head * self.head_dim, self.n_head_kv * self.head_dim, self.n_ff
        shapes = {"token_embd.weight": (self.n_vocab, d), "output_norm.weight": (d,)}
        if not self.tied_embeddings:
            shapes["output.weight"] = (self.n_vocab, d)
        for i in range(self.n_layer):
            shapes.update({
                f"blk.{i}.attn_norm.weight": (d,),
                f"blk.{i}.attn_q.weight": (q, d),
                f"blk.{i}.attn_k.weight": (kv, d),
                f"blk.{i}.attn_v.weight": (kv, d),
                f"blk.{i}.attn_output.weight": (d, q),
                f"blk.{i}.ffn_norm.weight": (d,),
                f"blk.{i}.ffn_gate.weight": (ff, d),
                f"blk.{i}.ffn_up.weight": (ff, d),
                f"blk.{i}.ffn_down.weight": (d, ff),
            })
        return shapes
    # --8<-- [end:tensor_shapes]

    def check_tensors(self, tensors: dict) -> None:
        """Raise GGUFError unless every needed tensor is present with the expected shape."""
        n_blocks = len({name.split(".")[1] for name in tensors if name.startswith("blk.")})
        if f"blk.{self.n_layer - 1}.attn_norm.weight" not in tensors:
            raise GGUFError(f"{self.arch}.block_count = {self.n_layer} but the file has tensors for {n_blocks} blocks")
        for name, shape in self.tensor_shapes().items():
            info = tensors.get(name)
            if info is None:
                raise GGUFError(f"missing tensor {name}")
            if tuple(info.shape) != shape:
                raise GGUFError(f"tensor {name} has shape {list(info.shape)}, expected {list(shape)} from the metadata")
