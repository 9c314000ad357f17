#!/usr/bin/env python3
"""Write tests/fixtures/smollm2_perplexity_chunks.json: llama.cpp's perplexity on the first chunks of
tinyshakespeare-40k, so tests/test_cpp_model_default.py can check ours in seconds, not minutes.

Needs llama-cpp-python (llama.cpp itself; an oracle, never a test dependency) and ../shared/.
Method (llama-perplexity's, as in lessons/l11_perplexity.py): llama.cpp's tokens of the whole text,
chunks of N_CTX tokens, each from an empty cache, score the second half of each (predicting the next token).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TEXT = REPO.parent / "shared" / "data" / "tinyshakespeare-40k.txt"
OUT = REPO / "tests" / "fixtures" / "smollm2_perplexity_chunks.json"
N_CTX, N_CHUNKS = 128, 3


def main() -> None:
    import sys

    from llama_cpp import Llama

    sys.path.insert(0, str(REPO))
    from lessons.default_model import default_model_path

    model = default_model_path()
    llm = Llama(model_path=str(model), n_ctx=N_CTX, n_batch=N_CTX, n_ubatch=N_CTX, logits_all=True, n_threads=2, verbose=False)
    ids = llm.tokenize(TEXT.read_text().encode(), add_bos=False, special=False)
    first = N_CTX // 2
    nll_per_chunk = []
    for c in range(N_CHUNKS):
        chunk = ids[c * N_CTX:(c + 1) * N_CTX]
        llm.reset()
        llm.eval(chunk)
        logits = np.asarray(llm.scores[first:N_CTX - 1], dtype=np.float64)  # [255, n_vocab]
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -logp[np.arange(len(logp)), chunk[first + 1:]]
        nll_per_chunk.append(float(nll.mean()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "what": "llama.cpp (llama-cpp-python) perplexity of SmolLM2-135M-Instruct Q4_1 on the first chunks of "
                "tinyshakespeare-40k.txt, llama-perplexity's method (score the second half of each chunk)",
        "made_by": "tools/make_model_fixtures.py",
        "n_ctx": N_CTX, "n_chunks": N_CHUNKS, "n_tokens_total": len(ids),
        "token_ids": ids[:N_CHUNKS * N_CTX],  # the scored chunks, so the test needs no tokenizer
        "mean_nll_per_chunk": nll_per_chunk,
        "perplexity": float(np.exp(np.mean(nll_per_chunk))),
    }, separators=(",", ":")) + "\n")
    print(f"wrote {OUT}: perplexity {np.exp(np.mean(nll_per_chunk)):.4f} over {N_CHUNKS} chunks")


if __name__ == "__main__":
    main()
