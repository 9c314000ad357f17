"""The tokenizer lessons' worked examples, by hand, and their clean errors on bad vocabularies.

These need neither the real model nor llama.cpp: toy vocabularies written here, and the tiny
vocabularies of tests/conftest.py written to a GGUF with write_gguf and read back with GGUFFile
(the path `run.py --tokenize` takes: metadata only).
"""

from __future__ import annotations

import pytest

from conftest import bpe_vocab, spm_vocab
from lessons.l01_gguf import GGUFFile, write_gguf
from lessons.l02_tokenizer import Tokenizer
from lessons.l02b_bpe_pretokenize import pretokenize, pretokenizer_family
from lessons.l02c_byte_level_bpe import (BYTE_TO_CHAR, bpe_merge, bytes_to_symbols, parse_merges,
                                         symbols_to_bytes)
from lessons.l03_sentencepiece import spm_merge


# ---- lesson 2c: the byte map and the merge loop ----
def test_byte_map_is_gpt2s():
    assert len(set(BYTE_TO_CHAR.values())) == 256
    assert BYTE_TO_CHAR[ord(" ")] == "Ġ" and BYTE_TO_CHAR[ord("\n")] == "Ċ" and BYTE_TO_CHAR[ord("A")] == "A"
    assert BYTE_TO_CHAR[0] == "\u0100" and BYTE_TO_CHAR[0xAD] == "\u0143"  # the 68 shifted bytes, in order
    data = bytes(range(256))
    assert symbols_to_bytes(bytes_to_symbols(data)) == data


def toy_bpe_metadata(pre: str = "gpt-2") -> dict:
    """The docstring's vocabulary: 0 a, 1 b, 2 c, 3 ab, 4 bc, 5 abc; merges a b, b c, ab c."""
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre,
            "tokenizer.ggml.tokens": ["a", "b", "c", "ab", "bc", "abc"],
            "tokenizer.ggml.merges": ["a b", "b c", "ab c"]}


def test_bpe_worked_example_step_by_step():
    ranks = parse_merges(["a b", "b c", "ab c"])
    assert ranks == {("a", "b"): 0, ("b", "c"): 1, ("ab", "c"): 2}
    assert bpe_merge("abcbc", {("a", "b"): 0}) == ["ab", "c", "b", "c"]                  # rank 0 only
    assert bpe_merge("abcbc", {("a", "b"): 0, ("b", "c"): 1}) == ["ab", "c", "bc"]        # then rank 1
    assert bpe_merge("abcbc", ranks) == ["abc", "bc"]                                     # then rank 2
    assert Tokenizer.from_metadata(toy_bpe_metadata()).encode("abcbc") == [5, 4]


def test_bpe_lowest_rank_wins_over_leftmost():
    # "b c" outranks "a b": the leftmost pair waits, and then can no longer merge
    assert bpe_merge("abc", {("b", "c"): 0, ("a", "b"): 1}) == ["a", "bc"]
    assert bpe_merge("aaa", {("a", "a"): 0}) == ["aa", "a"]                               # tie: leftmost first


def test_bpe_merges_entry_without_a_space_is_rejected():
    with pytest.raises(ValueError, match="merges\\[1\\]"):
        parse_merges(["a b", "ab"])


# ---- lesson 2b: pre-tokenizers ----
def test_pretokenizer_worked_examples():
    assert pretokenize("I'm 42!", "smollm") == ["I", "'m", " ", "4", "2", "!"]
    assert pretokenize("I'm 42!", "llama3") == ["I", "'m", " ", "42", "!"]
    assert pretokenize("I'm 42!", "gpt2") == ["I", "'m", " 42", "!"]
    assert pretokenize("1234567", "llama3") == ["123", "456", "7"]
    assert pretokenize("I'M", "llama3") == ["I", "'M"] and pretokenize("I'M", "gpt2") == ["I", "'", "M"]
    assert pretokenize("a, b+c", "default") == ["a", ",", " b", "+", "c"]
    assert pretokenize("", "smollm") == []


@pytest.mark.parametrize("family", ["gpt2", "smollm", "llama3", "default"])
def test_pretokenizers_keep_every_character(family):
    text = "Hello,  wörld!\r\n\t 12345 👍🏽 x\u3000y  \n"
    assert "".join(pretokenize(text, family)) == text


def test_pretokenizer_names():
    assert pretokenizer_family(None) == pretokenizer_family("default") == "default"
    assert pretokenizer_family("llama-bpe") == "llama3" and pretokenizer_family("smollm") == "smollm"
    with pytest.raises(ValueError, match="unknown pre-tokenizer 'nope'"):
        pretokenizer_family("nope")


# ---- lesson 3: SentencePiece ----
def toy_spm_metadata() -> dict:
    pieces = {"▁h": -4.0, "he": -2.0, "ll": -1.0, "llo": -3.0, "▁he": -5.0}
    chars = ["▁", "h", "e", "l", "o"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + chars + list(pieces)
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.scores": [0.0] * 259 + [-10.0] * len(chars) + list(pieces.values()),
            "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1] * (len(chars) + len(pieces))}


def test_spm_worked_example_step_by_step():
    md = toy_spm_metadata()
    tok = Tokenizer.from_metadata(md)
    scores = tok.scores
    assert spm_merge("▁hello", tok.token_to_id, scores) == ["▁he", "llo"]
    ids = tok.encode("hello", add_bos=False)
    assert [tok.tokens[i] for i in ids] == ["▁he", "llo"]
    assert [tok.tokens[i] for i in tok.encode("é", add_bos=False)] == ["▁", "<0xC3>", "<0xA9>"]
    assert tok.encode("hello") == [1] + ids                       # SentencePiece adds BOS by default
    assert tok.decode(tok.encode("hello é", add_bos=False)) == "hello é"


def test_spm_space_prefix_can_be_turned_off():
    md = toy_spm_metadata() | {"tokenizer.ggml.add_space_prefix": False}
    tok = Tokenizer.from_metadata(md)
    assert [tok.tokens[i] for i in tok.encode("hello", add_bos=False)] == ["he", "llo"]
    assert tok.decode(tok.encode(" hello", add_bos=False)) == " hello"


# ---- lesson 2: special tokens, ids from metadata ----
def test_special_tokens_are_cut_out_longest_first():
    md = toy_bpe_metadata() | {"tokenizer.ggml.tokens": ["a", "b", "c", "ab", "bc", "abc", "<x>", "<x><x>", "<u>"],
                               "tokenizer.ggml.token_type": [1] * 6 + [3, 3, 4]}
    tok = Tokenizer.from_metadata(md)
    assert tok.split_special("a<x><x>b<x>", parse_special=True) == ["a", 7, "b", 6]
    assert tok.split_special("<u>a<x>", parse_special=False) == [8, "a<x>"]   # user-defined always
    assert tok.encode("ab<u>c") == [3, 8, 2]


def test_end_of_generation_ids_from_metadata_and_texts():
    md = toy_bpe_metadata() | {"tokenizer.ggml.tokens": ["a", "b", "c", "ab", "bc", "abc", "<|im_end|>", "<x>"],
                               "tokenizer.ggml.eos_token_id": 5, "tokenizer.ggml.eot_token_id": 7}
    tok = Tokenizer.from_metadata(md)
    assert tok.eot_ids == {5, 6, 7}                 # EOS, the named EOT, and a well-known text
    assert tok.types[6] == 3                        # llama.cpp makes "<|im_end|>" a control token
    assert tok.encode("a<|im_end|>") == [0, 6] and tok.encode("a<|im_end|>", parse_special=False) != [0, 6]


def test_add_bos_and_add_eos_follow_metadata():
    md = toy_bpe_metadata() | {"tokenizer.ggml.bos_token_id": 0, "tokenizer.ggml.eos_token_id": 1,
                               "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": True}
    tok = Tokenizer.from_metadata(md)
    assert tok.encode("c") == [0, 2, 1]             # as the metadata says: BOS and EOS
    assert tok.encode("c", add_bos=False) == [2]    # plain text
    assert tok.encode("c", add_bos=True) == [0, 2]  # BOS forced, EOS only when the metadata decides
    for pre, llama3_style in (("llama-bpe", True), ("dbrx", False), ("smollm", False)):
        tok = Tokenizer.from_metadata(toy_bpe_metadata() | {"tokenizer.ggml.pre": pre, "tokenizer.ggml.bos_token_id": 0})
        assert tok.add_bos == tok.ignore_merges == llama3_style, pre


def test_gguf_round_trip_of_conftest_vocabularies(tmp_path):
    """Metadata only, as run.py --tokenize reads it: no tensors in these files."""
    for name, make in (("bpe", bpe_vocab), ("spm", spm_vocab)):
        md, md_types = make()
        path = tmp_path / f"{name}.gguf"
        write_gguf(path, md, [], metadata_types=md_types)
        tok = Tokenizer.from_metadata(GGUFFile(path).metadata)
        text = "hello world, the quick fox! ünï 👍"
        assert tok.decode(tok.encode(text, add_bos=False)) == text
        assert tok.n_vocab == len(md["tokenizer.ggml.tokens"])
        assert tok.eos_id in tok.eot_ids


BAD_METADATA = [
    ({"tokenizer.ggml.model": "xyz"}, "unknown tokenizer model 'xyz'"),
    ({"tokenizer.ggml.model": "bert"}, "unsupported tokenizer model 'bert'"),
    ({"tokenizer.ggml.model": None}, "tokenizer.ggml.model is missing"),
    ({"tokenizer.ggml.model": 3}, "tokenizer.ggml.model has the wrong type"),
    ({"tokenizer.ggml.tokens": []}, "non-empty list of strings"),
    ({"tokenizer.ggml.tokens": ["a", 5]}, "non-empty list of strings"),
    ({"tokenizer.ggml.tokens": ["a", "a", "b", "c", "ab", "bc"]}, "same token text twice"),
    ({"tokenizer.ggml.merges": None}, "needs tokenizer.ggml.merges"),
    ({"tokenizer.ggml.merges": ["a b", "bc"]}, "has no space"),
    ({"tokenizer.ggml.pre": "nope"}, "unknown pre-tokenizer 'nope'"),
    ({"tokenizer.ggml.bos_token_id": 6}, "bos_token_id = 6 is out of range"),
    ({"tokenizer.ggml.eos_token_id": -1}, "eos_token_id = -1 is out of range"),
    ({"tokenizer.ggml.eot_token_id": 99}, "eot_token_id = 99 is out of range"),
    ({"tokenizer.ggml.bos_token_id": "1"}, "bos_token_id has the wrong type"),
    ({"tokenizer.ggml.token_type": [1, 1]}, "token_type has 2 entries for 6 tokens"),
    ({"tokenizer.ggml.add_bos_token": 1}, "add_bos_token has the wrong type"),
    ({"tokenizer.ggml.token_type": ["x"] * 6}, "token_type must be a list of numbers"),
    ({"tokenizer.ggml.token_type": 7}, "token_type must be a list of numbers"),
]


@pytest.mark.parametrize("change, message", BAD_METADATA, ids=[m for _, m in BAD_METADATA])
def test_bad_vocabulary_raises_one_line_value_error(change, message):
    md = {k: v for k, v in (toy_bpe_metadata() | change).items() if v is not None}
    with pytest.raises(ValueError, match=message.replace("[", "\\[")) as err:
        Tokenizer.from_metadata(md)
    assert "\n" not in str(err.value)


def test_bad_spm_vocabulary_raises():
    md = toy_spm_metadata()
    md["tokenizer.ggml.tokens"] = md["tokenizer.ggml.tokens"][:7] + ["<0xZZ>"] + md["tokenizer.ggml.tokens"][8:]
    with pytest.raises(ValueError, match="expected the form <0xXX>"):
        Tokenizer.from_metadata(md)
    md = toy_spm_metadata()
    md["tokenizer.ggml.scores"] = md["tokenizer.ggml.scores"][:10]
    with pytest.raises(ValueError, match="scores has 10 entries"):
        Tokenizer.from_metadata(md)


def test_encode_rejects_non_text_and_missing_bos():
    tok = Tokenizer.from_metadata(toy_bpe_metadata())
    with pytest.raises(ValueError, match="needs a str"):
        tok.encode(b"abc")
    with pytest.raises(ValueError, match="lone surrogate at index 1"):
        tok.encode("a\ud800b")
    assert tok.bos_id is None                                     # default 11 is out of this vocab
    with pytest.raises(ValueError, match="no BOS token"):
        tok.encode("a", add_bos=True)
    with pytest.raises(ValueError, match="add_bos_token is set but there is no BOS"):
        Tokenizer.from_metadata(toy_bpe_metadata() | {"tokenizer.ggml.add_bos_token": True})
