"""Lesson 2c: byte-level BPE, the merge loop behind GPT-2, Llama 3 and SmolLM2 (`tokenizer.ggml.model = gpt2`).

A byte-level BPE vocabulary is built from bytes, not characters, so it can spell any input.
Two ideas make it work:

1. Every byte gets a printable stand-in character (GPT-2's byte map): bytes that are already
   visible ASCII/Latin-1 map to themselves, the other 68 bytes (controls, space, ...) map to
   U+0100 onwards, in byte order. Space (0x20) becomes "Ġ" (U+0120), newline "Ċ" (U+010A).
   Token texts and merges in the GGUF are written in this alphabet: "Ġthe" is " the".
2. `tokenizer.ggml.merges` is an ordered list of pairs "left right". Encoding a word starts from
   one symbol per byte and repeatedly merges the adjacent pair whose merge comes EARLIEST in
   that list (lowest rank); on a tie, the leftmost pair goes first. When no adjacent pair is in
   the list, each remaining symbol is a token.

Worked example (check it by hand). Vocabulary: 0 "a", 1 "b", 2 "c", 3 "ab", 4 "bc", 5 "abc";
merges by rank: 0 "a b", 1 "b c", 2 "ab c". Encode the word "abcbc":

    symbols  a  b  c  b  c      pairs with a rank: a+b=0, b+c=1 (twice), c+b none
    rank 0:  ab c  b  c         new pairs: ab+c=2; b+c=1 is still there
    rank 1:  ab c  bc           new pairs: c+bc none
    rank 2:  abc   bc           no pair left
    ids      [5, 4]

The first "b c" never merges: "a b" outranks it and takes the "b" first. That is why BPE is
a loop over ranks, not a left-to-right scan (tests/test_tokenizer.py replays this example).

llama.cpp runs this loop on each pre-token (lesson 2b) separately; we do the same, with a heap
so each step costs O(log n), and a cache because real text repeats words a lot.
"""

from __future__ import annotations

import heapq

# ---- GPT-2's byte <-> printable character map ----
# --8<-- [start:byte_map]
def gpt2_byte_map() -> dict[int, str]:
    """byte value -> the printable character that stands for it in the vocabulary."""
    visible = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    byte_to_char = {b: chr(b) for b in visible}
    n_shifted = 0
    for b in range(256):                  # the 68 invisible bytes, in order, go to U+0100...
        if b not in byte_to_char:
            byte_to_char[b] = chr(256 + n_shifted)
            n_shifted += 1
    return byte_to_char


BYTE_TO_CHAR = gpt2_byte_map()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def bytes_to_symbols(data: bytes) -> str:
    """b' hi' -> 'Ġhi': the spelling the vocabulary and the merges use."""
    return "".join(BYTE_TO_CHAR[b] for b in data)


def symbols_to_bytes(text: str) -> bytes:
    """'Ġhi' -> b' hi'. A character outside the map (never in a sane vocab) keeps its UTF-8 bytes."""
    out = bytearray()
    for ch in text:
        b = CHAR_TO_BYTE.get(ch)
        out += bytes([b]) if b is not None else ch.encode("utf-8")
    return bytes(out)
# --8<-- [end:byte_map]


# ---- merge ranks ----
def parse_merges(merges) -> dict[tuple[str, str], int]:
    """['Ġ t', 'h e', ...] -> {('Ġ', 't'): 0, ('h', 'e'): 1, ...}: rank = position in the list.

    llama.cpp splits each entry at its first space after position 0 (so a left part can never be
    empty); an entry without such a space is malformed and we reject it.
    """
    ranks = {}
    for rank, entry in enumerate(merges):
        if not isinstance(entry, str):
            raise ValueError(f"tokenizer.ggml.merges[{rank}] is not a string")
        cut = entry.find(" ", 1)
        if cut < 0:
            raise ValueError(f"tokenizer.ggml.merges[{rank}] = {entry!r} has no space between its two parts")
        ranks.setdefault((entry[:cut], entry[cut + 1:]), rank)
    return ranks


# ---- the merge loop ----
# --8<-- [start:bpe_merge]
def merge_symbols(symbols: list[str], priority) -> list[str]:
    """Repeatedly merge the best adjacent pair; leftmost wins ties. Both BPE flavours use this loop.

    priority(left, right) -> a sort key (lower merges first) or None when the pair cannot merge.
    Symbols live in a doubly linked list; merged-away symbols become ''.
    """
    prev = list(range(-1, len(symbols) - 1))        # prev[i] = index of the symbol on the left
    next_ = list(range(1, len(symbols) + 1))        # next_[i] = index on the right (len = none)
    heap = []                                       # (key, left index, right index, merged text)

    def push_pair(left: int, right: int):
        if left < 0 or right >= len(symbols):
            return
        key = priority(symbols[left], symbols[right])
        if key is not None:
            heapq.heappush(heap, (key, left, right, symbols[left] + symbols[right]))

    for i in range(len(symbols) - 1):
        push_pair(i, i + 1)

    while heap:
        _, left, right, text = heapq.heappop(heap)
        if not symbols[left] or not symbols[right] or symbols[left] + symbols[right] != text:
            continue                                # stale: a side changed since this was pushed
        symbols[left], symbols[right] = text, ""    # the right symbol joins the left one
        next_[left] = next_[right]
        if next_[left] < len(symbols):
            prev[next_[left]] = left
        push_pair(prev[left], left)                 # the merged symbol has two new neighbours
        push_pair(left, next_[left])

    return [s for s in symbols if s]


def bpe_merge(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Merge the symbols of one pre-token, lowest merge rank first.

    word: the pre-token in the byte-map alphabet, e.g. 'Ġhello'. Returns the final symbols,
    e.g. ['Ġhello']. Only pairs listed in tokenizer.ggml.merges may merge.
    """
    return merge_symbols(list(word), lambda left, right: ranks.get((left, right)))  # one symbol per byte
# --8<-- [end:bpe_merge]


def bpe_word_to_ids(word: str, ranks, token_to_id: dict[str, int], ignore_merges: bool = False) -> list[int]:
    """One pre-token (byte-map alphabet) -> token ids, as llama.cpp does it.

    ignore_merges (Llama 3's `llama-bpe`): a pre-token that is itself a token is taken whole.
    A final symbol that is not a token (only possible with inconsistent merges) falls back to
    its single characters that are tokens, the others are dropped, like llama.cpp.
    """
    if ignore_merges and word in token_to_id:
        return [token_to_id[word]]
    ids = []
    for symbol in bpe_merge(word, ranks):
        tid = token_to_id.get(symbol)
        if tid is not None:
            ids.append(tid)
        else:
            ids.extend(token_to_id[c] for c in symbol if len(c.encode("utf-8")) == 1 and c in token_to_id)
    return ids
