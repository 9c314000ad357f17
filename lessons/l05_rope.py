"""Lesson 5: RoPE, rotary position embeddings (Su et al., 2021).

Attention by itself does not know where a token sits. RoPE tells it by rotating each query and key
vector, two channels at a time, by an angle proportional to the token's position. Pair i of a head
turns at frequency

    theta_i = base ** (-2 i / n_rot)        i = 0 .. n_rot/2 - 1

so at position p it is rotated by p * theta_i. `base` is `{arch}.rope.freq_base` (10000 for LLaMA 1/2,
100000 for SmolLM2); n_rot is `{arch}.rope.dimension_count`, normally the whole head_dim (channels past
n_rot, if any, are left alone). Because q at position m is turned by m*theta and k at position n by
n*theta, their dot product only sees the difference m - n: relative positions for free.

Worked examples (check them by hand):
  - at position 0 every angle is 0, cos = 1 and sin = 0: RoPE is the identity.
  - head_dim 2 (a single pair, theta_0 = base**0 = 1 radian): the vector (1, 0) at position p becomes
    (cos p, sin p); at p = 1 that is (0.5403, 0.8415). Rotations never change the length.

Which two channels make a pair? There are two conventions, and picking the wrong one gives plausible
garbage rather than an error:
  - "normal" (llama.cpp's default, used for arch `llama`): adjacent pairs (x[2i], x[2i+1]), the layout
    of Meta's original LLaMA code, which treats each pair as one complex number.
  - "NEOX" (GPT-NeoX, and Hugging Face's `rotate_half`): pair i is (x[i], x[i + n_rot/2]), the first
    half of the head against the second half.

Why converters permute Q and K. Hugging Face's LLaMA uses the half-split layout, so when Meta's weights
were converted to HF, the rows of W_q and W_k were reordered inside each head so that half-split RoPE
on the new rows gives exactly the old interleaved result. llama.cpp's converter for arch `llama` undoes
that permutation when writing GGUF, so GGUF llama files want the adjacent-pair ("normal") rotation.
Reordering rows is harmless for attention: scores are dot products q . k, and applying the same channel
permutation to q and k leaves every dot product unchanged; V and W_o are not touched. The test
tests/test_l05_rope.py checks this: NEOX on HF-ordered weights == normal on GGUF-ordered weights.
"""

import numpy as np


# ---- angles ----
# --8<-- [start:rope_angles]
def rope_angles(positions: np.ndarray, n_rot: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of pos * theta_i for every position and pair: two [n_pos, n_rot/2] float32 arrays."""
    if n_rot % 2:
        raise ValueError(f"RoPE needs an even number of rotated channels, got {n_rot}")
    theta = base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)  # [n_rot/2]
    angles = np.asarray(positions, dtype=np.float64)[:, None] * theta  # [n_pos, 1] * [n_rot/2] -> [n_pos, n_rot/2]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
# --8<-- [end:rope_angles]


# ---- rotation ----
# --8<-- [start:apply_rope]
def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, neox: bool = False) -> np.ndarray:
    """Rotate the channel pairs of x [n, n_heads, head_dim] by the angles of its n positions.

    cos, sin: [n, n_rot/2] from rope_angles for those positions. Returns a new array.
    neox=False pairs adjacent channels (2i, 2i+1); neox=True pairs channel i with i + n_rot/2.
    """
    n_rot = 2 * cos.shape[-1]
    cos, sin = cos[:, None, :], sin[:, None, :]  # [n, 1, n_rot/2]: the same angle for every head
    out = x.copy()  # channels past n_rot pass through unchanged
    if neox:
        a, b = x[..., : n_rot // 2], x[..., n_rot // 2 : n_rot]  # [n, n_heads, n_rot/2] each
        out[..., : n_rot // 2] = a * cos - b * sin
        out[..., n_rot // 2 : n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]  # [n, n_heads, n_rot/2] each
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out
# --8<-- [end:apply_rope]


# --8<-- [start:permute_hf_to_gguf]
def permute_hf_to_gguf(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the rows of an HF-layout W_q/W_k [n_heads*head_dim, n_in] into GGUF's interleaved layout.

    Inside each head HF stores the first halves of all pairs, then the second halves; GGUF stores
    pair by pair. Row j < head_dim/2 (first half of pair j) goes to 2j, row head_dim/2 + j to 2j+1.
    """
    head_dim = w.shape[0] // n_heads
    w = w.reshape(n_heads, 2, head_dim // 2, *w.shape[1:])  # [head, half, pair, n_in]
    return w.swapaxes(1, 2).reshape(n_heads * head_dim, *w.shape[3:])  # [head, pair, half, n_in] -> rows
# --8<-- [end:permute_hf_to_gguf]
