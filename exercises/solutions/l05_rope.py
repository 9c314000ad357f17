"""Lesson 5, exercise: RoPE with complex numbers (the paper's way of writing it)."""
import numpy as np


def rope_complex(x, positions, base):
    """x [n, n_head, head_dim] float32, channel pairs (0,1), (2,3), ... rotated by pos * base^(-2i/head_dim)."""
    n, n_head, head_dim = x.shape
    z = x[..., 0::2].astype(np.float64) + 1j * x[..., 1::2].astype(np.float64)  # [n, n_head, hd/2]
    theta = base ** (-np.arange(0, head_dim, 2) / head_dim)  # [hd/2]
    turn = np.exp(1j * np.asarray(positions)[:, None] * theta)  # [n, hd/2]
    z = z * turn[:, None, :]
    out = np.empty(x.shape, np.float64)
    out[..., 0::2], out[..., 1::2] = z.real, z.imag
    return out.astype(np.float32)
