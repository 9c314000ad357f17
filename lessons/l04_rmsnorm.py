"""Lesson 4: RMSNorm, the normalization in front of every LLaMA sub-layer.

LayerNorm subtracts the mean and divides by the standard deviation; RMSNorm (Zhang & Sennrich, 2019)
skips the mean and divides by the root mean square only, then scales each channel by a learned weight:

    rmsnorm(x) = x / sqrt(mean(x**2) + eps) * weight

`eps` comes from the GGUF key `{arch}.attention.layer_norm_rms_epsilon` (1e-5 for SmolLM2) and keeps
the division finite for an all-zero vector.

Worked example (check it by hand): a constant vector x = [3, 3, 3, 3] has mean(x**2) = 9, so with
eps = 0 every entry becomes 3 / sqrt(9) = 1, whatever the constant was; with weight = [1, 2, 3, 4] the
result is [1, 2, 3, 4]. The sign survives: [-3, -3, -3, -3] -> [-1, -1, -1, -1].

    >>> import numpy as np
    >>> rmsnorm(np.full((1, 4), 3.0, np.float32), np.array([1, 2, 3, 4], np.float32), eps=0.0)
    array([[1., 2., 3., 4.]], dtype=float32)
"""

import numpy as np


# --8<-- [start:rmsnorm]
def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """Normalize each row of x to unit root-mean-square, then scale channel-wise by weight."""
    # ggml accumulates the sum of squares in double; float64 here keeps us within float32 rounding of it.
    mean_square = np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)  # [n, 1]
    scale = (1.0 / np.sqrt(mean_square + eps)).astype(np.float32)  # [n, 1]
    return (x * scale) * weight  # [n, n_embd] * [n, 1] * [n_embd] -> [n, n_embd]
# --8<-- [end:rmsnorm]
