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
- ... as of Unicode 15.1, llama.cpp's tables: lessons/data_unicode.py says how we match them.
"""

from __future__ import annotations

import regex  # the PyPI `regex` package: \p{L}, \p{N}, \p{P} like llama.cpp's Unicode tables

# llama.cpp's compatibility data: its Unicode 15.1, and which GGUF names use which regexes below
from lessons.data_unicode import AS_LLAMA_CPP_SEES_IT, NEWER_THAN_15_1  # noqa: F401
from lessons.data_vocab import LLAMA3_NAMES, PRE_NAMES  # noqa: F401

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

_COMPILED = {name: [regex.compile(p) for p in pats] for name, pats in PRETOKENIZERS.items()}


def pretokenizer_family(pre: str | None) -> str:
    """GGUF name (or None when the key is absent) -> one of PRETOKENIZERS' keys."""
    if pre is None or pre == "":
        return "default"
    if pre not in PRE_NAMES:
        raise ValueError(f"unknown pre-tokenizer '{pre}' (tokenizer.ggml.pre); "
                         f"supported: {', '.join(sorted(PRE_NAMES))}")
    return PRE_NAMES[pre]


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
    probe = text.translate(AS_LLAMA_CPP_SEES_IT)   # same length, same cuts as llama.cpp
    spans = [(0, len(text))] if text else []
    for pattern in _COMPILED[family]:
        spans = [cut for start, end in spans for cut in split_keep_gaps(start, end, probe, pattern)]
    return [text[start:end] for start, end in spans]
# --8<-- [end:split]
