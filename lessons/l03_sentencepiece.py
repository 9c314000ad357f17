# --8<-- [start:intro]
"""Lesson 3: SentencePiece BPE (`tokenizer.ggml.model = llama`), the tokenizer of Llama 1/2 and Mistral.

Same family as byte-level BPE (lesson 2c), three differences:

1. Characters, not bytes. Symbols start as Unicode characters; a space is spelled "▁" (U+2581)
   and, with `tokenizer.ggml.add_space_prefix` (default true), a "▁" is put in front of the text
   so the first word looks like every other word: "Hello world" -> "▁Hello▁world".
2. Scores, not merge ranks. There is no merge list: any two adjacent symbols may merge if their
   concatenation is a token, and the token with the HIGHEST score (`tokenizer.ggml.scores`)
   merges first; on a tie the leftmost pair. There is no pre-tokenizer either: the whole text
   is one word, spaces included.
3. Byte fallback. A character that is not a token is written as its UTF-8 bytes with the
   256 byte tokens "<0x00>".."<0xFF>" (token type 6).

Worked example (check it by hand). Tokens and scores: "▁h" -4, "he" -2, "ll" -1, "llo" -3,
"▁he" -5, plus the single characters. Encode "hello" (a space prefix gives "▁hello"):

    symbols  ▁ h e l l o       candidates: ▁h -4, he -2, ll -1 (el, lo are not tokens)
    ll  -1:  ▁ h e ll o        new candidates: llo -3 (ell is not a token)
    he  -2:  ▁ he ll o         new candidates: ▁he -5 (hell is not a token); ▁h is now stale
    llo -3:  ▁ he llo          (hello is not a token)
    ▁he -5:  ▁he llo           done: ["▁he", "llo"]

and "é" with no "é" token becomes the bytes of its UTF-8 spelling, ["<0xC3>", "<0xA9>"].
tests/test_tokenizer.py replays both on a toy vocabulary.
"""
# --8<-- [end:intro]

from __future__ import annotations

from lessons.l02c_byte_level_bpe import merge_symbols

SPACE = "\u2581"  # "▁", SentencePiece's visible space


# --8<-- [start:spm_merge]
def spm_merge(text: str, token_to_id: dict[str, int], scores) -> list[str]:
    """Merge the characters of `text` (spaces already "▁"), best-scoring token first.

    The loop is byte-level BPE's (lesson 2c); only the priority differs: there is no merge list,
    any pair whose concatenation is a token may merge, and the higher that token's score the sooner.
    Returns the final symbols; each is a token or a single character that is not one.
    """
    def priority(left: str, right: str):
        tid = token_to_id.get(left + right)
        return None if tid is None else -scores[tid]  # heapq pops the smallest: negate the score

    return merge_symbols(list(text), priority)      # one symbol per character to start with
# --8<-- [end:spm_merge]


# --8<-- [start:byte_fallback]
def byte_token_text(byte: int) -> str:
    """0x0A -> '<0x0A>' (upper-case hex, the spelling SentencePiece and llama.cpp use)."""
    return f"<0x{byte:02X}>"


def symbols_to_ids(symbols: list[str], token_to_id: dict[str, int], unk_id: int | None) -> list[int]:
    """Final symbols -> ids; a symbol that is not a token goes out byte by byte."""
    ids = []
    for symbol in symbols:
        tid = token_to_id.get(symbol)
        if tid is not None:
            ids.append(tid)
            continue
        for byte in symbol.encode("utf-8"):
            tid = token_to_id.get(byte_token_text(byte))
            if tid is None:                         # a vocabulary without byte tokens
                tid = token_to_id.get(chr(byte)) if byte < 0x80 else None
            if tid is None:
                tid = unk_id
            if tid is None:
                raise ValueError(f"cannot encode byte 0x{byte:02X}: no byte token and no unknown token")
            ids.append(tid)
    return ids
# --8<-- [end:byte_fallback]


def spm_encode(text: str, token_to_id: dict[str, int], scores, unk_id: int | None,
               add_space_prefix: bool) -> list[int]:
    """One run of plain text (no special tokens in it) -> ids."""
    if add_space_prefix:
        text = " " + text
    text = text.replace(" ", SPACE)                 # [n chars] -> [n chars], spaces made visible
    return symbols_to_ids(spm_merge(text, token_to_id, scores), token_to_id, unk_id)


def spm_token_bytes(text: str, is_byte_token: bool) -> bytes:
    """Token text -> the bytes it stands for: '▁the' -> b' the', '<0x0A>' -> b'\\n'."""
    if is_byte_token:
        return bytes([int(text[3:5], 16)])
    return text.replace(SPACE, " ").encode("utf-8")
