"""Shared pytest fixtures: the real model, llama.cpp's reference values (committed in
tests/fixtures/reference, made by tools/make_reference_fixtures.py), and `tiny_llama`, a factory of small
random-weight GGUF llama models for fast tests of every code path."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

# numpy's OpenBLAS starts a thread per core and spins them while it waits; on a shared or busy machine
# that makes the model's small matrix products 4-6x slower than one thread (measured: 64 greedy tokens
# of SmolLM2 took 60 s with 2 threads and 14 s with 1 on a loaded 2-core box). It is read once, when
# numpy is first imported, so it has to be set here, before any import of numpy. Override it from outside.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lessons.l01_gguf import GGMLType, GGUFFile, GGUFValueType, write_gguf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "fixtures" / "reference"  # llama.cpp's numbers, tools/make_reference_fixtures.py


# ---- the real model and llama.cpp's reference values ----
@pytest.fixture(scope="session")
def default_model_path() -> Path:
    from lessons.default_model import INSTALL_HINT, default_model_path as find

    path = find()
    if path is None:
        pytest.skip(f"default model not installed ({INSTALL_HINT})")
    return path


@pytest.fixture(scope="session")
def default_model(default_model_path) -> GGUFFile:
    return GGUFFile(default_model_path)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """llama.cpp's token ids, greedy texts and perplexity, and the Shakespeare text (committed)."""
    return REFERENCE


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)                                   # [..., n_vocab]
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)  # [..., n_vocab]


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(p || q) between the softmaxes of two logit rows (last axis), in float64."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)  # [..., n_vocab]
    return (np.exp(lp) * (lp - lq)).sum(-1)                # [...]


class LlamaCppLogits:
    """llama.cpp's logits at every position of the two reference prompts, for its F32 run and its Q4_1 run.

    The fixture keeps, per position, the F32 run's 4096 largest logits (97.7-99.95% of its probability) and
    both runs' logits at those ids, exact; the F32 run's whole row at the last position; and llama.cpp's own
    KL(F32 || Q4_1) over the full distribution at every position. `kl` is therefore exact over all 49152
    tokens at the F32 run's last position; elsewhere it counts the tokens outside the stored ids as one
    bucket, which gives a lower bound of the full KL: 93-100% of it at every position, measured on llama.cpp's
    Q4_1 run and on the C++ core with float and 8-bit activations (the gap is the tail's share)."""

    def __init__(self, path: Path):
        with np.load(path) as f:
            self._a = {key: f[key] for key in f.files}

    def ids(self, p: int) -> np.ndarray:
        """[n, K] token ids, the F32 run's largest logits first (so column 0 is its argmax)."""
        return self._a[f"p{p}_ids"].astype(np.int64)

    def logits(self, run: str, p: int) -> np.ndarray:
        """[n, K] llama.cpp's logits (run "f32" or "q4_1") at `ids(p)`."""
        return self._a[f"p{p}_{run}_logits"]

    def argmax(self, run: str, p: int) -> np.ndarray:
        """[n] the run's top token at each position (both runs' top two are among the stored ids)."""
        return np.take_along_axis(self.ids(p), self.logits(run, p).argmax(-1)[:, None], -1)[:, 0]

    def kl_f32_q4_1(self, p: int) -> np.ndarray:
        """[n] KL(llama.cpp F32 || llama.cpp Q4_1) per position, over the full distribution."""
        return self._a[f"p{p}_kl_f32_q4_1"]

    def kl(self, run: str, p: int, ours: np.ndarray) -> np.ndarray:
        """[n] KL(llama.cpp's run || ours) per position; ours: [n, n_vocab] logits."""
        lq = log_softmax(ours)                                                    # [n, n_vocab]
        ids = self.ids(p)                                                         # [n, K]
        lp = self.logits(run, p) - self._a[f"p{p}_{run}_logsumexp"][:, None]      # [n, K]
        lq_s = np.take_along_axis(lq, ids, -1)                                    # [n, K]
        head = (np.exp(lp) * (lp - lq_s)).sum(-1)                                 # [n]
        p_tail = np.clip(1 - np.exp(lp).sum(-1), 0, None)                         # [n]
        outside = np.ones_like(lq, dtype=bool)
        np.put_along_axis(outside, ids, False, -1)
        q_tail = np.where(outside, np.exp(lq), 0).sum(-1)                         # [n]
        tail = np.where(p_tail > 0, p_tail * np.log(np.maximum(p_tail, 1e-300) / q_tail), 0)
        out = head + tail
        if run == "f32":  # the last position over the whole vocabulary
            lp_last = log_softmax(self._a[f"p{p}_f32_last_logits"])
            out[-1] = (np.exp(lp_last) * (lp_last - lq[-1])).sum()
        return out


@pytest.fixture(scope="session")
def llama_cpp_logits() -> LlamaCppLogits:
    return LlamaCppLogits(REFERENCE / "smollm2_logits.npz")


@pytest.fixture(scope="session")
def generation() -> dict:
    """llama.cpp's prompt ids, 64 greedy tokens and text per prompt, and perplexity (`_perplexity`)."""
    return json.loads((REFERENCE / "smollm2_generation.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def quant_fixture() -> dict:
    """llama.cpp's own quantized blocks and their F32 source rows (tools/make_quant_fixtures.py)."""
    path = REPO / "tests" / "fixtures" / "quant_llamacpp.npz"
    if not path.exists():
        pytest.skip(f"{path.name} absent: run tools/make_quant_fixtures.py")
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


@pytest.fixture(scope="session")
def default_numpy_model(default_model):
    """The default model in numpy (weights dequantized once per session, ~540 MB), n_ctx 512."""
    from lessons.l08_transformer import NumpyLlama

    return NumpyLlama(default_model, n_ctx=512)


# ---- tiny random llama models ----
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


TRAINING_TEXT = "the quick brown fox jumps over the lazy dog. hello world, hello there! the end"


def learn_merges(words: list[list[str]], n_merges: int) -> list[tuple[str, str]]:
    """A few rounds of plain BPE training: repeatedly merge the most frequent adjacent pair."""
    merges = []
    for _ in range(n_merges):
        counts: dict[tuple[str, str], int] = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if (w[i], w[i + 1]) == best:
                    w[i : i + 2] = [w[i] + w[i + 1]]
                i += 1
    return merges


def bpe_vocab(n_merges: int = 24) -> tuple[dict, dict]:
    """A minimal byte-level BPE ("gpt2") vocabulary: 256 byte tokens, learned merges, 3 control tokens."""
    b2u = bytes_to_unicode()
    words = [[b2u[b] for b in (" " + w if i else w).encode()] for i, w in enumerate(TRAINING_TEXT.split(" "))]
    merges = learn_merges(words, n_merges)
    tokens = [b2u[b] for b in range(256)] + [a + b for a, b in merges]
    types = [1] * len(tokens)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens += specials
    types += [3] * len(specials)
    metadata = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.merges": [f"{a} {b}" for a, b in merges],
        "tokenizer.ggml.bos_token_id": len(tokens) - 3,
        "tokenizer.ggml.eos_token_id": len(tokens) - 1,
        "tokenizer.ggml.add_bos_token": False,
    }
    return metadata, {"tokenizer.ggml.token_type": [GGUFValueType.INT32]}


def spm_vocab(n_pieces: int = 24) -> tuple[dict, dict]:
    """A minimal SentencePiece ("llama") vocabulary: <unk> <s> </s>, 256 byte fallbacks, scored pieces."""
    pieces = ["▁"] + sorted(set(TRAINING_TEXT.replace(" ", "")))
    for w in TRAINING_TEXT.replace(".", "").replace(",", "").replace("!", "").split():
        for piece in ("▁" + w, "▁" + w[:2], w[-2:]):
            if piece not in pieces:
                pieces.append(piece)
    pieces = pieces[:n_pieces]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [2, 3, 3] + [6] * 256 + [1] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.add_bos_token": True,
    }
    return metadata, {"tokenizer.ggml.token_type": [GGUFValueType.INT32]}


_counter = itertools.count()


def build_tiny_llama(directory, *, n_embd=32, n_layer=2, n_head=4, n_head_kv=2, n_ff=64, n_ctx_train=64,
                     rope_base=10000.0, rms_eps=1e-5, n_rot=None, vocab="bpe", n_vocab=None, tied=True,
                     weight_type=GGMLType.F32, seed=0, metadata=None, drop_tensors=(), tensor_shapes=None,
                     extra_tensors=(), name=None, arch="llama", qk_scale=1.0, embd_scale=1.0) -> Path:
    """Write a random-weight llama GGUF and return its path.

    vocab: "bpe" (gpt2 byte-level) or "spm" (SentencePiece); n_vocab pads it with unused tokens.
    vocab=None writes no tokenizer at all, only {arch}.vocab_size = n_vocab (required then): enough for
    the models, which never read the tokens.
    arch: the architecture name (metadata keys {arch}.*), e.g. a test arch registered with NEOX RoPE.
    qk_scale multiplies W_q and W_k (sharper attention, so a wrong score or position shows in the logits);
    embd_scale multiplies the embedding table (sqrt(n_embd) gives unit-size embeddings).
    weight_type: type of the 2-D weights (norms stay F32): F32, F16, BF16 or any type lessons.l12_quants
    can quantize (the row length n_embd/n_ff must then be a multiple of its block size).
    metadata: keys to add or replace; a value of None deletes the key. drop_tensors: names to leave out.
    tensor_shapes: {name: numpy shape} to write a tensor with a wrong shape. extra_tensors: more
    (name, ggml_type, shape, array) tuples, written as given.
    """
    rng = np.random.default_rng(seed)
    if vocab is None:
        if n_vocab is None:
            raise ValueError("vocab=None needs n_vocab")
        md, md_types, tokens = {f"{arch}.vocab_size": n_vocab}, {}, range(n_vocab)
    else:
        md, md_types = (bpe_vocab if vocab == "bpe" else spm_vocab)()
        tokens, types = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"]
    if n_vocab is not None and vocab is not None:
        if n_vocab < len(tokens):
            raise ValueError(f"the {vocab} vocabulary needs at least {len(tokens)} tokens")
        tokens += [f"<unused{i}>" for i in range(n_vocab - len(tokens))]
        types += [5] * (n_vocab - len(types))
        if "tokenizer.ggml.scores" in md:
            md["tokenizer.ggml.scores"] += [-1000.0] * (n_vocab - len(md["tokenizer.ggml.scores"]))
    n_vocab = len(tokens)
    head_dim = n_embd // n_head
    md = {
        "general.architecture": arch,
        "general.name": "tiny-random-llama",
        f"{arch}.context_length": n_ctx_train,
        f"{arch}.embedding_length": n_embd,
        f"{arch}.block_count": n_layer,
        f"{arch}.feed_forward_length": n_ff,
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": n_head_kv,
        f"{arch}.attention.layer_norm_rms_epsilon": rms_eps,
        f"{arch}.rope.freq_base": rope_base,
        f"{arch}.rope.dimension_count": n_rot if n_rot is not None else head_dim,
        **md,
    }
    for key, value in (metadata or {}).items():
        if value is None:
            md.pop(key, None)
        else:
            md[key] = value

    def matrix(shape, scale=1.0):
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)

    def norm(shape):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)

    d, q, kv = n_embd, n_head * head_dim, n_head_kv * head_dim
    def scaled(scale):
        return lambda shape: matrix(shape, scale)

    specs = [("token_embd.weight", (n_vocab, d), scaled(embd_scale))]
    for i in range(n_layer):
        specs += [
            (f"blk.{i}.attn_norm.weight", (d,), norm),
            (f"blk.{i}.attn_q.weight", (q, d), scaled(qk_scale)),
            (f"blk.{i}.attn_k.weight", (kv, d), scaled(qk_scale)),
            (f"blk.{i}.attn_v.weight", (kv, d), matrix),
            (f"blk.{i}.attn_output.weight", (d, q), matrix),
            (f"blk.{i}.ffn_norm.weight", (d,), norm),
            (f"blk.{i}.ffn_gate.weight", (n_ff, d), matrix),
            (f"blk.{i}.ffn_up.weight", (n_ff, d), matrix),
            (f"blk.{i}.ffn_down.weight", (d, n_ff), matrix),
        ]
    specs.append(("output_norm.weight", (d,), norm))
    if not tied:
        specs.append(("output.weight", (n_vocab, d), matrix))

    tensors = []
    for tname, shape, init in specs:
        if tname in drop_tensors:
            continue
        shape = tuple((tensor_shapes or {}).get(tname, shape))
        x = init(shape)
        tensors.append(encode_tensor(tname, x, GGMLType.F32 if len(shape) == 1 else weight_type))
    tensors += list(extra_tensors)

    path = Path(directory) / (name or f"tiny-llama-{next(_counter)}.gguf")
    write_gguf(path, md, tensors, metadata_types=md_types)
    return path


def encode_tensor(name: str, x: np.ndarray, ggml_type) -> tuple:
    """(name, type, shape, data) for write_gguf, converting float32 x to the storage type."""
    ggml_type = GGMLType(ggml_type)
    if ggml_type == GGMLType.F32:
        return name, ggml_type, x.shape, x
    if ggml_type == GGMLType.F16:
        return name, ggml_type, x.shape, x.astype(np.float16)
    if ggml_type == GGMLType.BF16:
        return name, ggml_type, x.shape, (x.view(np.uint32) >> 16).astype(np.uint16)  # truncation is enough here
    from lessons.l12_quants import quantize

    return name, ggml_type, x.shape, quantize(x.reshape(-1, x.shape[-1]), ggml_type).reshape(*x.shape[:-1], -1)


@pytest.fixture
def tiny_llama(tmp_path):
    """Factory: tiny_llama(**overrides) or tiny_llama(directory, **overrides) -> Path of a new tiny GGUF model.

    See build_tiny_llama for the overrides (sizes, GQA, rope base, vocab "bpe"/"spm", weight_type, broken files).
    """

    def make(directory=None, **overrides) -> Path:
        return build_tiny_llama(directory or tmp_path, **overrides)

    return make
