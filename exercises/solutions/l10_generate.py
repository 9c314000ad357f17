"""Lesson 10, exercise: greedy generation without a KV cache."""
import numpy as np


def greedy_no_cache(model, prompt_ids, n):
    """n new token ids, each the argmax of a forward pass over the whole sequence from position 0."""
    ids = list(prompt_ids)
    for _ in range(n):
        model.reset()
        logits = model.forward(np.array(ids), 0)  # [len(ids), n_vocab]
        ids.append(int(np.argmax(logits[-1])))
    return ids[len(prompt_ids):]
