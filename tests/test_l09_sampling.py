import json
import math
from pathlib import Path

import numpy as np
import pytest

from lessons.l09_sampling import Sampler, SamplingParams


def test_defaults_are_llama_cpps():
    p = SamplingParams()
    assert (p.temp, p.top_k, p.top_p, p.min_p, p.repeat_penalty, p.repeat_last_n) == (0.8, 40, 0.95, 0.05, 1.0, 64)


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.standard_normal(1000).astype(np.float32)
        assert Sampler(SamplingParams(temp=0)).sample(logits, []) == int(np.argmax(logits))


def test_worked_example_distribution():
    # docstring: [2, 1, 0, -1] -> top_k 3 -> top_p 0.9 keeps {0, 1} -> min_p keeps both -> p(0) = e^2/(e^2+e)
    s = Sampler(SamplingParams(temp=1.0, top_k=3, top_p=0.9, min_p=0.05))
    ids, probs = s.distribution(np.array([2, 1, 0, -1], np.float32), [])
    assert list(ids) == [0, 1]
    np.testing.assert_allclose(probs, [math.e**2 / (math.e**2 + math.e), math.e / (math.e**2 + math.e)], rtol=1e-6)


def test_draws_follow_the_distribution():
    s = Sampler(SamplingParams(temp=1.0, top_k=3, top_p=0.9, min_p=0.05, seed=42))
    draws = np.array([s.sample(np.array([2, 1, 0, -1], np.float32), []) for _ in range(4000)])
    assert set(draws.tolist()) == {0, 1}
    expected = math.e**2 / (math.e**2 + math.e)
    assert abs(np.mean(draws == 0) - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000)


def filtered_oracle(logits, top_k, top_p, min_p, temp):
    """The chain written plainly over a fully sorted list of (logit, id) pairs."""
    cands = sorted(((float(l), i) for i, l in enumerate(logits)), key=lambda c: (-c[0], c[1]))
    if top_k > 0:
        cands = cands[:top_k]
    if top_p < 1:
        z = sum(math.exp(l - cands[0][0]) for l, _ in cands)
        cum, keep = 0.0, len(cands)
        for j, (l, _) in enumerate(cands):
            cum += math.exp(l - cands[0][0]) / z
            if cum >= top_p:
                keep = j + 1
                break
        cands = cands[:keep]
    if min_p > 0:
        cands = [c for c in cands if math.exp(c[0] - cands[0][0]) >= min_p]
    z = sum(math.exp((l - cands[0][0]) / temp) for l, _ in cands)
    return [i for _, i in cands], [math.exp((l - cands[0][0]) / temp) / z for l, _ in cands]


@pytest.mark.parametrize("top_k,top_p,min_p,temp", [(40, 0.95, 0.05, 0.8), (0, 1.0, 0.0, 1.0), (5, 1.0, 0.0, 2.0),
                                                    (0, 0.5, 0.0, 0.7), (100, 0.99, 0.2, 1.5), (1, 0.9, 0.1, 1.0)])
def test_chain_matches_plain_oracle(top_k, top_p, min_p, temp):
    logits = np.random.default_rng(top_k).standard_normal(300).astype(np.float32) * 3
    ids, probs = Sampler(SamplingParams(temp=temp, top_k=top_k, top_p=top_p, min_p=min_p)).distribution(logits, [])
    want_ids, want_probs = filtered_oracle(logits, top_k, top_p, min_p, temp)
    assert ids.tolist() == want_ids
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-9)


def test_repeat_penalty_divides_positive_and_multiplies_negative():
    logits = np.array([3.0, -2.0, 1.0, 2.5], np.float32)
    s = Sampler(SamplingParams(temp=0, repeat_penalty=2.0, repeat_last_n=2))
    # token 0 was seen long ago (outside the last 2), tokens 0 and 1 recently: 3.0 -> 1.5, -2.0 -> -4.0
    assert s.sample(logits, [0, 5, 0, 1]) == 3  # 2.5 now beats 1.5
    assert s.sample(logits, [3, 2, 2, 1]) == 0  # history without 0: 3.0 still best
    ids, _ = Sampler(SamplingParams(temp=1, top_k=0, top_p=1, min_p=0, repeat_penalty=2.0)).distribution(logits, [0, 1, 0])
    _, probs = Sampler(SamplingParams(temp=1, top_k=0, top_p=1, min_p=0)).distribution(np.array([1.5, -4.0, 1.0, 2.5], np.float32), [])
    np.testing.assert_allclose(Sampler(SamplingParams(temp=1, top_k=0, top_p=1, min_p=0, repeat_penalty=2.0))
                               .distribution(logits, [0, 1, 0])[1], probs, rtol=1e-6)
    assert ids.tolist() == [3, 0, 2, 1]


def test_seed_makes_runs_reproducible():
    logits = np.random.default_rng(7).standard_normal(500).astype(np.float32)

    def run(seed):
        sampler = Sampler(SamplingParams(temp=1.5, top_k=0, top_p=1.0, min_p=0.0, seed=seed))
        return [sampler.sample(logits, []) for _ in range(30)]

    assert run(123) == run(123)
    assert run(123) != run(124)
    assert len(set(run(123))) > 5  # temp 1.5 over 500 candidates: really random, not stuck on one token


LLAMA_CPP_CASES = json.loads((Path(__file__).parent / "fixtures" / "sampling_llama_cpp.json").read_text())["cases"]


@pytest.mark.parametrize("case", LLAMA_CPP_CASES, ids=lambda c: f"seed{c['seed']}")
def test_chain_matches_llama_cpp(case):
    # tools/make_fixtures_forward.py ran llama.cpp's samplers on the same logits and history
    logits = (np.random.default_rng(case["seed"]).standard_normal(200) * 3).astype(np.float32)
    ids, probs = Sampler(SamplingParams(**case["params"])).distribution(logits, case["history"])
    assert ids.tolist() == case["ids"]
    ref = np.array(case["logits"], np.float64)  # llama.cpp's logits after temperature
    ref = np.exp(ref - ref.max())
    np.testing.assert_allclose(probs, ref / ref.sum(), rtol=1e-4, atol=1e-7)
