"""Lesson 7: the SwiGLU feed-forward network (Shazeer, 2020, "GLU Variants Improve Transformer").

After attention, every position goes through the same small MLP on its own. LLaMA's is gated:

    ffn(x) = W_down . ( silu(W_gate . x) * (W_up . x) )        silu(z) = z * sigmoid(z) = z / (1 + exp(-z))

W_gate and W_up map n_embd -> n_ff (576 -> 1536 in SmolLM2), W_down maps back. The "up" branch carries
the signal and the silu of the "gate" branch decides, channel by channel, how much of it passes.
GGUF names them blk.N.ffn_gate / ffn_up / ffn_down.

Worked examples (check them by hand):
  - silu(0) = 0 * 0.5 = 0, silu(z) -> z for large z, silu(z) -> 0 for very negative z; its minimum is
    about -0.278 near z = -1.278.
  - with 1-channel weights W_gate = [[1]], W_up = [[2]], W_down = [[3]] and x = [1]:
    gate = 1, up = 2, silu(1) = 1 / (1 + e^-1) = 0.7311, so ffn = 3 * 0.7311 * 2 = 4.3864.

    >>> import numpy as np
    >>> one = lambda v: np.array([[v]], np.float32)
    >>> round(float(swiglu_ffn(one(1), one(1), one(2), one(3))[0, 0]), 4)
    4.3864
"""

import numpy as np


# --8<-- [start:silu]
def silu(z: np.ndarray) -> np.ndarray:
    """z * sigmoid(z), also called swish."""
    with np.errstate(over="ignore"):  # exp(-z) overflows to inf for z < -88: z / inf = -0.0, the right limit
        return z / (1.0 + np.exp(-z))
# --8<-- [end:silu]


# --8<-- [start:swiglu]
def swiglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The gate itself: silu(gate) * up, elementwise (the C++ op of the same name, cpp_core/src/ops/swiglu.cpp)."""
    return silu(gate) * up  # [n, n_ff], [n, n_ff] -> [n, n_ff]


def swiglu_ffn(x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray, w_down: np.ndarray) -> np.ndarray:
    """x [n, n_embd]; weights stored like GGUF's, [out, in]: w_gate, w_up [n_ff, n_embd], w_down [n_embd, n_ff]."""
    gate = x @ w_gate.T  # [n, n_embd] -> [n, n_ff]
    up = x @ w_up.T  # [n, n_embd] -> [n, n_ff]
    return swiglu(gate, up) @ w_down.T  # [n, n_ff] -> [n, n_embd]
# --8<-- [end:swiglu]
