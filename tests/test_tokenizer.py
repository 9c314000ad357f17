"""Tokenizer lessons (l02, l02b, l02c, l03) against llama.cpp's token ids.

Oracles: tests/fixtures/tokenizer_llamacpp.json (tools/make_tokenizer_fixtures.py: llama.cpp's ids for
~190 strings on the default model's vocabulary, on the same vocabulary with three other pre-tokenizers,
and on tests/fixtures/tokenizer_spm.gguf, a SentencePiece vocabulary built by tools/make_spm_vocab.py),
and the reference's 24 strings (tests/fixtures/reference, tools/make_reference_fixtures.py). The worked
examples of the lesson docstrings are replayed by hand.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SPM_VOCAB = FIXTURES / "tokenizer_spm.gguf"


# ---- fixtures ----
@pytest.fixture(scope="module")
def oracle() -> dict:
    return json.loads((FIXTURES / "tokenizer_llamacpp.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smollm2_metadata(default_model) -> dict:
    return default_model.metadata


def vocab_metadata(name: str, oracle: dict, request) -> dict:
    """Metadata of one of the fixture's vocabularies (the default model's ones skip without it)."""
    if name == "spm":
        return GGUFFile(SPM_VOCAB).metadata
    md = dict(request.getfixturevalue("smollm2_metadata"))
    if name != "smollm2":
        md.pop("tokenizer.ggml.pre")
        if oracle["vocabs"][name]["pre"] is not None:
            md["tokenizer.ggml.pre"] = oracle["vocabs"][name]["pre"]
    return md


_TOKENIZERS: dict[str, Tokenizer] = {}


def tokenizer_for(name: str, oracle: dict, request) -> Tokenizer:
    if name not in _TOKENIZERS:
        _TOKENIZERS[name] = Tokenizer.from_metadata(vocab_metadata(name, oracle, request))
    return _TOKENIZERS[name]


VOCABS = ["smollm2", "smollm2_pre_llama-bpe", "smollm2_pre_gpt-2", "smollm2_pre_missing", "spm"]


# ---- token ids equal llama.cpp's ----
@pytest.mark.parametrize("parse_special", [False, True], ids=["text", "special"])
@pytest.mark.parametrize("vocab", VOCABS)
def test_ids_match_llama_cpp(vocab, parse_special, oracle, request):
    tok = tokenizer_for(vocab, oracle, request)
    expected = oracle["vocabs"][vocab]["ids_special" if parse_special else "ids"]
    wrong = [(text, tok.encode(text, add_bos=False, parse_special=parse_special), want)
             for text, want in zip(oracle["corpus"], expected)
             if tok.encode(text, add_bos=False, parse_special=parse_special) != want]
    assert not wrong, f"{len(wrong)} of {len(expected)} strings differ, first: {wrong[0]!r}"


def test_reference_ids(default_model, reference_dir):
    ref = json.loads((reference_dir / "tokenizer_smollm2.json").read_text(encoding="utf-8"))
    tok = Tokenizer.from_metadata(default_model.metadata)
    for text, plain, special in zip(ref["corpus"], ref["smollm2_ids"], ref["smollm2_ids_special"]):
        assert tok.encode(text, parse_special=False) == plain, text
        assert tok.encode(text) == special, text


@pytest.mark.parametrize("vocab", VOCABS)
def test_special_ids_and_bos_match_llama_cpp(vocab, oracle, request):
    tok, want = tokenizer_for(vocab, oracle, request), oracle["vocabs"][vocab]
    assert (tok.n_vocab, tok.bos_id, tok.eos_id, tok.add_bos) == (want["n_vocab"], want["bos"], want["eos"], want["add_bos"])
    assert tok.eot_ids == set(want["eog"])
    for text, ids in zip(oracle["corpus"], want["ids_add_bos"]):   # add_bos=None: as the metadata says
        assert tok.encode(text) == ids, text


@pytest.mark.parametrize("vocab", ["smollm2", "spm"])
def test_token_bytes_match_llama_cpp(vocab, oracle, request):
    tok = tokenizer_for(vocab, oracle, request)
    pieces = oracle["vocabs"][vocab]["pieces_hex"]
    assert len(pieces) > 300
    wrong = [(i, tok.token_bytes(int(i)), bytes.fromhex(h)) for i, h in pieces.items()
             if tok.token_bytes(int(i)) != bytes.fromhex(h)]
    assert not wrong, wrong[:5]


def test_shakespeare_ids_match_llama_cpp(oracle, request, reference_dir):
    """40 KB of text, 12212 tokens: llama.cpp's ids, by their hash and against the ids themselves
    (tests/fixtures/tinyshakespeare40k_smollm2_ids.npy, written by llama.cpp's tokenizer)."""
    text = (reference_dir / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    tok = tokenizer_for("smollm2", oracle, request)
    tok._word_cache.clear()
    ids = tok.encode(text, parse_special=False)
    want = oracle["vocabs"]["smollm2"]["shakespeare"]
    assert len(ids) == want["n_tokens"]
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == want["ids_sha256"]
    assert ids == np.load(FIXTURES / "tinyshakespeare40k_smollm2_ids.npy").tolist()


# ---- decoding ----
@pytest.mark.parametrize("vocab", ["smollm2", "spm"])
def test_decode_round_trips(vocab, oracle, request):
    tok = tokenizer_for(vocab, oracle, request)
    checked = 0
    for text in oracle["corpus"]:
        if vocab == "spm" and ("▁" in text or any(tok.tokens[i] in text for i in tok.special_ids)):
            continue  # "▁" after special tokens, and a typed "▁" reads as a space: llama.cpp does the same
        assert tok.decode(tok.encode(text, add_bos=False)) == text
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("vocab", ["smollm2", "spm"])
def test_stream_decoder_never_splits_a_character(vocab, oracle, request):
    tok = tokenizer_for(vocab, oracle, request)
    for text in oracle["corpus"]:
        ids = tok.encode(text, add_bos=False)
        stream = tok.stream_decoder(special=True)
        chunks = [stream.push(t) for t in ids] + [stream.flush()]
        # all the bytes, with no leading space dropped: the stream prints generated tokens as they come
        assert "".join(chunks) == b"".join(tok.token_bytes(t) for t in ids).decode("utf-8", errors="replace")
        assert "\ufffd" not in "".join(chunks) or "\ufffd" in text


def test_stream_decoder_worked_example(oracle, request):
    """lessons/l02d_stream_decode.py's docstring: 👍🏽 in six tokens, two characters out."""
    tok = tokenizer_for("smollm2", oracle, request)
    ids = oracle["vocabs"]["smollm2"]["ids"][oracle["corpus"].index("👍🏽")]    # llama.cpp's ids
    assert ids == [10813, 235, 231, 10813, 233, 138]
    stream = tok.stream_decoder()
    assert [stream.push(t) for t in ids] == ["", "", "👍", "", "", "🏽"]
    assert stream.flush() == ""


def test_stream_decoder_flushes_a_dangling_byte_as_replacement(oracle, request):
    tok = tokenizer_for("spm", oracle, request)
    stream = tok.stream_decoder()
    assert stream.push(tok.token_to_id["<0xE4>"]) == ""
    assert stream.flush() == "\ufffd"


def test_control_tokens_render_only_when_special(oracle, request):
    tok = tokenizer_for("smollm2", oracle, request)
    ids = tok.encode("<|im_start|>hi<|im_end|>")
    assert tok.decode(ids) == "<|im_start|>hi<|im_end|>"
    assert tok.decode(ids, special=False) == "hi"
    with pytest.raises(ValueError, match="out of range"):
        tok.token_bytes(tok.n_vocab)


def test_generated_text_matches_llama_cpp(default_model, reference_dir):
    """The reference's greedy continuations: llama.cpp's ids and the text it printed for them
    (control tokens such as <|im_end|> print as nothing), and the prompts' ids."""
    ref = json.loads((reference_dir / "smollm2_generation.json").read_text(encoding="utf-8"))
    tok = Tokenizer.from_metadata(default_model.metadata)
    prompts = [p for p in ref if not p.startswith("_")]
    assert prompts
    for prompt in prompts:
        assert tok.encode(prompt) == ref[prompt]["prompt_ids"]
        for weights in ("q4_1", "f32"):
            ids, text = ref[prompt][f"{weights}_greedy_ids"], ref[prompt][f"{weights}_greedy_text"]
            assert tok.decode(ids, special=False) == text
            stream = tok.stream_decoder()
            assert "".join(stream.push(t) for t in ids) + stream.flush() == text
    assert ref["_perplexity"]["q4_1"]["n_tokens"] == len(tok.encode(
        (reference_dir / "tinyshakespeare-40k.txt").read_text(encoding="utf-8"), parse_special=False))


def test_lesson_docstring_examples_are_llama_cpps(oracle, request):
    """The ids quoted in lessons/l02_tokenizer.py's docstring are the ones llama.cpp gives."""
    corpus, smollm2 = oracle["corpus"], oracle["vocabs"]["smollm2"]
    assert smollm2["ids_special"][corpus.index("<|im_start|>user\nHi")] == [1, 4093, 198, 26843]
    assert smollm2["ids"][corpus.index("Hi!")] == [26843, 17]
    assert smollm2["ids"][corpus.index("👍🏽")] == [10813, 235, 231, 10813, 233, 138]
    assert smollm2["ids"][corpus.index("<|im_start|>")] == [44, 108, 306, 79, 3738, 108, 46]
    assert tokenizer_for("smollm2", oracle, request).decode([26843, 17]) == "Hi!"


@pytest.mark.parametrize("vocab", ["smollm2", "spm"])
def test_decode_matches_llama_cpp_detokenize(vocab, oracle, request):
    """llama_detokenize(remove_special=False) on llama.cpp's own ids, with and without control tokens."""
    tok, want = tokenizer_for(vocab, oracle, request), oracle["vocabs"][vocab]
    for key, ids_key, special in (("detok", "ids_special", True), ("detok_plain", "ids_special", False),
                                  ("detok_bos", "ids_add_bos", True)):
        for ids, text_hex in zip(want[ids_key], want[key]):
            assert tok.decode(ids, special=special) == bytes.fromhex(text_hex).decode("utf-8", errors="replace")
