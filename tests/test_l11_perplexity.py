import math

import numpy as np
import pytest

from lessons.l01_gguf import GGUFFile
from lessons.l08_transformer import NumpyLlama
from lessons.l11_perplexity import perplexity, token_nll


class TableModel:
    """logits[t] depends only on the token at t: a bigram table. Records resets and chunk starts."""

    def __init__(self, table):
        self.table, self.chunks, self.resets = table, [], 0

    def forward(self, tokens, pos, last_only=False):
        if pos == 0:
            self.chunks.append(np.asarray(tokens).copy())  # the first half of every chunk
        logits = self.table[np.asarray(tokens)]
        return logits[-1:] if last_only else logits

    def reset(self):
        self.resets += 1


def test_uniform_model_has_perplexity_n_vocab():
    # the worked example generalized: every token has probability 1/8 -> ppl 8, stderr 0
    model = TableModel(np.zeros((8, 8), np.float32))
    ppl, err = perplexity(model, np.arange(40) % 8, n_ctx=8)
    assert ppl == pytest.approx(8.0, rel=1e-12) and err == pytest.approx(0.0, abs=1e-9)


def test_matches_plain_computation_of_llama_perplexity_method():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((20, 20)).astype(np.float32) * 2
    ids = rng.integers(0, 20, 75)
    n_ctx = 16
    seen = []
    ppl, err = perplexity(TableModel(table), ids, n_ctx, on_chunk=lambda i, n, p: seen.append((i, n)))
    nll = []  # 75 // 16 = 4 chunks; positions 8..14 of each predict tokens 9..15
    for c in range(4):
        for j in range(8, 15):
            row = table[ids[c * 16 + j]].astype(np.float64)
            nll.append(-(row[ids[c * 16 + j + 1]] - math.log(np.exp(row).sum())))
    nll = np.array(nll)
    assert len(nll) == 4 * 7 and seen == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert ppl == pytest.approx(math.exp(nll.mean()), rel=1e-6)
    assert err == pytest.approx(math.exp(nll.mean()) * nll.std(ddof=1) / math.sqrt(len(nll)), rel=1e-6)


def test_bos_replaces_the_first_token_of_every_chunk_and_cache_is_reset():
    model = TableModel(np.zeros((8, 8), np.float32))
    perplexity(model, np.arange(1, 33) % 8, n_ctx=8, bos_id=0)
    assert [c[0] for c in model.chunks] == [0, 0, 0, 0] and model.resets == 4
    assert [c[1] for c in model.chunks] == [2, 2, 2, 2]  # the rest of the chunk is untouched


def test_token_nll_is_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4]], np.float32)
    assert token_nll(logits, np.array([1]))[0] == pytest.approx(1e4)


@pytest.mark.parametrize("n_ids,n_ctx", [(15, 8), (100, 7), (100, 2)])
def test_bad_requests_raise_value_error(n_ids, n_ctx):
    with pytest.raises(ValueError):
        perplexity(TableModel(np.zeros((8, 8), np.float32)), np.zeros(n_ids, int), n_ctx)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_tiny_model_perplexity_against_the_numpy_lesson(tiny_llama, backend):
    gguf = GGUFFile(tiny_llama(n_ctx_train=32))
    reference = NumpyLlama(gguf, n_ctx=16)
    if backend == "numpy":
        model = reference
    else:
        model = pytest.importorskip("cpp_core.model", reason="the C++ core is not built").CppLlama(gguf, 16, n_threads=1)
    ids = np.random.default_rng(5).integers(0, reference.config.n_vocab, 50)
    ppl, _ = perplexity(model, ids, 16)
    nll = []  # 3 chunks of 16, positions 8..14 predict 9..15, evaluated from scratch by the numpy lesson
    for c in range(3):
        reference.reset()
        logits = reference.forward(ids[c * 16 : (c + 1) * 16], 0).astype(np.float64)
        for j in range(8, 15):
            row = logits[j] - logits[j].max()
            nll.append(math.log(np.exp(row).sum()) - row[ids[c * 16 + j + 1]])
    assert ppl == pytest.approx(math.exp(np.mean(nll)), rel=1e-5)
