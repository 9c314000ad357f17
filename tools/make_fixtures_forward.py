"""Write the forward-pass lessons' test fixtures with llama.cpp as the oracle.

    python3 tools/make_fixtures_forward.py      # needs llama-cpp-python (the system python here)

tests/fixtures/tinyshakespeare40k_smollm2_ids.npy: llama.cpp's token ids (uint16) for
shared/data/tinyshakespeare-40k.txt with the default model's vocabulary, tokenized the way
llama-perplexity does (model's BOS rule, special tokens not parsed). test_numpy_model.py measures
perplexity on them and compares with shared/reference/smollm2_generation.json.
"""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lessons.default_model import default_model_path  # noqa: E402


def main() -> None:
    import llama_cpp

    text = (REPO.parent / "shared" / "data" / "tinyshakespeare-40k.txt").read_text(encoding="utf-8")
    llm = llama_cpp.Llama(str(default_model_path()), vocab_only=True, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)  # add_bos=True: "if the model adds BOS"
    assert max(ids) < 1 << 16
    out = REPO / "tests" / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy"
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, np.array(ids, dtype=np.uint16))
    print(f"{out}: {len(ids)} tokens")


if __name__ == "__main__":
    main()
