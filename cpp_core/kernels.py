"""The C++ kernels from Python: every numbered version of every op, for tests and benchmarks.

Each op takes numpy arrays with the same names and arguments as its lesson, plus `version=`
(None = the fastest version this CPU runs, the one the C++ model uses). Versions are listed
slowest to fastest; v0 is always a line-by-line scalar port of the lesson.

    >>> from cpp_core import kernels
    >>> kernels.active_versions()["rmsnorm"]          # on an AVX-512 machine
    'v2_avx512'
    >>> y = kernels.quant_matmul(W_raw, GGMLType.Q4_1, x, version="v0_scalar_dequant")
"""
from __future__ import annotations

import os

import numpy as np

from . import _core
from lessons.ggml_types import TYPE_TABLE

OPS = ("rmsnorm", "apply_rope", "swiglu", "softmax", "quant_matmul")

# The types the kernels multiply (F32 F16 BF16, the legacy quants, Q2_K..Q6_K), with their block geometry
# (elements, bytes) from the lessons' one type table, to read n_cols off a raw array.
SUPPORTED_TYPES = (0, 1, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 30)
_BLOCKS = {t: TYPE_TABLE[t] for t in SUPPORTED_TYPES}

_pools: dict[int, _core.ThreadPool] = {}


def default_threads() -> int:
    """Threads for the kernels: all CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_pool(n_threads: int | None = None) -> _core.ThreadPool:
    """A persistent pool per thread count (created on first use, kept for the process)."""
    n = default_threads() if n_threads is None else int(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be >= 1, got {n}")
    if n not in _pools:
        _pools[n] = _core.ThreadPool(n)
    return _pools[n]


def list_versions() -> dict[str, list[str]]:
    """Every version of every op in this build, slowest first (some may need CPU features this machine lacks)."""
    return {op: [name for name, _, _ in _core.list_versions(op)] for op in OPS}


def available_versions() -> dict[str, list[str]]:
    """The versions this CPU can run."""
    return {op: [name for name, _, ok in _core.list_versions(op) if ok] for op in OPS}


def version_ideas(op: str) -> dict[str, str]:
    """version -> the one idea it adds."""
    return {name: idea for name, idea, _ in _core.list_versions(op)}


def active_versions() -> dict[str, str]:
    """The version each op's fast path runs here (what the C++ model uses)."""
    return {op: _core.active_version(op) for op in OPS}


def cpu_features() -> dict[str, bool]:
    return dict(_core.cpu_features())


def _v(version: str | None) -> str:
    return "" if version is None else str(version)


# ---- ops, same arguments as the lessons ----
def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float, version: str | None = None) -> np.ndarray:
    """x / sqrt(mean(x^2, last axis) + eps) * weight, for every row of x."""
    return _core.rmsnorm(x, weight, float(eps), _v(version))


def rope_angles(positions: np.ndarray, n_rot: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of pos * base^(-2i/n_rot) for every position and pair: two [n_pos, n_rot/2] float32 arrays."""
    return _core.rope_angles(np.asarray(positions, np.int32), int(n_rot), float(base))


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, neox: bool = False,
               version: str | None = None) -> np.ndarray:
    """Rotate the channel pairs of x [n, n_heads, head_dim] by the angles (cos, sin: [n, n_rot/2]) of its n positions."""
    return _core.apply_rope(x, cos, sin, bool(neox), _v(version))


def swiglu(gate: np.ndarray, up: np.ndarray, version: str | None = None) -> np.ndarray:
    """silu(gate) * up, elementwise."""
    return _core.swiglu(gate, up, _v(version))


def softmax(x: np.ndarray, version: str | None = None) -> np.ndarray:
    """Softmax over the last axis (max-subtracted; -inf entries become 0)."""
    return _core.softmax(x, _v(version))


def n_cols_of(W_raw: np.ndarray, ggml_type: int) -> int:
    """Row length of a raw weight array: float types carry it in their shape, quantized ones in bytes per row."""
    ggml_type = int(ggml_type)
    if ggml_type not in _BLOCKS:
        raise ValueError(f"quant_matmul: unsupported ggml type {ggml_type}")
    block, nbytes = _BLOCKS[ggml_type]
    if W_raw.ndim != 2:
        raise ValueError(f"quant_matmul: W must be 2-D, got shape {W_raw.shape}")
    if block == 1 and W_raw.dtype != np.uint8:
        return int(W_raw.shape[1])
    row_bytes = W_raw.shape[1] * W_raw.dtype.itemsize
    if row_bytes % nbytes:
        raise ValueError(f"quant_matmul: {row_bytes} bytes per row is not a whole number of {nbytes}-byte blocks")
    return row_bytes // nbytes * block


def quant_matmul(W_raw: np.ndarray, ggml_type: int, x: np.ndarray, version: str | None = None,
                 n_threads: int | None = None) -> np.ndarray:
    """y = x @ W.T straight from raw ggml rows.

    W_raw: [n_rows, row_bytes] uint8 blocks (GGUFFile tensor .data), or [n_rows, n_cols] float32/float16/uint16(bf16).
    x: [n_cols] or [n_tok, n_cols] float32.  Returns [n_rows] or [n_tok, n_rows] float32.
    """
    W = np.ascontiguousarray(W_raw)
    n_cols = n_cols_of(W, ggml_type)
    return _core.quant_matmul(W, int(ggml_type), W.shape[0], n_cols, x, _v(version), thread_pool(n_threads))


def dequantize(W_raw: np.ndarray, ggml_type: int) -> np.ndarray:
    """The C++ dequantizer (what v0 uses), raw [n_rows, row_bytes] -> float32 [n_rows, n_cols]."""
    W = np.ascontiguousarray(W_raw)
    n_cols = n_cols_of(W, ggml_type)
    return _core.dequantize(W.view(np.uint8).reshape(W.shape[0], -1), int(ggml_type), n_cols)


def quantize_activations(x: np.ndarray, fmt: str) -> np.ndarray:
    """x [n_tok, n] -> raw 8-bit blocks per row, fmt 'q8_0', 'q8_1' or 'q8_k' (what the int8 versions feed their dots)."""
    return _core.quantize_activations(np.atleast_2d(x), fmt)


def quant_matmul_kernel(version: str, ggml_type: int, n_tok: int = 1) -> str:
    """The kernel a quant_matmul version really runs for a type and n_tok tokens (its own, or the one its
    table row hands the rest to), e.g. "q4_1 x q8_1 avx2"."""
    return _core.quant_matmul_kernel(version, int(ggml_type), int(n_tok))
