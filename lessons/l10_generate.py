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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np


@dataclass
class GenerationStats:
    n_prompt: int = 0  # tokens evaluated in the prefill
    prompt_ms: float = 0.0  # time of the prefill forward (and its sampling)
    n_eval: int = 0  # single-token decode forwards
    eval_ms: float = 0.0  # their time, sampling included
    tokens: list[int] = field(default_factory=list)  # the new tokens, stop token excluded
    stop_reason: str = ""  # "n_predict", "stop_id" or "context_full"

    def tokens_per_second(self) -> float:
        return 1000.0 * self.n_eval / self.eval_ms if self.eval_ms > 0 else 0.0


# --8<-- [start:generate]
def generate(model, prompt_ids, n_predict: int, sampler, stop_ids: Collection[int] = (),
             on_token: Callable[[int], None] | None = None) -> GenerationStats:
    """Continue prompt_ids with up to n_predict sampled tokens (-1: until the context is full)."""
    prompt = np.asarray(prompt_ids, dtype=np.int32)
    if prompt.ndim != 1 or prompt.size == 0:
        raise ValueError("the prompt must contain at least one token")
    if n_predict < -1:
        raise ValueError(f"n_predict must be >= -1, got {n_predict}")
    if prompt.size > model.n_ctx:
        raise ValueError(f"the prompt has {prompt.size} tokens, more than the context size {model.n_ctx}")
    stop_ids = set(stop_ids)
    history = [int(t) for t in prompt]  # the sampler's repetition penalty looks back over this
    stats = GenerationStats(n_prompt=prompt.size, stop_reason="n_predict")
    if n_predict == 0:
        return stats

    start = time.perf_counter()
    logits = model.forward(prompt, 0, last_only=True)[-1]  # [1, n_vocab]: the last row predicts the next token
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
            break
        stats.tokens.append(token)
        history.append(token)
        if on_token is not None:
            on_token(token)
        if len(stats.tokens) == n_predict:
            break
        if pos >= model.n_ctx:  # no room to feed this token back
            stats.stop_reason = "context_full"
            break
        start = time.perf_counter()
        logits = model.forward(np.array([token], dtype=np.int32), pos)[0]  # [1, n_vocab] -> [n_vocab]
        pos += 1
        stats.n_eval += 1
    return stats
# --8<-- [end:generate]
