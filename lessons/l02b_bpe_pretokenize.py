"""Lesson 2b: pre-tokenization, cutting text into words before BPE sees it.

BPE never merges across a pre-token boundary, so these regexes decide a lot: that " the" is one
word with its space, that "1234" may only become single digits (SmolLM2) or groups of three
(Llama 3), that "don't" ends in the piece "'t". The GGUF key `tokenizer.ggml.pre` names the
scheme; llama.cpp maps each name to a short list of regexes, and so do we, with its exact strings.

How a list of regexes is applied (llama.cpp's rule): start with the whole text as one piece; each
regex in turn cuts every current piece into its matches AND the gaps between them (nothing is ever
dropped). Later regexes cannot see across the cuts of earlier ones.

Worked example, SmolLM2 (`smollm`: first r"\\p{N}", then the GPT-2 regex) on "I'm 42!":

    start                    ["I'm 42!"]
    \\p{N} (each digit)      ["I'm ", "4", "2", "!"]          matches and gaps
    GPT-2 regex              ["I", "'m", " ", "4", "2", "!"]  "'m" is a contraction; " " has no
                                                              letter after it in its own piece

With `llama-bpe` (Llama 3) the same text gives ["I", "'m", " ", "42", "!"]: digits in runs of
at most three, and the space still alone because no branch of that regex lets a space lead digits.

Three details copied from llama.cpp on purpose:
- The GPT-2 regex string ends with r"\\s+(?!\\S)" without GPT-2's final "|\\s+". Nothing is lost:
  a lone whitespace character before a non-space becomes a gap, and gaps are pieces too.
- `\\s` is Unicode's White_Space (the `regex` package agrees; Python's `re` would differ on
  U+001C..U+001F), and \\p{L}/\\p{N} are Unicode's letter/number categories...
- ... as of Unicode 15.1, llama.cpp's tables; see "Unicode versions" below.
"""

from __future__ import annotations

import regex  # the PyPI `regex` package: \p{L}, \p{N}, \p{P} like llama.cpp's Unicode tables

# ---- llama.cpp's regexes ----
# --8<-- [start:regexes]
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

PRETOKENIZERS = {
    "gpt2":    [GPT2],                                     # plain GPT-2
    "smollm":  [r"\p{N}", GPT2],                           # SmolLM2, StarCoder: digits one by one
    "llama3":  [LLAMA3],                                   # Llama 3: digits in threes, (?i) 's
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2,             # what llama.cpp uses when the file
                r"\p{N}+", r"[0-9][0-9][0-9]"],            # names no pre-tokenizer
}
# --8<-- [end:regexes]

# GGUF `tokenizer.ggml.pre` names -> regex family (llama.cpp groups them the same way).
PRE_NAMES = {
    "default": "default",
    "gpt-2": "gpt2", "phi-2": "gpt2", "roberta-bpe": "gpt2", "mpt": "gpt2", "olmo": "gpt2", "jais": "gpt2",
    "smollm": "smollm", "starcoder": "smollm", "refact": "smollm", "command-r": "smollm",
    "codeshell": "smollm", "exaone": "smollm", "minerva-7b": "smollm",
    "llama3": "llama3", "llama-v3": "llama3", "llama-bpe": "llama3", "falcon3": "llama3", "falcon-h1": "llama3",
    "pixtral": "llama3", "dbrx": "llama3", "smaug-bpe": "llama3",
}
# Of those, Llama 3's own names also add BOS by default and take a pre-token whole when it is a token.
LLAMA3_NAMES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral"}

_COMPILED = {name: [regex.compile(p) for p in pats] for name, pats in PRETOKENIZERS.items()}


def pretokenizer_family(pre: str | None) -> str:
    """GGUF name (or None when the key is absent) -> one of PRETOKENIZERS' keys."""
    if pre is None or pre == "":
        return "default"
    if pre not in PRE_NAMES:
        raise ValueError(f"unknown pre-tokenizer '{pre}' (tokenizer.ggml.pre); "
                         f"supported: {', '.join(sorted(PRE_NAMES))}")
    return PRE_NAMES[pre]


# ---- Unicode versions ----
# llama.cpp classifies characters with its own tables, made from Unicode 15.1; the `regex` package
# follows newer Unicode. Letters and digits added since 15.1 (Unicode 16 and 17: Egyptian hieroglyphs
# ext. A, CJK ext. J, Garay, ...) are unassigned, hence symbols, to llama.cpp. To cut where it cuts,
# the regexes run on a copy of the text in which those characters are replaced by U+FDD0 (a
# permanent non-character, a symbol to both), and the cuts are applied to the real text.
NEWER_THAN_15_1 = (
    "558 58B-58C 88F C5C CDC 1C89-1C8A 208F 209D-209F A7CB-A7CF A7D2 A7D4 A7DA-A7DD A7E2 A7F1 AB6C-AB6D "
    "105C0-105F3 107BB-107BF 10940-10959 10D40-10D65 10D6F-10D85 10EC2-10EC7 10ED9-10EEE 11380-11389 "
    "1138B 1138E 11390-113B5 113B7 113D1 113D3 116D0-116E3 11B0A 11BC0-11BE0 11BF0-11BF9 11DB0-11DDB "
    "11DE0-11DE9 11DF1 1246F 12475-1247F 12550-12686 13460-143FA 16100-1611D 16130-16139 16D40-16D6C "
    "16D70-16D79 16EA0-16EB8 16EBB-16ED3 16FF2-16FF6 187F8-187FF 18CD6-18CDA 18CFF 18D09-18D20 "
    "18D80-18DF2 18E00-19191 191A0-191D2 1B123-1B128 1B168 1CCF0-1CCF9 1D6A6 1DF1F-1DF24 1DF2B-1DF81 "
    "1DF90-1DF96 1DFCD-1DFFF 1E5D0-1E5ED 1E5F0-1E5FA 1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED "
    "1E6F0-1E6F4 1E6FE-1E6FF 2B73A-2B73F 2B81E 2CEA2-2CEAD 323B0-33479 3D000-3FC3F")


def _newer_chars_table() -> dict[int, int]:
    table = {}
    for span in NEWER_THAN_15_1.split():
        first, _, last = span.partition("-")
        for cp in range(int(first, 16), int(last or first, 16) + 1):
            table[cp] = 0xFDD0
    return table


_AS_LLAMA_CPP_SEES_IT = _newer_chars_table()


# ---- splitting ----
# --8<-- [start:split]
def split_keep_gaps(start: int, end: int, probe: str, pattern) -> list[tuple[int, int]]:
    """Cut probe[start:end] into regex matches and the unmatched gaps between them, as (start, end)."""
    out, pos = [], start
    for m in pattern.finditer(probe, start, end):
        if m.start() > pos:
            out.append((pos, m.start()))        # a gap is a piece of its own
        if m.end() > m.start():
            out.append((m.start(), m.end()))
        pos = m.end()
    if pos < end:
        out.append((pos, end))
    return out


def pretokenize(text: str, family: str) -> list[str]:
    """'Hello world' -> ['Hello', ' world'] (each regex of the family cuts every piece)."""
    probe = text.translate(_AS_LLAMA_CPP_SEES_IT)   # same length, same cuts as llama.cpp
    spans = [(0, len(text))] if text else []
    for pattern in _COMPILED[family]:
        spans = [cut for start, end in spans for cut in split_keep_gaps(start, end, probe, pattern)]
    return [text[start:end] for start, end in spans]
# --8<-- [end:split]
