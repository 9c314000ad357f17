"""Build the small SentencePiece test vocabulary tests/fixtures/tokenizer_spm.gguf.

No SentencePiece GGUF exists on the machines we test on, so we make one: train a small BPE model
with byte fallback (like Llama 2's) with the `sentencepiece` package on the Shakespeare excerpt plus
a few lines of other scripts, and write it as a vocab-only GGUF: `general.architecture = llama`, the
llama hyper-parameter keys llama.cpp reads even with vocab_only, and the `tokenizer.ggml.*` keys.
No tensors. llama.cpp then gives the reference ids (tools/make_tokenizer_fixtures.py).

Run with a Python that has `sentencepiece` and `gguf` (tool-only, not project dependencies):
    python3 tools/make_spm_vocab.py
"""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures" / "tokenizer_spm.gguf"

CONTROL_SYMBOLS = ["<|im_start|>", "<|im_end|>"]    # token type 3: matched only with parse_special
USER_DEFINED_SYMBOLS = ["<tool>", "</tool>"]        # token type 4: always matched whole
GGUF_TYPE = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}


# A few lines beyond Shakespeare, so the vocabulary has some non-English pieces; characters that
# stay rare (most CJK, Thai, emoji) are left to byte fallback, which the tests want to exercise.
TRAINING_EXTRA = [
    "Здравствуйте, мир! Привет. Ελληνικά γράμματα. Ünïcödé façade résumé naïve café.",
    "中文分词测试。こんにちは、世界！한국어 텍스트. שלום עולם. مرحبا بالعالم.",
    "def f(x):\n    return x**2  # square; if (a<=b && c!=d) { x += 1; } 1234567 + 89 = 1234656",
    "<|im_start|>user Hi!<|im_end|> <|im_start|>assistant Hello, how can I help?<|im_end|> <tool>call()</tool>",
    "The quick brown fox jumps over the lazy dog. 👍 😀 🇯🇵 email@example.com https://example.org/a?b=c",
] * 5


def train(workdir: Path):
    import sentencepiece as spm

    text = (SHARED / "data" / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    lines += TRAINING_EXTRA
    train_file = workdir / "train.txt"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = workdir / "spm"
    spm.SentencePieceTrainer.train(
        input=str(train_file), model_prefix=str(prefix), model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, normalization_rule_name="identity", character_coverage=0.995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        control_symbols=CONTROL_SYMBOLS, user_defined_symbols=USER_DEFINED_SYMBOLS,
        num_threads=1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=str(prefix) + ".model")


def token_type(sp, i: int) -> int:
    if sp.is_unknown(i):
        return GGUF_TYPE["unknown"]
    if sp.is_control(i):
        return GGUF_TYPE["control"]
    if sp.is_byte(i):
        return GGUF_TYPE["byte"]
    if sp.is_unused(i):
        return GGUF_TYPE["unused"]
    if sp.id_to_piece(i) in USER_DEFINED_SYMBOLS:
        return GGUF_TYPE["user_defined"]
    return GGUF_TYPE["normal"]


def write(sp, path: Path):
    """A vocab-only GGUF, written with lesson 1's writer (no tensors)."""
    sys.path.insert(0, str(ROOT))
    from lessons.l01_gguf import GGUFValueType, write_gguf

    n = sp.get_piece_size()
    metadata = {
        "general.architecture": "llama",
        "general.name": "llama-lessons SentencePiece test vocabulary",
        # hyper-parameters llama.cpp reads for the llama architecture even when loading vocab only
        "llama.context_length": 256, "llama.embedding_length": 64, "llama.block_count": 1,
        "llama.feed_forward_length": 128, "llama.attention.head_count": 4, "llama.attention.head_count_kv": 4,
        "llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.dimension_count": 16, "llama.vocab_size": n,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
        "tokenizer.ggml.scores": [sp.get_score(i) for i in range(n)],
        "tokenizer.ggml.token_type": [token_type(sp, i) for i in range(n)],
        "tokenizer.ggml.bos_token_id": sp.bos_id(), "tokenizer.ggml.eos_token_id": sp.eos_id(),
        "tokenizer.ggml.unknown_token_id": sp.unk_id(),
        "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False,
        "tokenizer.ggml.add_space_prefix": True,
    }
    write_gguf(path, metadata, [], metadata_types={"tokenizer.ggml.token_type": [GGUFValueType.INT32]})


def main():
    with tempfile.TemporaryDirectory() as d:
        sp = train(Path(d))
        write(sp, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {sp.get_piece_size()} tokens)")


if __name__ == "__main__":
    sys.exit(main())
