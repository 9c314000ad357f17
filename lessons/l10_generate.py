"""Lesson 10: the generation loop, prefill then decode.

Generating text is a loop around forward():

  1. prefill: evaluate the whole prompt in one batched forward (n tokens, one set of big matrix
     products); only the last position's logits matter, they predict the first new token.
  2. decode: sample a token, feed that single token back at the next position, repeat. Each step
     reuses the KV cache, so it costs one token's worth of work however long the text gets.

It stops after n_predict new tokens (-1: when the context is full), when the sampler picks a stop id
(end-of-generation tokens such as `<|im_end|>`; pass an empty set to ignore them), or when the context
is full. The stop token itself is not passed to on_token. The two phases have very different speeds
(prefill is compute-bound, decode reads all the weights for every token), so they are timed apart,
as llama.cpp reports them: "prompt eval time" and "eval time".

Worked example: a 5-token prompt and n_predict = 3 make one prefill forward of 5 tokens (giving token
1), then 2 decode forwards of 1 token each (giving tokens 2 and 3); the 3rd token is never fed back,
so stats read n_prompt 5, n_eval 2, and 3 tokens reach on_token.

The loop is a generator (generate_tokens) so that a caller can consume tokens at its own pace: a
chat prints them, a server streams them, and either can stop early (a stop string, a client gone).
With n_past > 0 the prefill evaluates only the prompt's tail: a chat's second turn reuses the KV
cache of the first and pays only for its new tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import numpy as np


@dataclass
class GenerationStats:
    n_prompt: int = 0  # tokens evaluated in the prefill (the prompt less the n_past already cached)
    prompt_ms: float = 0.0  # time of the prefill forward (and its sampling)
    n_eval: int = 0  # single-token decode forwards
    eval_ms: float = 0.0  # their time, sampling included
    tokens: list[int] = field(default_factory=list)  # the new tokens, stop token excluded
    stop_reason: str = ""  # "n_predict", "stop_id" or "context_full" (a consumer may set others)

    def tokens_per_second(self) -> float:
        return 1000.0 * self.n_eval / self.eval_ms if self.eval_ms > 0 else 0.0


# --8<-- [start:generate]
def generate_tokens(model, prompt_ids, n_predict: int, sampler, stop_ids: Collection[int] = (),
                    n_past: int = 0, stats: GenerationStats | None = None,
                    penalize_prompt: bool = True) -> Iterator[int]:
    """Yield up to n_predict sampled tokens continuing prompt_ids (-1: until the context is full).

    n_past: how many of prompt_ids the KV cache already holds (a chat's earlier turns); only the
    rest is evaluated. The consumer may stop early by leaving the loop: the token it was handed has
    then not been fed back, so the cache holds prompt_ids plus the first stats.n_eval new tokens.
    penalize_prompt: the repetition penalties look back over the prompt too (llama-cli), or over the new
    tokens only (llama-cpp-python's Llama).
    """
    prompt = np.asarray(prompt_ids, dtype=np.int32)
    if prompt.ndim != 1 or prompt.size == 0:
        raise ValueError("the prompt must contain at least one token")
    if n_predict < -1:
        raise ValueError(f"n_predict must be >= -1, got {n_predict}")
    if prompt.size > model.n_ctx:
        raise ValueError(f"the prompt has {prompt.size} tokens, more than the context size {model.n_ctx}")
    if not 0 <= n_past < prompt.size:
        raise ValueError(f"n_past must be between 0 and {prompt.size - 1} (one token must be evaluated), got {n_past}")
    stop_ids = set(stop_ids)
    history = [int(t) for t in prompt] if penalize_prompt else []  # the sampler's penalties look back over this
    stats = stats if stats is not None else GenerationStats()
    stats.n_prompt, stats.stop_reason = prompt.size - n_past, "n_predict"
    if n_predict == 0:
        return

    start = time.perf_counter()
    logits = model.forward(prompt[n_past:], n_past, last_only=True)[-1]  # [1, n_vocab]: the last row predicts
    pos = prompt.size
    while True:
        token = sampler.sample(logits, history)
        now = time.perf_counter()
        if stats.n_eval == 0 and not stats.tokens:
            stats.prompt_ms = 1000 * (now - start)
        else:
            stats.eval_ms += 1000 * (now - start)
        if token in stop_ids:
            stats.stop_reason = "stop_id"
            return
        stats.tokens.append(token)
        history.append(token)
        yield token
        if len(stats.tokens) == n_predict:
            return
        if pos >= model.n_ctx:  # no room to feed this token back
            stats.stop_reason = "context_full"
            return
        start = time.perf_counter()
        logits = model.forward(np.array([token], dtype=np.int32), pos)[0]  # [1, n_vocab] -> [n_vocab]
        pos += 1
        stats.n_eval += 1


def generate(model, prompt_ids, n_predict: int, sampler, stop_ids: Collection[int] = (),
             on_token: Callable[[int], None] | None = None, n_past: int = 0) -> GenerationStats:
    """The same loop with a callback: on_token(id) for each new token; returns the statistics."""
    stats = GenerationStats()
    for token in generate_tokens(model, prompt_ids, n_predict, sampler, stop_ids, n_past, stats):
        if on_token is not None:
            on_token(token)
    return stats
# --8<-- [end:generate]
