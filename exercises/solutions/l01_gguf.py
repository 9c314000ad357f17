"""Lesson 1, exercises: reference solutions (your own go in a folder named by EXERCISE_DIR)."""
import struct

# values per block, bytes per block: copied from ggml's type traits, not from the lesson
BLOCKS = {"F32": (1, 4), "F16": (1, 2), "BF16": (1, 2), "Q4_0": (32, 18), "Q4_1": (32, 20),
          "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q2_K": (256, 84), "Q3_K": (256, 110),
          "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}


def tensor_nbytes(type_name: str, shape: tuple) -> int:
    """Bytes a tensor of numpy `shape` takes in a GGUF file, e.g. ('Q4_1', (576, 576)) -> 207360."""
    block, size = BLOCKS[type_name]
    *rows, n = shape
    if n % block:
        raise ValueError(f"a row of {n} is not a whole number of {type_name} blocks of {block}")
    n_rows = 1
    for r in rows:
        n_rows *= r
    return n_rows * (n // block) * size


def read_header(data: bytes) -> tuple:
    """The first 24 bytes of a GGUF file -> (version, n_tensors, n_kv); ValueError if not a header."""
    if len(data) < 24 or data[:4] != b"GGUF":
        raise ValueError("not a GGUF header")
    return struct.unpack_from("<IQQ", data, 4)
