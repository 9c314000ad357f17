"""Lesson 4, exercise: RMSNorm with plain Python loops."""
import math


def rmsnorm_loops(x, weight, eps):
    """x: list of rows (lists of floats), weight: list of floats -> list of rows."""
    out = []
    for row in x:
        mean_square = sum(v * v for v in row) / len(row)
        scale = 1.0 / math.sqrt(mean_square + eps)
        out.append([v * scale * w for v, w in zip(row, weight)])
    return out
