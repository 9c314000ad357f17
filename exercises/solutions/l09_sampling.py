"""Lesson 9, exercise: top-p by sorting."""
import numpy as np


def top_p_keep(logits, p):
    """The token ids top-p keeps, best first: the shortest prefix of the sorted distribution reaching p."""
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(logits[order] - logits[order[0]])
    probs /= probs.sum()
    kept, total = [], 0.0
    for i, pr in zip(order, probs):
        kept.append(int(i))
        total += pr
        if total >= p:
            break
    return kept
