import numpy as np
import pytest

from lessons.l01_gguf import GGUFFile
from lessons.l08_transformer import NumpyLlama
from lessons.l09_sampling import Sampler, SamplingParams
from lessons.l10_generate import generate


class CountingModel:
    """Logits that favour (token + 1) mod n_vocab (logit 1.0), then token + 2 (0.8); records every forward call."""

    def __init__(self, n_vocab=10, n_ctx=32):
        self.n_vocab, self.n_ctx, self.calls = n_vocab, n_ctx, []

    def forward(self, tokens, pos, last_only=False):
        tokens = np.asarray(tokens)
        if pos + len(tokens) > self.n_ctx:
            raise ValueError("context full")
        self.calls.append((tokens.tolist(), pos))
        logits = np.zeros((len(tokens), self.n_vocab), np.float32)
        logits[np.arange(len(tokens)), (tokens + 1) % self.n_vocab] = 1.0
        logits[np.arange(len(tokens)), (tokens + 2) % self.n_vocab] = 0.8
        return logits[-1:] if last_only else logits

    def reset(self):
        pass


GREEDY = SamplingParams(temp=0)


def test_worked_example_prefill_then_decode():
    model, seen = CountingModel(), []
    stats = generate(model, [1, 2, 3, 4, 5], 3, Sampler(GREEDY), stop_ids=(), on_token=seen.append)
    assert seen == stats.tokens == [6, 7, 8]
    assert model.calls == [([1, 2, 3, 4, 5], 0), ([6], 5), ([7], 6)]  # one batched prefill, then one token at a time
    assert (stats.n_prompt, stats.n_eval, stats.stop_reason) == (5, 2, "n_predict")
    assert stats.prompt_ms > 0 and stats.eval_ms > 0


def test_stops_at_a_stop_id_without_emitting_it():
    seen = []
    stats = generate(CountingModel(), [5], 10, Sampler(GREEDY), stop_ids={8}, on_token=seen.append)
    assert seen == [6, 7] and stats.stop_reason == "stop_id"


def test_empty_stop_ids_generate_through_eos():
    stats = generate(CountingModel(), [5], 10, Sampler(GREEDY), stop_ids=())
    assert stats.tokens == [6, 7, 8, 9, 0, 1, 2, 3, 4, 5]


def test_minus_one_runs_until_the_context_is_full():
    model = CountingModel(n_ctx=8)
    stats = generate(model, [0, 1, 2], -1, Sampler(GREEDY))
    assert len(stats.tokens) == 8 - 3 + 1  # the last token fills no slot: it is never fed back
    assert stats.stop_reason == "context_full" and model.calls[-1][1] == 7


@pytest.mark.parametrize("prompt,n_predict", [([], 5), ([1] * 40, 5), ([1], -2)])
def test_bad_requests_raise_value_error(prompt, n_predict):
    with pytest.raises(ValueError):
        generate(CountingModel(), prompt, n_predict, Sampler(GREEDY))


def test_repeat_penalty_sees_the_prompt():
    # after 5 the model prefers 6 (1.0) over 7 (0.8); 6 is in the prompt, penalty 2 makes it 0.5 < 0.8
    stats = generate(CountingModel(), [6, 5], 1, Sampler(SamplingParams(temp=0, repeat_penalty=2.0)))
    assert stats.tokens == [7]
    assert generate(CountingModel(), [6, 5], 1, Sampler(SamplingParams(temp=0, repeat_last_n=1, repeat_penalty=2.0))).tokens == [6]


def make_model(backend, gguf, n_ctx):
    if backend == "numpy":
        return NumpyLlama(gguf, n_ctx)
    cpp = pytest.importorskip("cpp_core.model", reason="the C++ core is not built")
    return cpp.CppLlama(gguf, n_ctx, n_threads=1)


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_tiny_model_greedy_equals_argmax_of_full_recompute(tiny_llama, backend):
    # oracle: no cache at all, re-run the whole sequence for every new token
    model = make_model(backend, GGUFFile(tiny_llama(n_head=4, n_head_kv=1)), n_ctx=24)
    prompt = [10, 20, 30]
    stats = generate(model, prompt, 12, Sampler(GREEDY))
    seq = list(prompt)
    for _ in range(12):
        model.reset()
        seq.append(int(np.argmax(model.forward(np.array(seq, np.int32), 0)[-1])))
    assert stats.tokens == seq[len(prompt):]
