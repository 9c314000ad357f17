"""Lesson 13, exercise: Q4_K's twelve scale bytes, bit by bit."""


def scales_mins_q4_k(s: bytes) -> tuple:
    """12 bytes -> (8 six-bit scales, 8 six-bit mins). Sub-blocks 0-3: the low 6 bits of bytes 0-3
    (scales) and 4-7 (mins). Sub-blocks 4-7: a nibble of bytes 8-11 (low: scale, high: min) plus the
    top 2 bits of bytes 0-3 (scales) or 4-7 (mins) as bits 4 and 5."""
    sc, mn = [0] * 8, [0] * 8
    for j in range(4):
        sc[j], mn[j] = s[j] & 63, s[j + 4] & 63
        sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4)
        mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4)
    return sc, mn
