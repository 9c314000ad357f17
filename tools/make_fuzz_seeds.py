"""Write tests/fixtures/fuzz/: the seed corpus that tests/test_fuzz_readers.py mutates.

Small valid files for every reader (safetensors, .pth, llama2.c v0/v1/v2, tokenizer.bin, GGUF,
SentencePiece tokenizer.model) and a few nearly-valid ones. The .pth seeds are copies of files
torch.save wrote (tests/fixtures/pth, from tools/make_pth_fixtures.py); nothing here needs torch.

    .venv/bin/python tools/make_fuzz_seeds.py
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import ckpt_hostile as H  # noqa: E402
import ckpt_llama2c as W  # noqa: E402
from ckpt_writers import _varint as pb_varint  # noqa: E402  (the protobuf varint the tests write with)
from lessons.l01_gguf import GGMLType, write_gguf  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "fuzz")




def pb_field(number, wire, payload):
    if wire == 2:
        return pb_varint(number << 3 | 2) + pb_varint(len(payload)) + payload
    return pb_varint(number << 3 | wire) + payload


def sentencepiece_model(pieces):
    """ModelProto: repeated field 1 SentencePiece {1: piece, 2: score (float), 3: type (varint)}."""
    out = b""
    for text, score, typ in pieces:
        sp = pb_field(1, 2, text.encode()) + pb_field(2, 5, struct.pack("<f", score)) + pb_field(3, 0, pb_varint(typ))
        out += pb_field(1, 2, sp)
    return out


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for sub in ("safetensors", "pth", "llama2c", "tokenizer_bin", "gguf", "spm"):
        os.makedirs(os.path.join(OUT, sub))
    rng = np.random.default_rng(0)
    # safetensors: a library-written file and a hand-written BF16 one
    save_file({"w": rng.standard_normal((2, 3)).astype(np.float32), "b": np.arange(3, dtype=np.float16),
               "i": np.arange(2, dtype=np.int64)}, os.path.join(OUT, "safetensors", "lib.safetensors"),
              metadata={"format": "pt"})
    hdr = json.dumps({"x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
                      "__metadata__": {"k": "v"}}).encode()
    with open(os.path.join(OUT, "safetensors", "bf16.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hdr)) + hdr + np.array([0x3FC0, 0x3F80, 0xC000, 0], "<u2").tobytes())
    # .pth: torch-written copies, and a hand-assembled one with a strided tensor
    for name in ("f32.pth", "bf16.pth", "strided.pth", "train_ckpt.pth"):
        shutil.copy(os.path.join(ROOT, "tests", "fixtures", "pth", name), os.path.join(OUT, "pth", name))
    pkl = H.program(H.dict_(x=H.tensor("0", 0, (3, 2), (1, 3), numel=6), y=H.tensor("1", 1, (2,), (2,), numel=6)))
    H.write_pth(os.path.join(OUT, "pth", "hand.pth"), pkl, {"0": np.arange(6, dtype="<f4").tobytes(),
                                                            "1": np.arange(6, dtype="<f4").tobytes()})
    # llama2.c: tiny models in every version, and a tokenizer.bin
    sizes = dict(dim=8, hidden=16, n_layers=1, n_heads=2, n_kv=1, vocab=8, seq_len=4)
    w = W.random_weights(8, 16, 1, 2, 1, 8, shared=False, seed=1)
    for version in (0, 1, 2):
        W.write_llama2c(os.path.join(OUT, "llama2c", f"v{version}.bin"), w, **sizes, version=version)
    ws = W.random_weights(8, 16, 1, 2, 1, 8, shared=True, seed=2)
    W.write_llama2c(os.path.join(OUT, "llama2c", "v0_shared.bin"), ws, **sizes, version=0, theta=500000.0)
    W.write_tokenizer_bin(os.path.join(OUT, "tokenizer_bin", "tokenizer.bin"),
                          [b"<unk>", b"<s>", b"</s>", b" a", b"b", b"ab", "\u00e9".encode(), b""],
                          [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0])
    # GGUF: two small tensors and a few metadata kinds
    write_gguf(os.path.join(OUT, "gguf", "tiny.gguf"),
               {"general.architecture": "llama", "llama.block_count": 1, "x.list": [1, 2, 3],
                "x.strs": ["a", "bc"], "x.f": 1.5},
               [("a", GGMLType.F32, (2, 4), rng.standard_normal((2, 4)).astype(np.float32)),
                ("b", GGMLType.F16, (4,), np.arange(4, dtype=np.float16))])
    # tokenizer.model: a SentencePiece protobuf with four pieces (normal=1, unknown=2, control=3, byte=6)
    with open(os.path.join(OUT, "spm", "tokenizer.model"), "wb") as f:
        f.write(sentencepiece_model([("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("\u2581a", -1.0, 1), ("<0x41>", 0.0, 6)]))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote the seed corpus to {OUT}: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
