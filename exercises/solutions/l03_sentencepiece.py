"""Lesson 3, exercise: SentencePiece merging the slow, obvious way."""


def spm_naive(text: str, token_to_id: dict, scores) -> list:
    """Start from one symbol per character; while some adjacent pair joins into a token, merge the
    pair whose token has the highest score (the leftmost one on a tie)."""
    symbols = list(text)
    while True:
        best = None
        for i in range(len(symbols) - 1):
            tid = token_to_id.get(symbols[i] + symbols[i + 1])
            if tid is not None and (best is None or scores[tid] > best[0]):
                best = (scores[tid], i)
        if best is None:
            return symbols
        i = best[1]
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
