"""Write the forward-pass lessons' test fixtures with llama.cpp as the oracle.

    python3 tools/make_fixtures_forward.py      # needs llama-cpp-python (the system python here)

tests/fixtures/tinyshakespeare40k_smollm2_ids.npy: llama.cpp's token ids (uint16) for
shared/data/tinyshakespeare-40k.txt with the default model's vocabulary, tokenized the way
llama-perplexity does (model's BOS rule, special tokens not parsed). test_numpy_model.py measures
perplexity on them and compares with shared/reference/smollm2_generation.json.

tests/fixtures/sampling_llama_cpp.json: llama.cpp's sampler chain (penalties -> top_k -> top_p ->
min_p -> temperature, as in its default order) applied to seeded random logits: the surviving
token ids and their logits after temperature, for several parameter sets and histories.
test_l09_sampling.py compares lessons/l09_sampling.py's candidates and probabilities with them.
"""

import ctypes
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lessons.default_model import default_model_path  # noqa: E402


FIXTURES = REPO / "tests" / "fixtures"

# (seed, history, temp, top_k, top_p, min_p, repeat_penalty, repeat_last_n); logits: see sampling_logits
SAMPLING_CASES = [
    (0, [], 0.8, 40, 0.95, 0.05, 1.0, 64),  # llama.cpp's defaults
    (1, [3, 7, 7, 11], 0.8, 40, 0.95, 0.05, 1.3, 64),
    (2, list(range(0, 200, 3)), 1.0, 0, 0.9, 0.0, 1.5, 16),  # penalty over the last 16 of a long history
    (3, [], 1.5, 100, 1.0, 0.1, 1.0, 64),
    (4, [], 0.5, 5, 0.5, 0.0, 1.0, 64),
    (5, [9, 9, 9], 2.0, 0, 1.0, 0.0, 0.8, 64),  # penalty < 1 favours repeats; nothing trimmed
    (6, [], 0.7, 1, 0.95, 0.05, 1.0, 64),
]


def sampling_logits(seed: int):
    return (np.random.default_rng(seed).standard_normal(200) * 3).astype(np.float32)


def llama_cpp_chain(llama_cpp, logits, history, temp, top_k, top_p, min_p, penalty, last_n):
    lc, n = llama_cpp, len(logits)
    chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_penalties(n, last_n, penalty, 0.0, 0.0))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(top_k))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(top_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(min_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temp))
    for token in history:
        lc.llama_sampler_accept(chain, token)
    data = (lc.llama_token_data * n)(*[lc.llama_token_data(i, float(logits[i]), 0.0) for i in range(n)])
    candidates = lc.llama_token_data_array(data, n, -1, False)
    lc.llama_sampler_apply(chain, ctypes.byref(candidates))
    out = sorted(((data[i].id, data[i].logit) for i in range(candidates.size)), key=lambda c: -c[1])
    lc.llama_sampler_free(chain)
    return out


def make_sampling_fixture(llama_cpp) -> None:
    cases = []
    for seed, history, *params in SAMPLING_CASES:
        out = llama_cpp_chain(llama_cpp, sampling_logits(seed), history, *params)
        keys = ["temp", "top_k", "top_p", "min_p", "repeat_penalty", "repeat_last_n"]
        cases.append({"seed": seed, "history": history, "params": dict(zip(keys, params)),
                      "ids": [i for i, _ in out], "logits": [round(x, 6) for _, x in out]})
    path = FIXTURES / "sampling_llama_cpp.json"
    path.write_text(json.dumps({"logits": "np.random.default_rng(seed).standard_normal(200) * 3, float32",
                                "cases": cases}, indent=1) + "\n")
    print(f"{path}: {len(cases)} cases")


def main() -> None:
    import llama_cpp

    FIXTURES.mkdir(parents=True, exist_ok=True)
    make_sampling_fixture(llama_cpp)

    text = (REPO.parent / "shared" / "data" / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    llm = llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)  # add_bos=True: "if the model adds BOS"
    assert max(ids) < 1 << 16
    out = FIXTURES / "tinyshakespeare40k_smollm2_ids.npy"
    np.save(out, np.array(ids, dtype=np.uint16))
    print(f"{out}: {len(ids)} tokens")


if __name__ == "__main__":
    main()
