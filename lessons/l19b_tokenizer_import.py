"""Lesson 19b: a checkpoint's tokenizer -> GGUF's `tokenizer.ggml.*` keys.

Lessons 2 and 3 read a vocabulary from GGUF metadata. Here it comes from where trainers keep it:

* tokenizer.json (Hugging Face `tokenizers`): byte-level BPE. `model.vocab` maps text -> id,
  `model.merges` is the merge list in rank order, `added_tokens` are the special ones (<|im_start|>).
  Ids become positions in `tokenizer.ggml.tokens`; an added token marked special (or written like
  <|...|>) is a control token (type 3), another added token is user-defined (4), the rest normal (1).
  The pre-tokenizer (how text is cut before BPE) is not a regex in the file but a small tree, which
  we recognise and name the way llama.cpp names it in `tokenizer.ggml.pre`:
      ByteLevel                                     -> "gpt-2"
      Sequence[Digits(individual), ByteLevel]       -> "smollm"    (SmolLM2, StarCoder)
      Sequence[Split(Llama 3's regex), ByteLevel]   -> "llama-bpe"
* tokenizer.model (SentencePiece): a protobuf, read by hand below. A protobuf is a list of
  (key, value) records; key = field_number << 3 | wire_type, a varint. The model message holds
  field 1 = one record per piece, each itself a message: 1 = the text, 2 = the score (float32),
  3 = the type (the same numbers GGUF uses: 1 normal, 2 unknown, 3 control, 6 byte ...).
  Worked example, the bytes of the piece "▁the" with score -3.5 and type 1:
      0a 0f                 field 1, wire 2 (length-delimited), 15 bytes follow: one piece
         0a 06 e2 96 81 74 68 65      field 1 (text), 6 bytes: "▁the" in UTF-8
         15 00 00 60 c0               field 2, wire 5 (32 bits): float32 -3.5
         18 01                        field 3, wire 0 (varint): 1 = normal
* tokenizer.bin (llama2.c, lesson 18): SentencePiece pieces with "▁" written as a space, and no types:
  <unk> <s> </s> are ids 0-2 and <0xXX> pieces are the byte fallbacks.

Special ids (bos/eos/unk/pad) and add_bos come from tokenizer_config.json; the chat template from
chat_template.jinja or tokenizer_config.json's "chat_template" -> `tokenizer.chat_template`.
"""
from __future__ import annotations

import struct

from lessons.l16_safetensors import CheckpointError

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# ---- tokenizer.json ----
# --8<-- [start:pre]
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def pre_tokenizer_name(pre: dict | None) -> str:
    """tokenizer.json's "pre_tokenizer" tree -> the tokenizer.ggml.pre name lesson 2b implements."""
    steps = (pre or {}).get("pretokenizers") if (pre or {}).get("type") == "Sequence" else [pre or {}]
    kinds = [s.get("type") for s in steps or []]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "smollm"
    if (kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == LLAMA3_SPLIT
            and not steps[1].get("use_regex", True)):
        return "llama-bpe"
    raise CheckpointError(f"tokenizer.json: pre-tokenizer {'+'.join(map(str, kinds)) or 'none'} is not one "
                          "these lessons know (ByteLevel, Digits+ByteLevel, Llama 3's Split+ByteLevel)")
# --8<-- [end:pre]


# --8<-- [start:bpe]
def looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def vocab_from_tokenizer_json(tok: dict, n_vocab: int) -> dict:
    """A byte-level BPE tokenizer.json -> tokenizer.ggml.{model, pre, tokens, token_type, merges}."""
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise CheckpointError(f"tokenizer.json: model type {model.get('type')!r}, only byte-level BPE is supported")
    tokens, types = [f"[PAD{i}]" for i in range(n_vocab)], [UNUSED] * n_vocab  # ids no one names: padding
    added = {a["id"]: a for a in tok.get("added_tokens") or []}
    for text, i in list(model["vocab"].items()) + [(a["content"], i) for i, a in added.items()]:
        if not isinstance(text, str) or type(i) is not int or not 0 <= i < n_vocab:
            raise CheckpointError(f"tokenizer.json: token {text!r} has id {i}, the model has {n_vocab}")
        tokens[i] = text
        special = i in added and (added[i].get("special") or looks_special(text))
        types[i] = CONTROL if special else USER_DEFINED if i in added else NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]  # "a b" or [a, b]
    if not all(isinstance(m, str) and m.count(" ") >= 1 for m in merges):
        raise CheckpointError("tokenizer.json: a merge is not two tokens")
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre_tokenizer_name(tok.get("pre_tokenizer")),
            "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
# --8<-- [end:bpe]


# ---- tokenizer.model: a protobuf, by hand ----
# --8<-- [start:protobuf]
def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """7 bits a byte, low group first; a set top bit means another byte follows. -> (value, next pos)"""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("tokenizer.model: truncated varint (not a SentencePiece protobuf?)")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos
        if shift >= 70:
            raise CheckpointError("tokenizer.model: varint longer than 10 bytes (not a protobuf?)")


def fields(buf: bytes):
    """Yield (field number, wire type, value) of one message: value is an int or the bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire in (1, 2, 5):
            size = {1: 8, 5: 4}.get(wire)
            if size is None:
                size, pos = varint(buf, pos)
            if size > len(buf) - pos:
                raise CheckpointError(f"tokenizer.model: field {number} runs past the end (not a protobuf?)")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise CheckpointError(f"tokenizer.model: wire type {wire} at byte {pos} (not a SentencePiece protobuf)")
        if number == 0:
            raise CheckpointError("tokenizer.model: field number 0 (not a SentencePiece protobuf)")
        yield number, wire, value


def read_sentencepiece(buf: bytes) -> tuple[list[str], list[float], list[int], dict]:
    """ModelProto -> (pieces, scores, types, specs): specs holds the trainer's special ids and
    the normalizer's add_dummy_prefix and remove_extra_whitespaces (SentencePiece's defaults: true)."""
    pieces, scores, types = [], [], []
    specs = {"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1, "add_dummy_prefix": True,
             "remove_extra_whitespaces": True}
    for number, wire, value in fields(bytes(buf)):
        if number == 1:                                   # one SentencePiece
            expect(wire, 2, "piece")
            text, score, kind = None, 0.0, NORMAL
            for n, w, v in fields(value):
                if n == 1:
                    expect(w, 2, "piece text")
                    text = utf8(v)
                elif n == 2:
                    expect(w, 5, "score")
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    expect(w, 0, "type")
                    kind = v
            if text is None or not 1 <= kind <= 6:
                raise CheckpointError(f"tokenizer.model: piece {len(pieces)} has no text or a bad type")
            pieces.append(text), scores.append(score), types.append(kind)
        elif number == 2:                                 # TrainerSpec: the special ids
            expect(wire, 2, "trainer_spec")
            names = {40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
            for n, w, v in fields(value):
                if n in names and w == 0:
                    specs[names[n]] = v - (1 << 64) if v >= 1 << 63 else v  # int32 -1 is ten bytes
        elif number == 3:                                 # NormalizerSpec
            expect(wire, 2, "normalizer_spec")
            for n, w, v in fields(value):
                if n in (3, 4) and w == 0:
                    specs["add_dummy_prefix" if n == 3 else "remove_extra_whitespaces"] = bool(v)
    if not pieces:
        raise CheckpointError("tokenizer.model: no pieces (not a SentencePiece model)")
    return pieces, scores, types, specs
# --8<-- [end:protobuf]


def expect(wire: int, wanted: int, what: str) -> None:
    if wire != wanted:
        raise CheckpointError(f"tokenizer.model: {what} has wire type {wire}, expected {wanted} (not a protobuf?)")


def utf8(raw: bytes) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("tokenizer.model: a piece is not UTF-8 (not a SentencePiece model?)") from None


# --8<-- [start:spm]
def vocab_from_sentencepiece(pieces, scores, types, n_vocab: int, add_space_prefix: bool) -> dict:
    """SentencePiece pieces -> tokenizer.ggml.* ("llama" model); padded to the model's vocab size."""
    if len(pieces) > n_vocab:
        raise CheckpointError(f"tokenizer has {len(pieces)} tokens, the model only {n_vocab}")
    pad = n_vocab - len(pieces)
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default",
            "tokenizer.ggml.tokens": list(pieces) + [f"[PAD{i}]" for i in range(len(pieces), n_vocab)],
            "tokenizer.ggml.scores": [float(s) for s in scores] + [-1000.0] * pad,
            "tokenizer.ggml.token_type": list(types) + [UNUSED] * pad,
            "tokenizer.ggml.add_space_prefix": add_space_prefix}


def llama2c_pieces(raw_pieces: list[bytes]) -> tuple[list[str], list[int]]:
    """tokenizer.bin's bytes -> SentencePiece texts and types: llama2.c wrote "▁" as " ", and
    "<s>"/"</s>" as "\\n<s>\\n"/"\\n</s>\\n"; it kept no types, so they are recovered from the ids."""
    pieces, types = [], []
    for i, raw in enumerate(raw_pieces):
        text = raw.decode("utf-8", errors="replace")
        text = text.strip("\n") if i in (1, 2) else text.replace(" ", "▁")
        pieces.append(text)
        is_byte = len(text) == 6 and text.startswith("<0x") and text.endswith(">")
        types.append(UNKNOWN if i == 0 else CONTROL if i in (1, 2) else BYTE if is_byte else NORMAL)
    return pieces, types
# --8<-- [end:spm]
