"""Lessons 19 and 19b: the Q/K rows, hyperparameters, tokenizers -- each checked against an oracle
(RoPE itself, Meta's published model sizes, the sentencepiece library's own reading of a
tokenizer.model it wrote, llama.cpp's names in the default model)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lessons.l05_rope import apply_rope, rope_angles
from lessons.l16_safetensors import CheckpointError
from lessons.l19_convert import (gguf_to_hf_rows, hf_config_metadata, hf_to_gguf_name, hf_to_gguf_rows,
                                 meta_ffn_width, meta_to_gguf_name)
from lessons.l19b_tokenizer_import import LLAMA3_SPLIT, pre_tokenizer_name, read_sentencepiece

ROOT = Path(__file__).resolve().parents[1]
SPM_MODEL = ROOT / "tests" / "fixtures" / "torch" / "meta" / "tokenizer.model"  # written by sentencepiece


# ---- the Q/K permutation ----
def test_worked_example_head_dim_4():
    hf = np.array([[0], [1], [2], [3]], dtype=np.float32)  # rows p0.x p1.x p0.y p1.y
    np.testing.assert_array_equal(hf_to_gguf_rows(hf, 1)[:, 0], [0, 2, 1, 3])
    np.testing.assert_array_equal(gguf_to_hf_rows(hf_to_gguf_rows(hf, 1), 1), hf)


@pytest.mark.parametrize("n_head,head_dim", [(1, 4), (3, 8), (2, 64)])
def test_hf_rotate_half_on_hf_rows_is_neighbour_pairs_on_gguf_rows(n_head, head_dim):
    """The oracle is RoPE itself: rotate_half (NEOX) on HF's rows gives the same q, reordered per head,
    as the adjacent-pair rotation GGUF's llama uses on the converted rows."""
    rng = np.random.default_rng(head_dim)
    w_hf = rng.standard_normal((n_head * head_dim, 16)).astype(np.float32)   # [rows, n_embd]
    x = rng.standard_normal((5, 16)).astype(np.float32)                      # [5 tokens, n_embd]
    cos, sin = rope_angles(np.arange(5), head_dim, 10000.0)
    q_hf = apply_rope((x @ w_hf.T).reshape(5, n_head, head_dim), cos, sin, neox=True)
    q_gguf = apply_rope((x @ hf_to_gguf_rows(w_hf, n_head).T).reshape(5, n_head, head_dim), cos, sin, neox=False)
    # channel c of an HF head holds the numbers of GGUF channel hf_to_gguf_rows(arange)[c]
    order = hf_to_gguf_rows(np.arange(head_dim)[:, None], 1)[:, 0]
    np.testing.assert_allclose(q_gguf, q_hf[..., order], rtol=1e-5, atol=1e-5)


# ---- names and hyperparameters ----
def test_names_reach_the_gguf_names_llama_cpp_wrote(default_model):
    hf = ["model.embed_tokens.weight", "model.norm.weight"] + [
        f"model.layers.{i}.{k}.weight" for i in range(30) for k in (
            "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    assert {hf_to_gguf_name(n) for n in hf} == set(default_model.tensors)   # SmolLM2: tied, no lm_head
    meta = [n.replace("model.layers.", "layers.") for n in hf]
    assert meta_to_gguf_name("layers.7.feed_forward.w2.weight") == "blk.7.ffn_down.weight"
    assert hf_to_gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq") is None
    with pytest.raises(ValueError):
        hf_to_gguf_name("model.layers.0.self_attn.q_proj.bias")
    assert len(meta) == len(hf)


@pytest.mark.parametrize("dim,multiple_of,mult,n_ff", [
    (4096, 256, None, 11008),     # Llama 2 7B
    (5120, 256, None, 13824),     # Llama 2 13B
    (8192, 4096, 1.3, 28672),     # Llama 2 70B
    (4096, 1024, 1.3, 14336),     # Llama 3 8B
])
def test_meta_ffn_width_matches_the_published_models(dim, multiple_of, mult, n_ff):
    assert meta_ffn_width(dim, multiple_of, mult) == n_ff


def test_both_rope_forms_of_config_json_give_the_same_keys(default_model):
    old = {"architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
           "num_attention_heads": 9, "num_key_value_heads": 3, "num_hidden_layers": 30, "vocab_size": 49152,
           "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0}
    new = {k: v for k, v in old.items() if k != "rope_theta"} | {
        "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}}
    md = hf_config_metadata(old)
    assert md == hf_config_metadata(new)
    for key, value in md.items():  # SmolLM2's own config.json -> the values llama.cpp wrote
        if key != "general.file_type":
            assert np.float32(default_model.metadata[key]) == np.float32(value), key
    assert list(md) == [k for k in default_model.metadata if k in md]   # and in llama.cpp's order


# ---- tokenizers ----
def test_pre_tokenizer_trees_get_llama_cpps_names():
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_tokenizer_name(byte_level) == "gpt-2"
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level]}) == "smollm"
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated"},
        byte_level | {"use_regex": False}]}) == "llama-bpe"
    with pytest.raises(CheckpointError, match="Metaspace"):
        pre_tokenizer_name({"type": "Metaspace"})


def test_protobuf_worked_example():
    piece = bytes.fromhex("0a06e29681746865") + b"\x15" + struct.pack("<f", -3.5) + b"\x18\x01"
    assert len(piece) == 15
    pieces, scores, types, specs = read_sentencepiece(b"\x0a\x0f" + piece)
    assert (pieces, scores, types) == (["▁the"], [-3.5], [1])
    assert specs["add_dummy_prefix"] is True and specs["bos_id"] == 1  # SentencePiece's defaults


def test_hand_parser_reads_what_the_sentencepiece_library_reads():
    with np.load(ROOT / "tests" / "fixtures" / "torch" / "logits.npz") as f:  # sentencepiece's own answers
        want_pieces, want_scores, want_types = list(f["spm_pieces"]), f["spm_scores"], list(f["spm_types"])
    pieces, scores, types, specs = read_sentencepiece(SPM_MODEL.read_bytes())
    assert pieces == want_pieces
    np.testing.assert_array_equal(np.float32(scores), want_scores)
    assert types == want_types and {2, 3, 6} <= set(types)   # unknown, control, byte pieces all present
    assert (specs["unk_id"], specs["bos_id"], specs["eos_id"], specs["pad_id"]) == (0, 1, 2, -1)
    assert specs["remove_extra_whitespaces"] is False           # as make_torch_fixtures.py trained it


@pytest.mark.parametrize("junk", [b"", b"{\"model\": 1}", b"\x0a\xff\xff\xff\xff\x0f", b"\x0b", b"\x0a\x02\x0a",
                                  bytes(range(256))])
def test_not_a_protobuf_is_a_checkpoint_error(junk):
    with pytest.raises(CheckpointError, match="tokenizer.model"):
        read_sentencepiece(junk)


# ---- fuzzing: random and mutated tokenizer.model files -> a CheckpointError or a clean result ----
SEED = SPM_MODEL.read_bytes()


def parse_or_refuse(data: bytes) -> None:
    try:
        pieces, scores, types, _ = read_sentencepiece(data)
    except CheckpointError as e:
        assert "\n" not in str(e)
        return
    assert len(pieces) == len(scores) == len(types) > 0 and all(1 <= t <= 6 for t in types)


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    parse_or_refuse(data)


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, len(SEED) - 1), st.integers(1, 16), st.binary(min_size=1, max_size=16), st.booleans())
def test_fuzz_mutated_seed(at, cut, patch, truncate):
    data = SEED[:at] if truncate else SEED[:at] + patch + SEED[at + cut:]
    parse_or_refuse(data)


def test_llama3_rope_divisors_match_transformers():
    import json
    from lessons.l19_convert import llama3_rope_factors
    with np.load(ROOT / "tests" / "fixtures" / "torch" / "llama3_rope.npz") as f:  # transformers' own numbers
        cfg, head_dim, want = json.loads(str(f["config"])), int(f["head_dim"]), f["divisors"]
    got = llama3_rope_factors(cfg, cfg["rope_theta"], head_dim)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert 1.0 < got[16] < 32.0                      # the blended band is in there
    assert llama3_rope_factors({"rope_type": "default"}, 1e4, 64) is None


def test_rope_scaling_kinds():
    base = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
            "vocab_size": 10, "rope_theta": 1e4}
    linear = hf_config_metadata(base | {"rope_scaling": {"type": "linear", "factor": 4.0}})
    assert (linear["llama.rope.scaling.type"], linear["llama.rope.scaling.factor"]) == ("linear", 4.0)
    assert list(linear).index("llama.rope.scaling.type") < list(linear).index("llama.rope.freq_base")
    with pytest.raises(ValueError, match="yarn"):
        hf_config_metadata(base | {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
