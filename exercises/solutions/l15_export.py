"""Lesson 15, exercise: a file's bits per weight, the number llama-quantize's presets are judged by."""
from lessons.l01_gguf import GGUFFile


def bits_per_weight(path) -> float:
    """8 * (bytes of all tensors) / (elements of all tensors)."""
    with GGUFFile(path) as f:
        n_bytes = sum(t.nbytes for t in f.tensors.values())
        n_elements = sum(t.n_elements for t in f.tensors.values())
    return 8 * n_bytes / n_elements
