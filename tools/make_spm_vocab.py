"""Build the small SentencePiece test vocabulary tests/fixtures/tokenizer_spm.gguf.

No SentencePiece GGUF exists on the machines we test on, so we make one: train a small BPE model
with byte fallback (like Llama 2's) with the `sentencepiece` package on the Shakespeare excerpt plus
the tokenizer test corpus, and write it as a vocab-only GGUF: `general.architecture = llama`, the
llama hyper-parameter keys llama.cpp reads even with vocab_only, and the `tokenizer.ggml.*` keys.
No tensors. llama.cpp then gives the reference ids (tools/make_tokenizer_fixtures.py).

Run with a Python that has `sentencepiece` and `gguf` (tool-only, not project dependencies):
    python3 tools/make_spm_vocab.py
"""

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "tests" / "fixtures" / "tokenizer_spm.gguf"

CONTROL_SYMBOLS = ["<|im_start|>", "<|im_end|>"]    # token type 3: matched only with parse_special
USER_DEFINED_SYMBOLS = ["<tool>", "</tool>"]        # token type 4: always matched whole
GGUF_TYPE = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}


def load_corpus():
    spec = importlib.util.spec_from_file_location("fixtures", ROOT / "tools" / "make_tokenizer_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.corpus()


def train(workdir: Path):
    import sentencepiece as spm

    text = (SHARED / "data" / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    lines += [s.replace("\n", " ") for s in load_corpus() if s.strip()] * 3
    train_file = workdir / "train.txt"
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = workdir / "spm"
    spm.SentencePieceTrainer.train(
        input=str(train_file), model_prefix=str(prefix), model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, normalization_rule_name="identity", character_coverage=0.995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        control_symbols=CONTROL_SYMBOLS, user_defined_symbols=USER_DEFINED_SYMBOLS,
        num_threads=1, minloglevel=2)
    return spm.SentencePieceProcessor(model_file=str(prefix) + ".model")


def token_type(sp, i: int) -> int:
    if sp.is_unknown(i):
        return GGUF_TYPE["unknown"]
    if sp.is_control(i):
        return GGUF_TYPE["control"]
    if sp.is_byte(i):
        return GGUF_TYPE["byte"]
    if sp.is_unused(i):
        return GGUF_TYPE["unused"]
    if sp.id_to_piece(i) in USER_DEFINED_SYMBOLS:
        return GGUF_TYPE["user_defined"]
    return GGUF_TYPE["normal"]


def write(sp, path: Path):
    import gguf

    n = sp.get_piece_size()
    tmp = path.with_suffix(".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("llama-lessons SentencePiece test vocabulary")
    # hyper-parameters llama.cpp reads for the llama architecture even when loading vocab only
    w.add_context_length(256)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(16)
    w.add_vocab_size(n)
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i) for i in range(n)])
    w.add_token_scores([float(np.float32(sp.get_score(i))) for i in range(n)])
    w.add_token_types([token_type(sp, i) for i in range(n)])
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, path)


def main():
    with tempfile.TemporaryDirectory() as d:
        sp = train(Path(d))
        write(sp, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {sp.get_piece_size()} tokens)")


if __name__ == "__main__":
    sys.exit(main())
