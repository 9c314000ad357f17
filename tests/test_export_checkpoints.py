"""export.py from training checkpoints: HF safetensors folders, Meta .pth folders, llama2.c files.

Oracles: (1) the GGUF model a checkpoint was written from (tests/ckpt_writers.py, numpy only):
converting back must give its tensors bit for bit (BF16: the rounded values), its vocabulary and token
ids, and its logits on both backends; (2) files PyTorch itself wrote and the logits PyTorch computed
(tests/fixtures/torch, from tools/make_torch_fixtures.py); (3) llama.cpp's own converter, through the
default model, which it made: the metadata keys in the order convert_hf_to_gguf writes them.
"""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pytest

import ckpt_writers as cw
import export
from conftest import build_tiny_llama
from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer
from lessons.l08_transformer import NumpyLlama
from lessons.l16_safetensors import bf16_to_f32

ROOT = Path(__file__).resolve().parents[1]
TORCH = ROOT / "tests" / "fixtures" / "torch"
STRINGS = ["Hello world", "the quick brown fox, 1234!", "  two  spaces\nand a line", "<|im_start|>user\nhi"]
TOKENIZER_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                  "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.bos_token_id",
                  "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                  "tokenizer.chat_template")


def backends():
    out = [("numpy", lambda g: NumpyLlama(g, n_ctx=64))]
    try:
        from cpp_core.model import CppLlama
        out.append(("cpp", lambda g: CppLlama(g, n_ctx=64, n_threads=1)))
    except ImportError:
        pass
    return out


def convert(src, out, preset="F32", *extra) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        rc = export.main([str(src), str(out), preset, *map(str, extra)])
    return rc, err.getvalue()


def kl(p_logits, q_logits):
    """KL(p || q) per row, in float64 (float32 sums alone have a ~1e-6 floor)."""
    lp = p_logits.astype(np.float64)
    lq = q_logits.astype(np.float64)
    lp = lp - np.logaddexp.reduce(lp, axis=-1, keepdims=True)
    lq = lq - np.logaddexp.reduce(lq, axis=-1, keepdims=True)
    return (np.exp(lp) * (lp - lq)).sum(-1)


def write(kind: str, gguf_path: Path, folder: Path) -> tuple[Path, list]:
    """One checkpoint of the given kind from a GGUF model -> (path to give export.py, extra args)."""
    if kind == "hf":
        return cw.write_hf(gguf_path, folder), []
    if kind == "hf-bf16-sharded":
        return cw.write_hf(gguf_path, folder, dtype="BF16", shards=2, rope_parameters=True, chat_template_file=True), []
    if kind == "meta":
        return cw.write_meta(gguf_path, folder), []
    if kind == "meta-2-shards":
        return cw.write_meta(gguf_path, folder, shards=2), []
    folder.mkdir()
    return cw.write_llama2c(gguf_path, folder / "model.bin", folder / "tok.bin"), ["--tokenizer", folder / "tok.bin"]


def expected(kind: str, x: np.ndarray) -> np.ndarray:
    return bf16_to_f32(cw.to_bf16(x)) if kind == "hf-bf16-sharded" and x.ndim == 2 else x


KINDS = ["hf", "hf-bf16-sharded", "meta", "meta-2-shards", "llama2c"]


# ---- round trips on tiny models: every format, both vocabularies ----
@pytest.mark.parametrize("vocab", ["bpe", "spm"])
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_gives_back_tensors_vocabulary_and_logits(tmp_path, kind, vocab):
    original = build_tiny_llama(tmp_path, vocab=vocab, tied=vocab == "bpe", n_head=4, n_head_kv=2,
                                rope_base=50000.0, qk_scale=3.0, name="orig.gguf",
                                metadata={"tokenizer.chat_template": "{{ messages }}"})
    src, extra = write(kind, original, tmp_path / kind)
    rc, err = convert(src, tmp_path / "back.gguf", "F32", *extra)
    assert rc == 0, err
    a, b = GGUFFile(original), GGUFFile(tmp_path / "back.gguf")
    assert set(a.tensors) == set(b.tensors)
    for name, t in a.tensors.items():
        want = expected(kind, t.data)
        assert b.tensors[name].ggml_type.name == "F32"
        assert np.array_equal(b.tensors[name].data.view(np.uint32), want.view(np.uint32)), name  # bit for bit
    for key in a.metadata:
        if key.startswith("llama.") or kind != "llama2c" and key in TOKENIZER_KEYS:
            assert b.metadata.get(key) == a.metadata[key], key
    if kind != "llama2c" or vocab == "spm":  # a llama2.c tokenizer.bin holds SentencePiece vocabularies only
        ta, tb = Tokenizer.from_metadata(a.metadata), Tokenizer.from_metadata(b.metadata)
        for s in STRINGS:
            assert tb.encode(s) == ta.encode(s), s
    tokens = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.int32)
    if kind != "hf-bf16-sharded":  # same weights, same metadata: the same logits, exactly
        for name, model in backends():
            np.testing.assert_array_equal(model(b).forward(tokens, 0), model(a).forward(tokens, 0), err_msg=name)


def test_hf_f32_keeps_convert_hf_to_gguf_order_and_quantized_presets_llama_cpps(tmp_path):
    original = build_tiny_llama(tmp_path, n_layer=12, name="orig.gguf")
    src = cw.write_hf(original, tmp_path / "hf")
    assert convert(src, tmp_path / "f32.gguf")[0] == 0
    names = list(GGUFFile(tmp_path / "f32.gguf").tensors)
    # llama.cpp's converter walks the checkpoint's names sorted as strings: layer 10 before layer 2
    assert names.index("blk.10.attn_k.weight") < names.index("blk.2.attn_k.weight")
    assert names[0] == "model.embed_tokens.weight".replace("model.embed_tokens", "token_embd")
    assert convert(src, tmp_path / "q8.gguf", "Q8_0")[0] == 0
    names = list(GGUFFile(tmp_path / "q8.gguf").tensors)
    assert names == export.llama_cpp_order(names)  # llama-quantize's order: layer by layer


@pytest.mark.parametrize("preset", ["Q4_K_M", "Q8_0", "Q3_K_S"])
def test_one_step_equals_two_on_a_tiny_model(tmp_path, preset):
    original = build_tiny_llama(tmp_path, n_embd=256, n_ff=512, n_vocab=300, name="orig.gguf")
    src = cw.write_hf(original, tmp_path / "hf", dtype="BF16")
    assert convert(src, tmp_path / "direct.gguf", preset)[0] == 0
    assert convert(src, tmp_path / "f32.gguf", "F32")[0] == 0
    assert convert(tmp_path / "f32.gguf", tmp_path / "two.gguf", preset)[0] == 0
    assert (tmp_path / "direct.gguf").read_bytes() == (tmp_path / "two.gguf").read_bytes()


# ---- files PyTorch wrote ----
@pytest.fixture(scope="module")
def torch_fixture():
    with np.load(TORCH / "logits.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("kind", ["hf", "meta"])
def test_files_pytorch_wrote_convert_and_match_its_logits(tmp_path, torch_fixture, kind):
    rc, err = convert(TORCH / kind, tmp_path / "m.gguf")
    assert rc == 0, err
    gguf = GGUFFile(tmp_path / "m.gguf")
    want = torch_fixture[f"{kind}_logits"]                                      # [24, 384] PyTorch's
    for name, model in backends():
        got = model(gguf).forward(torch_fixture["tokens"], 0)
        assert kl(want, got).max() <= 1e-6, name                                 # at every position
        assert kl(want, np.roll(got, 1, axis=0)).max() > 1e-2                   # and the bound means something
    tok = Tokenizer.from_metadata(gguf.metadata)
    ids = torch_fixture["bpe_ids" if kind == "hf" else "spm_ids"]
    for s, want_ids in zip(torch_fixture["strings"], ids):
        assert tok.encode(str(s), add_bos=False) == json.loads(str(want_ids)), str(s)
    if kind == "hf":  # transformers 5 writes the template to chat_template.jinja and rope_parameters
        assert gguf.metadata["tokenizer.chat_template"] == (TORCH / "hf" / "chat_template.jinja").read_text()
        assert gguf.metadata["llama.rope.freq_base"] == 50000.0
        assert gguf.metadata["tokenizer.ggml.pre"] == "smollm"


# ---- bad input: one line, exit 1, no output ----
def leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def damaged(tmp_path: Path, case: str) -> tuple[Path, list]:
    hf = shutil.copytree(TORCH / "hf", tmp_path / "hf")
    if case == "architecture":
        cfg = json.loads((hf / "config.json").read_text())
        cfg["architectures"] = ["Qwen2ForCausalLM"]
        (hf / "config.json").write_text(json.dumps(cfg))
    elif case == "config_not_json":
        (hf / "config.json").write_text("{not json")
    elif case == "absurd_size":
        cfg = json.loads((hf / "config.json").read_text())
        cfg["hidden_size"] = 1 << 40
        (hf / "config.json").write_text(json.dumps(cfg))
    elif case == "missing_tensor":
        from lessons.l16_safetensors import read_safetensors
        tensors = {k: np.array(v.data) for k, v in read_safetensors(hf / "model.safetensors").items()
                   if k != "model.layers.1.mlp.up_proj.weight"}
        cw.write_safetensors(hf / "model.safetensors", sorted(tensors.items()))
    elif case == "untied_without_lm_head":
        cfg = json.loads((hf / "config.json").read_text())
        from lessons.l16_safetensors import read_safetensors
        tensors = {k: np.array(v.data) for k, v in read_safetensors(hf / "model.safetensors").items()
                   if k != "lm_head.weight"}
        cw.write_safetensors(hf / "model.safetensors", sorted(tensors.items()))
        assert cfg["tie_word_embeddings"] is False
    elif case == "no_tokenizer":
        (hf / "tokenizer.json").unlink()
    elif case == "tokenizer_model_not_protobuf":
        meta = shutil.copytree(TORCH / "meta", tmp_path / "meta")
        (meta / "tokenizer.model").write_bytes(b'{"this": "is json, not a protobuf"}\n' * 4)
        return meta, []
    elif case == "empty_folder":
        empty = tmp_path / "empty"
        empty.mkdir()
        return empty, []
    elif case == "llama2c_without_tokenizer":
        (tmp_path / "l2c").mkdir()
        original = build_tiny_llama(tmp_path, name="orig.gguf")
        path = cw.write_llama2c(original, tmp_path / "l2c" / "model.bin", tmp_path / "tok.bin")
        return path, []
    return hf, []


@pytest.mark.parametrize("case", ["architecture", "config_not_json", "absurd_size", "missing_tensor",
                                  "untied_without_lm_head", "no_tokenizer",
                                  "tokenizer_model_not_protobuf", "empty_folder", "llama2c_without_tokenizer"])
def test_bad_checkpoints_are_one_error_line_and_no_output(tmp_path, case):
    src, extra = damaged(tmp_path, case)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, err = convert(src, out_dir / "o.gguf", "Q8_0", *extra)
    assert rc == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert list(out_dir.iterdir()) == []
    if case == "architecture":
        assert "Qwen2ForCausalLM" in err


def test_mistral_folders_convert_like_llama_and_a_missing_tokenizer_flag_file_is_a_usage_error(tmp_path):
    hf = shutil.copytree(TORCH / "hf", tmp_path / "hf")
    cfg = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps(cfg | {"architectures": ["MistralForCausalLM"], "sliding_window": None}))
    assert convert(hf, tmp_path / "mistral.gguf")[0] == 0
    assert convert(TORCH / "hf", tmp_path / "llama.gguf")[0] == 0
    assert (tmp_path / "mistral.gguf").read_bytes() == (tmp_path / "llama.gguf").read_bytes()  # both folders are named hf
    rc, err = convert(TORCH / "hf", tmp_path / "o.gguf", "F32", "--tokenizer", tmp_path / "nope.bin")
    assert rc == 2 and err.startswith("error: ") and "nope.bin" in err


def test_the_script_says_one_line_for_a_tokenizer_model_that_is_not_a_protobuf(tmp_path):
    src, _ = damaged(tmp_path, "tokenizer_model_not_protobuf")
    proc = subprocess.run([sys.executable, str(ROOT / "export.py"), str(src), str(tmp_path / "o.gguf"), "F32"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "tokenizer.model" in proc.stderr and not (tmp_path / "o.gguf").exists() and leftovers(tmp_path) == []


# ---- the default model, for real (slow: 540 MB of float32 a format) ----
@pytest.fixture(scope="module")
def default_f32(default_model_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("default") / "f32.gguf"
    export.export(str(default_model_path), str(path), "F32")
    return path


DEFAULT_TOKENS = np.array([1, 4093, 198, 26843], dtype=np.int32)  # "<|im_start|>user\nHi"


@pytest.fixture(scope="module")
def default_logits(default_f32):
    gguf = GGUFFile(default_f32)
    return {name: model(gguf).forward(DEFAULT_TOKENS, 0) for name, model in backends()}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hf-bf16-sharded", "meta-2-shards", "llama2c"])
def test_default_model_round_trip(default_f32, default_model, default_logits, tmp_path, kind):
    src, extra = write(kind, default_f32, tmp_path / kind)
    rc, err = convert(src, tmp_path / "back.gguf", "F32", *extra)
    assert rc == 0, err
    a, b = GGUFFile(default_f32), GGUFFile(tmp_path / "back.gguf")
    for name, t in a.tensors.items():
        assert np.array_equal(b.tensors[name].data.view(np.uint32), expected(kind, t.data).view(np.uint32)), name
    if kind == "hf-bf16-sharded":  # the key order of llama.cpp's converter, which made the default model
        keys = [k for k in default_model.metadata if k in b.metadata and not k.startswith("general.")]
        assert keys == [k for k in b.metadata if k in default_model.metadata and not k.startswith("general.")]
        ta, tb = Tokenizer.from_metadata(default_model.metadata), Tokenizer.from_metadata(b.metadata)
        for s in STRINGS + ["Café 👍🏽 1603"]:
            assert tb.encode(s) == ta.encode(s), s
        return
    for name, model in backends():
        np.testing.assert_array_equal(model(b).forward(DEFAULT_TOKENS, 0), default_logits[name], err_msg=name)


# ---- every llama2.c version (written by tests/ckpt_llama2c.py as llama2.c's export.py lays them out) ----
@pytest.mark.parametrize("version", [0, 1, 2])
def test_llama2c_versions_convert_to_their_weights(tmp_path, version):
    import ckpt_llama2c as l2c
    sizes = dict(dim=64, hidden=96, n_layers=2, n_heads=4, n_kv=2, vocab=40)
    w = l2c.random_weights(**sizes, shared=False)
    gs = l2c.write_llama2c(tmp_path / "model.bin", w, **sizes, seq_len=32, version=version, theta=10000.0)
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{b:02X}>".encode() for b in range(10)] + \
             [bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyz!"]
    l2c.write_tokenizer_bin(tmp_path / "tokenizer.bin", pieces, [0.0] * 13 + [-float(i) for i in range(27)])
    rc, err = convert(tmp_path / "model.bin", tmp_path / "m.gguf")
    assert rc == 0, err
    gguf = GGUFFile(tmp_path / "m.gguf")
    names = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
             "output.weight": "output.weight", "layers.1.attention.wq.weight": "blk.1.attn_q.weight",
             "layers.0.feed_forward.w2.weight": "blk.0.ffn_down.weight", "layers.1.ffn_norm.weight": "blk.1.ffn_norm.weight"}
    for meta, new in names.items():
        want = w[meta]
        if version == 2 and want.ndim == 2:  # int8 groups: the file holds q * scale, not the floats
            q, s = l2c.quantize_q80(want, gs)
            want = (q.reshape(-1, gs) * s[:, None]).astype(np.float32).reshape(want.shape)
        np.testing.assert_array_equal(gguf.tensors[new].data, want, err_msg=new)
    md = gguf.metadata
    assert (md["llama.context_length"], md["llama.feed_forward_length"], md["llama.attention.head_count_kv"]) == (32, 96, 2)
    tok = Tokenizer.from_metadata(md)
    assert tok.tokens[:3] == ["<unk>", "<s>", "</s>"] and tok.types[3] == 6 and tok.bos_id == 1


def test_chat_template_sources_and_metas_tokenizer_in_the_parent_folder(tmp_path):
    from lessons.l19e_tokenizer_files import chat_template
    assert chat_template(str(tmp_path), {"chat_template": "{{ x }}"}) == "{{ x }}"
    named = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    assert chat_template(str(tmp_path), {"chat_template": named}) == "D"        # GGUF's key takes "default"
    (tmp_path / "chat_template.jinja").write_text("J")
    assert chat_template(str(tmp_path), {"chat_template": "{{ x }}"}) == "J"    # the .jinja file wins
    # Meta's downloads keep tokenizer.model beside the model folders, not inside them
    meta = shutil.copytree(TORCH / "meta", tmp_path / "llama" / "tiny-7b")
    (meta / "tokenizer.model").rename(tmp_path / "llama" / "tokenizer.model")
    rc, err = convert(meta, tmp_path / "m.gguf")
    assert rc == 0, err
    assert GGUFFile(tmp_path / "m.gguf").metadata["tokenizer.ggml.model"] == "llama"


def test_a_llama3_rope_config_gets_rope_freqs_first(tmp_path):
    hf = shutil.copytree(TORCH / "hf", tmp_path / "hf")
    cfg = json.loads((hf / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    (hf / "config.json").write_text(json.dumps(cfg))
    assert convert(hf, tmp_path / "m.gguf")[0] == 0
    gguf = GGUFFile(tmp_path / "m.gguf")
    assert list(gguf.tensors)[0] == "rope_freqs.weight" and gguf.tensors["rope_freqs.weight"].ne == (8,)
    cfg["rope_parameters"]["rope_type"] = "longrope"
    (hf / "config.json").write_text(json.dumps(cfg))
    rc, err = convert(hf, tmp_path / "o.gguf")
    assert rc == 1 and "longrope" in err and not (tmp_path / "o.gguf").exists()


@pytest.mark.parametrize("doc", [[], {"model": []}, {"model": {"type": "BPE", "vocab": []}},
                                 {"model": {"type": "BPE", "vocab": {"a": "0"}}},
                                 {"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}},
                                 {"model": {"type": "BPE", "vocab": {"a": 0}}, "added_tokens": [{"id": 1}]},
                                 {"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": [1]},
                                 {"model": {"type": "WordPiece", "vocab": {"a": 0}}}])
def test_a_tokenizer_json_of_the_wrong_shape_is_one_error_line(tmp_path, doc):
    hf = shutil.copytree(TORCH / "hf", tmp_path / "hf")
    (hf / "tokenizer.json").write_text(json.dumps(doc))
    (hf / "tokenizer_config.json").write_text(json.dumps({"bos_token": ["not", "a", "string"]}))
    rc, err = convert(hf, tmp_path / "o.gguf")
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1 and "internal" not in err, err
    assert not (tmp_path / "o.gguf").exists()
