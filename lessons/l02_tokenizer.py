"""Lesson 2: the tokenizer, text <-> token ids, read from a GGUF file's metadata alone.

The vocabulary lives in `tokenizer.ggml.*` keys: `tokens` (id -> text), `token_type` (1 normal,
2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), `model` (which algorithm), and per
algorithm `merges` (byte-level BPE, lesson 2c, with the pre-tokenizer `pre`, lesson 2b) or
`scores` (SentencePiece, lesson 3). This file does what both algorithms share:

1. Special tokens first. Control and user-defined tokens ("<|im_start|>") are found in the text
   as whole strings, longest first, before any algorithm runs; the text between them is encoded
   normally. With parse_special=False only user-defined ones are (llama.cpp's rule).
2. BOS/EOS and the "end of generation" set from metadata, plus llama.cpp's list of well-known
   texts ("<|im_end|>", "<|eot_id|>", ...) that also end generation.
3. Decoding: ids -> bytes -> text, and a streaming decoder that never prints half a character.

Worked example with SmolLM2's vocabulary (tests check these ids against llama.cpp):

    encode("<|im_start|>user\nHi")  ->  [1, 4093, 198, 26843]
            "<|im_start|>" is token 1, cut out first; "user", "\n" (spelled "Ċ"), "Hi" are BPE
    encode("<|im_start|>", parse_special=False)  ->  [44, 108, 306, 79, 3738, 108, 46]
            the same characters as plain text: "<" "|" "im" "_" "start" "|" ">"
    encode("👍🏽")  ->  [10813, 235, 231, 10813, 233, 138]   (8 UTF-8 bytes, 6 tokens: only the
            last token of each emoji completes a character, which is why decoding must stream)
    decode([26843, 17])  ->  "Hi!"
"""

from __future__ import annotations

import numbers

from lessons.data_vocab import (EOG_ID_KEYS, EOG_TEXTS, FIM_EOG_TEXTS, FIM_TEXTS,  # noqa: F401  llama.cpp's lists
                                KNOWN_MODELS, LLAMA3_NAMES, llama_cpp_special_texts)
from lessons.l02b_bpe_pretokenize import pretokenize, pretokenizer_family
from lessons.l02c_byte_level_bpe import bpe_word_to_ids, bytes_to_symbols, parse_merges, symbols_to_bytes
from lessons.l02d_stream_decode import StreamDecoder
from lessons.l03_sentencepiece import spm_encode, spm_token_bytes

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


class Tokenizer:
    # --8<-- [start:from_metadata]
    @classmethod
    def from_metadata(cls, md: dict) -> Tokenizer:
        """Build the tokenizer from GGUF metadata (a dict key -> value); no tensors needed."""
        model = _get(md, "tokenizer.ggml.model", str)
        if model is None:
            raise ValueError("no tokenizer in this file (tokenizer.ggml.model is missing)")
        if model not in ("gpt2", "llama"):
            known = model in KNOWN_MODELS
            raise ValueError(f"{'unsupported' if known else 'unknown'} tokenizer model '{model}'"
                             + (" (these lessons implement 'gpt2' and 'llama')" if known else ""))
        tokens = md.get("tokenizer.ggml.tokens")
        if not isinstance(tokens, (list, tuple)) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokenizer.ggml.tokens must be a non-empty list of strings")
        return cls(md, model, list(tokens))
    # --8<-- [end:from_metadata]

    # --8<-- [start:init]
    def __init__(self, md: dict, model: str, tokens: list[str]):
        n = self.n_vocab = len(tokens)
        self.model = model
        # llama.cpp renames empty tokens so every text is unique and non-empty
        self.tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
        self.token_to_id = _unique_ids(self.tokens)
        self.types = _get_list(md, "tokenizer.ggml.token_type", n, int) or [NORMAL] * n
        self.scores = _get_list(md, "tokenizer.ggml.scores", n, float) or [0.0] * n

        is_spm = model == "llama"
        self.bos_id = _special_id(md, "bos", n, 1 if is_spm else 11)
        self.eos_id = _special_id(md, "eos", n, 2 if is_spm else 11)
        self.unk_id = _special_id(md, "unknown", n, 0 if is_spm else None)
        if is_spm:                                    # SentencePiece (lesson 3): scores and byte tokens
            self.pre = None
            self.add_space_prefix = _get(md, "tokenizer.ggml.add_space_prefix", bool, True)
            _check_byte_tokens(self.tokens, self.types)
        else:                                         # byte-level BPE (lessons 2b, 2c): merges, regexes
            self.ranks = parse_merges(_get_merges(md))
            pre_name = _get(md, "tokenizer.ggml.pre", str)
            self.pre = pretokenizer_family(pre_name)
            self.add_space_prefix = False
            self.ignore_merges = pre_name in LLAMA3_NAMES
            self._word_cache: dict[str, list[int]] = {}
        self.add_bos = _get(md, "tokenizer.ggml.add_bos_token", bool, is_spm or self.ignore_merges)
        self.add_eos = _get(md, "tokenizer.ggml.add_eos_token", bool, False)
        if self.add_bos and self.bos_id is None:
            raise ValueError("tokenizer.ggml.add_bos_token is set but there is no BOS token")

        # end of generation: EOS, the ids named in metadata, and llama.cpp's well-known texts
        named = [_special_id(md, key, n, None) for key in EOG_ID_KEYS] + [self.eos_id]
        by_text, forced_control = llama_cpp_special_texts(self.tokens)
        self.eot_ids = {tid for tid in named if tid is not None} | by_text
        for i in forced_control:
            self.types[i] = CONTROL                   # llama.cpp forces these to be control tokens
        # special tokens are matched longest first (llama.cpp sorts by byte length)
        special = [i for i in range(n) if self.types[i] in (CONTROL, USER_DEFINED, UNKNOWN)]
        self.special_ids = sorted(special, key=lambda i: -len(self.tokens[i].encode("utf-8")))
    # --8<-- [end:init]

    # ---- special tokens: cut them out of the text first ----
    # --8<-- [start:split_special]
    def split_special(self, text: str, parse_special: bool) -> list[str | int]:
        """'<|im_start|>hi' -> [1, 'hi']: special tokens as ids, the text around them as str."""
        parts: list[str | int] = [text] if text else []
        for tid in self.special_ids:
            if not parse_special and self.types[tid] != USER_DEFINED:
                continue                              # control/unknown only when asked to
            needle, out = self.tokens[tid], []
            for part in parts:
                if isinstance(part, int) or needle not in part:
                    out.append(part)
                    continue
                for k, chunk in enumerate(part.split(needle)):
                    if k:
                        out.append(tid)
                    if chunk:
                        out.append(chunk)
            parts = out
        return parts
    # --8<-- [end:split_special]

    # ---- encoding ----
    # --8<-- [start:encode]
    def encode(self, text: str, add_bos: bool | None = None, parse_special: bool = True) -> list[int]:
        """Text -> token ids. add_bos=None: add BOS (and EOS) as the metadata says."""
        if not isinstance(text, str):
            raise ValueError(f"encode() needs a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:                # a lone surrogate has no UTF-8 bytes
            raise ValueError(f"text is not valid Unicode (lone surrogate at index {e.start})") from None
        ids = []
        if self.add_bos if add_bos is None else add_bos:
            if self.bos_id is None:
                raise ValueError("this vocabulary has no BOS token")
            ids.append(self.bos_id)
        prev_special = True                           # SentencePiece: "▁" before the first text
        for part in self.split_special(text, parse_special):
            if isinstance(part, int):
                ids.append(part)
                prev_special = True
            elif self.model == "llama":
                ids += spm_encode(part, self.token_to_id, self.scores, self.unk_id,
                                  self.add_space_prefix and prev_special)
                prev_special = False
            else:
                ids += self._encode_bpe(part)
        if add_bos is None and self.add_eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def _encode_bpe(self, text: str) -> list[int]:
        ids = []
        for word in pretokenize(text, self.pre):      # e.g. ['Hello', ',', ' world']
            cached = self._word_cache.get(word)
            if cached is None:
                if len(self._word_cache) > 100_000:
                    self._word_cache.clear()          # bound the memory on endless input
                cached = bpe_word_to_ids(bytes_to_symbols(word.encode("utf-8")), self.ranks,
                                         self.token_to_id, self.ignore_merges)
                self._word_cache[word] = cached
            ids += cached
        return ids
    # --8<-- [end:encode]

    # ---- decoding ----
    # --8<-- [start:decode]
    def token_bytes(self, tid: int, special: bool = True) -> bytes:
        """The bytes one token stands for. special=False renders control tokens as nothing."""
        if not 0 <= tid < self.n_vocab:
            raise ValueError(f"token id {tid} is out of range for a vocabulary of {self.n_vocab} tokens")
        kind, text = self.types[tid], self.tokens[tid]
        if kind in (CONTROL, UNKNOWN):
            return text.encode("utf-8") if special else b""
        if kind == USER_DEFINED:
            return text.encode("utf-8")
        if self.model == "llama":
            return spm_token_bytes(text, kind == BYTE) if kind in (NORMAL, BYTE) else b""
        return symbols_to_bytes(text) if kind == NORMAL else b""

    def decode(self, ids, special: bool = True) -> str:
        """Token ids -> text. With a space prefix, the first token loses one leading space."""
        pieces = [self.token_bytes(int(t), special) for t in ids]
        if self.add_space_prefix and pieces and pieces[0].startswith(b" "):
            pieces[0] = pieces[0][1:]                 # only the first token's, as llama.cpp does
        return b"".join(pieces).decode("utf-8", errors="replace")

    def stream_decoder(self, special: bool = False) -> StreamDecoder:
        """For printing generated tokens; control tokens print as nothing, like llama-cli."""
        return StreamDecoder(self, special)
    # --8<-- [end:decode]


# ---- distrust: the metadata's types and ranges ----
# The metadata is input from the outside world (lesson 1c): each value is checked for its type and
# range before the tokenizer uses it, so a broken vocabulary is one ValueError line, not a crash later.

def _get(md: dict, key: str, kind, default=None):
    """md[key] checked to be a `kind` (int accepts any integer but not bool), or default."""
    value = md.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if kind is not int and isinstance(value, kind):
        return value
    raise ValueError(f"{key} has the wrong type ({type(value).__name__}, expected {kind.__name__})")


def _get_list(md: dict, key: str, n: int, kind):
    value = md.get(key)
    if value is None:
        return None
    try:
        value = [kind(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a list of numbers") from None
    if len(value) < n:
        raise ValueError(f"{key} has {len(value)} entries for {n} tokens")
    return value[:n]


def _special_id(md: dict, name: str, n_vocab: int, default: int | None) -> int | None:
    key = f"tokenizer.ggml.{name}_token_id"
    tid = _get(md, key, int)
    if tid is None:
        return default if default is not None and default < n_vocab else None
    if not 0 <= tid < n_vocab:
        raise ValueError(f"{key} = {tid} is out of range for a vocabulary of {n_vocab} tokens")
    return tid


def _unique_ids(tokens: list[str]) -> dict[str, int]:
    token_to_id = {t: i for i, t in enumerate(tokens)}
    if len(token_to_id) != len(tokens):
        raise ValueError("tokenizer.ggml.tokens contains the same token text twice")
    return token_to_id


def _check_byte_tokens(tokens: list[str], types: list[int]) -> None:
    """SentencePiece byte tokens must read <0xXX>: lesson 3 turns them back into that byte."""
    for i, t in enumerate(tokens):
        if types[i] == BYTE and (len(t) != 6 or not t.startswith("<0x") or not t.endswith(">")
                                 or any(c not in "0123456789abcdefABCDEF" for c in t[3:5])):
            raise ValueError(f"byte token {i} is {t!r}, expected the form <0xXX>")


def _get_merges(md: dict) -> list:
    merges = md.get("tokenizer.ggml.merges")
    if not isinstance(merges, (list, tuple)):
        raise ValueError("byte-level BPE needs tokenizer.ggml.merges (a list of strings)")
    return merges
