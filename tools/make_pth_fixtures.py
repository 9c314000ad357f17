"""Write tests/fixtures/pth/: small files torch.save really wrote, and the values they hold.

Lesson 17 reads .pth files without torch; its tests need files that PyTorch itself wrote as the
oracle. Run in a separate venv that has torch (never the project's):

    python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip install torch==2.13.0 numpy
    /work/venv-torch/bin/python tools/make_pth_fixtures.py

Writes *.pth, expected.npz (every tensor as float32/int64, keyed "file:path/in/object") and
expected.json (the non-tensor values). All small: a few KB.
"""
import collections
import json
import os
import sys

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "pth")


def files():
    g = torch.Generator().manual_seed(17)
    rand = lambda *s: torch.randn(*s, generator=g)             # noqa: E731
    base = rand(4, 6)
    lin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2, bias=False))
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(rand(5, 4)).sum().backward()
    opt.step()
    return {
        "f32.pth": {"a": rand(3, 4), "b": rand(5), "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)},
        "f16.pth": {"a": rand(3, 4).half(), "b": rand(7).half()},
        "bf16.pth": {"a": rand(3, 4).bfloat16(), "b": rand(2, 2, 2).bfloat16()},
        "ints.pth": {"i64": torch.arange(-3, 5), "i32": torch.arange(6, dtype=torch.int32).reshape(2, 3),
                     "u8": torch.arange(4, dtype=torch.uint8), "bool": torch.tensor([True, False])},
        # views: the whole storage is saved with an offset and strides
        "strided.pth": {"t": base.t(), "cols": base[1:, ::2], "row": base[2], "base": base},
        # two names for one storage (tied embeddings), and an nn.Parameter
        "shared.pth": collections.OrderedDict(emb=base, out=base, p=torch.nn.Parameter(rand(2, 3))),
        # llama2.c's train.py: {"model": state_dict, "optimizer": ..., "model_args": ..., ...}
        "train_ckpt.pth": {"model": lin.state_dict(), "optimizer": opt.state_dict(),
                           "model_args": {"dim": 4, "n_layers": 2, "n_heads": 2, "n_kv_heads": None,
                                          "vocab_size": 32, "multiple_of": 32, "norm_eps": 1e-5,
                                          "max_seq_len": 16, "dropout": 0.0},
                           "iter_num": 10, "best_val_loss": torch.tensor(1.25),
                           "config": {"out_dir": "out", "batch_size": 8, "learning_rate": 5e-4,
                                      "decay_lr": True, "dtype": "float32"}},
    }


def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        out[prefix] = (t.float() if t.is_floating_point() else t.long()).numpy().copy()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}/{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}/{i}", out)


def main():
    os.makedirs(OUT, exist_ok=True)
    arrays, plain = {}, {}
    for name, obj in files().items():
        torch.save(obj, os.path.join(OUT, name))
        flatten(obj, name, arrays)
        back = torch.load(os.path.join(OUT, name), weights_only=True)  # torch reads it back too
        flatten(back, name + "#reloaded", {})
    torch.save({"a": torch.ones(2)}, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    ckpt = files()["train_ckpt.pth"]
    plain["train_ckpt.pth"] = {"model_args": ckpt["model_args"], "iter_num": ckpt["iter_num"],
                               "config": ckpt["config"],
                               "param_groups": [{k: v for k, v in g.items()} for g in
                                                ckpt["optimizer"]["param_groups"]]}
    np.savez(os.path.join(OUT, "expected.npz"), **arrays)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(plain, f, indent=1, sort_keys=True)
    print(f"wrote {len(arrays)} tensors in {len(files()) + 1} files to {OUT} (torch {torch.__version__})",
          file=sys.stderr)


if __name__ == "__main__":
    main()
