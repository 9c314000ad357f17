"""Lesson 2, exercise: byte-level BPE the slow, obvious way."""


def bpe_naive(word: str, ranks: dict) -> list:
    """Merge the symbols of `word` (byte-map alphabet, one character per byte): while some adjacent
    pair is in `ranks`, merge the pair of lowest rank (the leftmost one when it occurs twice)."""
    symbols = list(word)
    while True:
        best = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return symbols
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
