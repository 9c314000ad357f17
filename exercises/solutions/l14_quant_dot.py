"""Lesson 14, exercise: one Q8_0 x Q8_0 block product, with integers."""
import numpy as np


def dot_q8_0_block(x, w_q, w_d):
    """x: 32 floats; the weights: 32 int8 w_q with scale w_d. Quantize x as Q8_0 (d = max|x| / 127,
    stored as f16; p = round(x / d), halves to even) and return w_d * d * sum(w_q * p)."""
    x = np.asarray(x, dtype=np.float32)
    amax = float(np.abs(x).max())
    if amax == 0:
        return 0.0
    p = np.round(x * (np.float32(127) / np.float32(amax))).astype(np.int64)
    d = float(np.float16(amax / 127))
    return float(np.float32(w_d) * np.float32(d) * np.float32(int(np.dot(p, np.asarray(w_q, np.int64)))))
