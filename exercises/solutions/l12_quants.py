"""Lesson 12, exercise: one Q4_0 block by hand."""
import struct


def dequantize_q4_0_block(block: bytes) -> list:
    """18 bytes (f16 d, 16 bytes of nibbles) -> 32 floats: (nibble - 8) * d; low nibbles first."""
    (d,) = struct.unpack_from("<e", block, 0)
    qs = block[2:18]
    return [((b & 0x0F) - 8) * d for b in qs] + [((b >> 4) - 8) * d for b in qs]
