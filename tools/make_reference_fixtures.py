#!/usr/bin/env python3
"""Write tests/fixtures/reference/: llama.cpp's reference values, compacted to what the tests compare.

The source is /work/shared/reference/ (README there: llama.cpp through llama-cpp-python 0.3.36, CPU, on the
default model SmolLM2-135M-Instruct Q4_1 and on the same weights dequantized to F32) and
/work/shared/data/tinyshakespeare-40k.txt. Those folders live beside the repository on the machines the
project is developed on and nowhere else, so the tests read only what this script commits:

| file | from | what |
| --- | --- | --- |
| `tokenizer_smollm2.json` | copied | 24 strings and llama.cpp's ids for them (special=False and True) |
| `smollm2_generation.json` | copied | the two prompts' ids, 64 greedy tokens and text (Q4_1 and F32), perplexity |
| `tinyshakespeare-40k.txt` | copied | the public-domain text the perplexity and the tokenizer tests use |
| `smollm2_logits.npz` | compacted | see below (the source holds 13 full rows x 2 runs x 49152 float32: 4.4 MB) |

`smollm2_logits.npz`, for each prompt p in {0, 1} with n prompt tokens (5 and 8), K = 4096:
- `p{p}_ids` uint16 [n, K]: at each position, the ids of the F32 run's K largest logits, largest first;
- `p{p}_f32_logits`, `p{p}_q4_1_logits` float32 [n, K]: both runs' logits at those ids, bit for bit;
- `p{p}_f32_logsumexp`, `p{p}_q4_1_logsumexp` float64 [n]: log sum exp over all 49152 logits, so the
  stored logits give exact log-probabilities (logit - logsumexp);
- `p{p}_f32_last_logits` float32 [49152]: the F32 run's whole row at the last position, where the tests
  take the KL over the full distribution;
- `p{p}_kl_f32_q4_1` float64 [n]: KL(F32 run || Q4_1 run) at every position over the full distribution,
  llama.cpp's own gap between its two runs (the bar several tests hold the C++ core to).
The F32 run's top 4096 carry 97.7-99.95% of its probability (the least at position 0); tests/conftest.py's
`LlamaCppLogits.kl` takes the rest as one bucket (a lower bound of the full KL: 93-100% of the full value,
measured on llama.cpp's Q4_1 run and on the C++ core), and the full row at the last position. The script
checks what the tests rely on: the Q4_1 run's two largest logits are among the stored ids at every position.

Run (numpy only; nothing else is needed), from the repository root:

    python tools/make_reference_fixtures.py            # reads ../shared, or: --shared /work/shared

It was run so on 2026-12-06 with /work/shared as described above; the output is deterministic.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "reference"
K = 4096
COPIED = {"tokenizer_smollm2.json": "reference", "smollm2_generation.json": "reference",
          "tinyshakespeare-40k.txt": "data"}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)                                   # [n, n_vocab]
    return z - np.logaddexp.reduce(z, axis=-1, keepdims=True)  # [n, n_vocab]


def compact_logits(src: Path) -> dict[str, np.ndarray]:
    full = np.load(src)
    out: dict[str, np.ndarray] = {}
    for p in (0, 1):
        f32, q4 = full[f"f32_p{p}_logits"], full[f"q4_1_p{p}_logits"]          # [n, n_vocab] each
        assert f32.dtype == q4.dtype == np.float32 and f32.shape == q4.shape and f32.shape[1] < 2**16
        ids = np.argsort(-f32, axis=-1, kind="stable")[:, :K]                   # [n, K]
        for row, q4_row in zip(ids, q4):
            assert set(np.argsort(-q4_row, kind="stable")[:2]) <= set(row.tolist()), "Q4_1 top-2 outside top-K"
        lf, lq = log_softmax(f32), log_softmax(q4)                               # [n, n_vocab] each
        out[f"p{p}_ids"] = ids.astype(np.uint16)
        out[f"p{p}_f32_logits"] = np.take_along_axis(f32, ids, -1)             # [n, K]
        out[f"p{p}_q4_1_logits"] = np.take_along_axis(q4, ids, -1)             # [n, K]
        out[f"p{p}_f32_logsumexp"] = np.logaddexp.reduce(f32.astype(np.float64), axis=-1)  # [n]
        out[f"p{p}_q4_1_logsumexp"] = np.logaddexp.reduce(q4.astype(np.float64), axis=-1)  # [n]
        out[f"p{p}_f32_last_logits"] = f32[-1].copy()                           # [n_vocab]
        out[f"p{p}_kl_f32_q4_1"] = (np.exp(lf) * (lf - lq)).sum(-1)             # [n]
        tail = 1 - np.exp(out[f"p{p}_f32_logits"] - out[f"p{p}_f32_logsumexp"][:, None]).sum(-1)
        print(f"prompt {p}: {len(ids)} positions, F32 mass outside the top {K}: {np.round(tail, 4)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared folder (default ../shared)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, sub in COPIED.items():
        shutil.copyfile(args.shared / sub / name, OUT / name)
    np.savez_compressed(OUT / "smollm2_logits.npz", **compact_logits(args.shared / "reference" / "smollm2_logits.npz"))
    json.loads((OUT / "smollm2_generation.json").read_text())  # still valid json
    for f in sorted(OUT.iterdir()):
        print(f"{f.relative_to(REPO)}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
