"""Lesson 19e: the tokenizer beside the weights -> GGUF's tokenizer.* keys.

Lesson 19b converts each tokenizer format; this file decides which one a checkpoint folder has and
adds what lives in other files: tokenizer.model (SentencePiece) is preferred when present, as
llama.cpp's converter does, else tokenizer.json; Meta's downloads keep tokenizer.model in the parent
folder of the model folders. tokenizer_config.json names the special tokens by their text
("bos_token": "<|im_start|>"), which becomes an id; config.json's bos_token_id/eos_token_id fill in
what it does not say. The chat template comes from chat_template.jinja or tokenizer_config.json.
"""
from __future__ import annotations

import os

from lessons.l16_safetensors import CheckpointError
from lessons.l19b_tokenizer_import import read_sentencepiece, vocab_from_sentencepiece, vocab_from_tokenizer_json
from lessons.l19d_checkpoint_checks import read_json


# --8<-- [start:tokenizer]
def tokenizer_metadata(folder: str, config: dict, md: dict, tokenizer: str | None = None, also: str = "") -> dict:
    """tokenizer.model (SentencePiece, preferred as llama.cpp does) or tokenizer.json, special ids,
    add_bos, the chat template -> tokenizer.* keys (and general.quantization_version last)."""
    n_vocab = md["llama.vocab_size"]
    def find(name: str) -> str | None:  # beside the weights, else in `also` (Meta's parent folder)
        return next((os.path.join(d, name) for d in (folder, also) if d and os.path.isfile(os.path.join(d, name))), None)

    spm = tokenizer if tokenizer and not tokenizer.endswith(".json") else find("tokenizer.model")
    tok_json = tokenizer if tokenizer and tokenizer.endswith(".json") else find("tokenizer.json")
    tok_config = read_json(find("tokenizer_config.json")) if find("tokenizer_config.json") else {}
    out = {}
    if spm:
        with open(spm, "rb") as f:
            pieces, scores, types, specs = read_sentencepiece(f.read())
        vocab = vocab_from_sentencepiece(pieces, scores, types, n_vocab, specs["add_dummy_prefix"])
        vocab["tokenizer.ggml.remove_extra_whitespaces"] = specs["remove_extra_whitespaces"]
        defaults = {"bos": specs["bos_id"], "eos": specs["eos_id"], "unknown": specs["unk_id"],
                    "padding": specs["pad_id"]}
    elif tok_json:
        try:
            vocab, defaults = vocab_from_tokenizer_json(read_json(tok_json), n_vocab), {}
        except (AttributeError, KeyError, TypeError) as e:  # JSON of the wrong shape
            raise CheckpointError(f"{tok_json}: not a tokenizer.json ({type(e).__name__}: {str(e)[:60]})") from None
        if isinstance(tok_config.get("add_prefix_space"), bool):
            out["tokenizer.ggml.add_space_prefix"] = tok_config["add_prefix_space"]
    else:
        raise CheckpointError(f"{folder}: no tokenizer.model or tokenizer.json")
    if isinstance(tok_config.get("add_bos_token"), bool):
        out["tokenizer.ggml.add_bos_token"] = tok_config["add_bos_token"]
    out |= vocab
    ids = {text: i for i, text in enumerate(vocab["tokenizer.ggml.tokens"])}
    for key, name in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("padding", "pad_token")):
        text = tok_config.get(name)
        text = text.get("content") if isinstance(text, dict) else text
        tid = ids.get(text) if isinstance(text, str) else None
        tid = tid if tid is not None else config.get(f"{name}_id", defaults.get(key))
        if isinstance(tid, int) and 0 <= tid < n_vocab:
            out[f"tokenizer.ggml.{key}_token_id"] = tid
    template = chat_template(folder, tok_config)
    if template:
        out["tokenizer.chat_template"] = template
    return out | {"general.quantization_version": 2}


def chat_template(folder: str, tok_config: dict) -> str | None:
    """chat_template.jinja wins over tokenizer_config.json's "chat_template" (a string, or a list
    of named templates of which GGUF's key takes "default")."""
    jinja = os.path.join(folder, "chat_template.jinja")
    if os.path.isfile(jinja):
        with open(jinja, encoding="utf-8") as f:
            return f.read()
    t = tok_config.get("chat_template")
    if isinstance(t, list):
        t = next((x.get("template") for x in t if isinstance(x, dict) and x.get("name") == "default"), None)
    return t if isinstance(t, str) else None
# --8<-- [end:tokenizer]
