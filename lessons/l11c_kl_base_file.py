"""Lesson 11c: the base model's saved log-probabilities, and llama-perplexity's KL report.

Lesson 11b is the idea; this is the file format and the distrust of it. The layout is llama.cpp's
(`llama-perplexity --kl-divergence-base FILE`, read from its perplexity.cpp), little-endian; llama-perplexity
reads our files and we read its (tools/make_kl_llama_cpp_fixture.py):

    8 bytes  "_logits_"
    uint32   n_ctx            int32 n_vocab            int32 n_chunk
    int32    tokens[n_chunk * n_ctx]        the text's tokens, as cut into chunks: they identify the text
    per chunk: n_ctx/2 - 1 rows of row_width(n_vocab) uint16 (lesson 11b's pack_log_probs)

For SmolLM2 (49152 tokens) a scored token costs 98 KB instead of 196 KB in float32. A file is refused
when it was saved for another vocabulary or another text (its tokens differ from the text's), and
when it is truncated, padded or carries a broken row, before anything is computed.
"""

from __future__ import annotations

import os

import numpy as np

from lessons.l11b_kl_divergence import KLStats, percentile, row_width

MAGIC = b"_logits_"
HEADER = np.dtype([("magic", "S8"), ("n_ctx", "<u4"), ("n_vocab", "<i4"), ("n_chunk", "<i4")])
MAX_VOCAB = 1 << 24  # more than any tokenizer has; a bigger number is a broken file


class BaseFileError(ValueError):
    """A base file that cannot be used; the message names the file and why."""


# ---- writing -----------------------------------------------------------------------------------

class BaseWriter:
    """Writes FILE.partial chunk by chunk; commit() renames it into place, abort() removes it."""

    def __init__(self, path: str, n_ctx: int, n_vocab: int, tokens: np.ndarray):
        self.path, self.partial = path, f"{path}.partial"
        self.width = row_width(n_vocab)
        header = np.array([(MAGIC, n_ctx, n_vocab, len(tokens) // n_ctx)], HEADER)
        self.f = open(self.partial, "wb")
        self.f.write(header.tobytes() + np.asarray(tokens, "<i4").tobytes())

    def write_chunk(self, rows: np.ndarray) -> None:
        self.f.write(np.ascontiguousarray(rows, "<u2").tobytes())  # [n_ctx/2 - 1, row_width]

    def commit(self) -> None:
        self.f.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.f.close()
        if os.path.exists(self.partial):
            os.remove(self.partial)


# ---- reading -----------------------------------------------------------------------------------

class BaseFile:
    """A validated base file: n_ctx, n_vocab, n_chunk, tokens, rows(i) (uint16 [n_ctx/2 - 1, width])."""

    def __init__(self, path: str):
        self.path = path
        try:
            size = os.path.getsize(path)
            head = np.fromfile(path, HEADER, count=1)
        except OSError as e:
            raise BaseFileError(f"{path}: {e.strerror or e}") from None
        if len(head) < 1 or head["magic"][0] != MAGIC:
            raise BaseFileError(f"{path}: not a file of log-probabilities (--kl-divergence-base writes them)")
        self.n_ctx, self.n_vocab, self.n_chunk = (int(head[k][0]) for k in ("n_ctx", "n_vocab", "n_chunk"))
        if self.n_ctx < 4 or self.n_ctx % 2 or not 0 < self.n_vocab <= MAX_VOCAB or self.n_chunk < 1:
            raise BaseFileError(f"{path}: corrupt header (n_ctx {self.n_ctx}, n_vocab {self.n_vocab}, "
                                f"n_chunk {self.n_chunk})")
        self.width = row_width(self.n_vocab)
        self.n_rows = self.n_ctx // 2 - 1  # scored tokens per chunk
        n_tokens = self.n_chunk * self.n_ctx
        self.rows_at = HEADER.itemsize + 4 * n_tokens
        expected = self.rows_at + 2 * self.n_chunk * self.n_rows * self.width  # checked before any allocation
        if size != expected:
            raise BaseFileError(f"{path}: truncated or corrupt: {size} bytes where its header "
                                f"(n_ctx {self.n_ctx}, n_vocab {self.n_vocab}, n_chunk {self.n_chunk}) "
                                f"promises {expected}")
        self.tokens = np.fromfile(path, "<i4", count=n_tokens, offset=HEADER.itemsize).astype(np.int32)
        if self.tokens.min() < 0 or self.tokens.max() >= self.n_vocab:
            raise BaseFileError(f"{path}: corrupt: a token id outside the vocabulary of {self.n_vocab}")
        self.all_rows = np.memmap(path, "<u2", mode="r", offset=self.rows_at,
                                  shape=(self.n_chunk * self.n_rows, self.width))  # [n_chunk * n_rows, width]
        head = np.ascontiguousarray(self.all_rows[:, 0:4]).view("<f4")  # [n_chunk * n_rows, 2]: scale, min
        bad = ~(np.isfinite(head).all(axis=1) & (head[:, 0] >= 0) & (head[:, 1] <= 0))  # [n_chunk * n_rows]
        if bad.any():  # a broken row is refused before anything runs
            chunk, row = divmod(int(np.argmax(bad)), self.n_rows)
            raise BaseFileError(f"{path}: corrupt: row {row} of chunk {chunk + 1} has an impossible "
                                "scale or minimum")

    def rows(self, i: int) -> np.ndarray:
        """Chunk i's packed rows: uint16 [n_rows, width]."""
        return np.array(self.all_rows[i * self.n_rows : (i + 1) * self.n_rows])

    def check(self, n_vocab: int, ids, n_chunk: int) -> None:
        """Refuse a model with another vocabulary, or a text that is not the one the file was saved for."""
        if n_vocab != self.n_vocab:
            raise BaseFileError(f"{self.path}: saved for a model with a vocabulary of {self.n_vocab} tokens; "
                                f"this model has {n_vocab}: not the same tokenizer, nothing to compare")
        ids = np.asarray(ids, np.int32)[: n_chunk * self.n_ctx]
        ours = self.tokens[: n_chunk * self.n_ctx]
        if len(ids) < len(ours) or not np.array_equal(ids, ours):
            where = int(np.argmax(ids[: len(ours)] != ours[: len(ids)])) if len(ids) else 0
            raise BaseFileError(f"{self.path}: saved for another text (or another tokenizer): its tokens "
                                f"differ from this text's from token {where}")


# ---- llama-perplexity's report -----------------------------------------------------------------

CHUNK_HEADER = ("chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence"
                "              Δp RMS            Same top p")


def chunk_line(i: int, s: KLStats) -> str:
    """The running line llama-perplexity prints after each chunk in KL mode."""
    return (f"{i + 1:4d}    {s.ppl[0]:9.4f} ± {s.ppl[1]:9.4f}    {s.ln_ratio[0]:10.5f} ± {s.ln_ratio[1]:10.5f}"
            f"    {s.kld[0]:10.5f} ± {s.kld[1]:10.5f}    {100 * s.rms_p_diff[0]:6.3f} ± "
            f"{100 * s.rms_p_diff[1]:6.3f} %    {100 * s.same_top[0]:6.3f} ± {100 * s.same_top[1]:6.3f} %")


LEVELS = [("99.9%   ", 0.999), ("99.0%   ", 0.99), ("95.0%   ", 0.95), ("90.0%   ", 0.9)]
LOW_LEVELS = [("10.0%   ", 0.1), (" 5.0%   ", 0.05), (" 1.0%   ", 0.01), (" 0.1%   ", 0.001)]


def report(s: KLStats) -> list[str]:
    """The three sections llama-perplexity prints at the end, with its words and formats."""
    def pm(label, pair):
        return f"{label:30}: {pair[0]:10.6f} ± {pair[1]:10.6f}"
    lines = ["====== Perplexity statistics ======",
             pm("Mean PPL(Q)", s.ppl), pm("Mean PPL(base)", s.ppl_base),
             f"Cor(ln(PPL(Q)), ln(PPL(base))): {100 * s.cor:6.2f}%",
             pm("Mean ln(PPL(Q)/PPL(base))", s.ln_ratio), pm("Mean PPL(Q)/PPL(base)", s.ratio),
             pm("Mean PPL(Q)-PPL(base)", s.diff), "",
             "====== KL divergence statistics ======",
             f"Mean    KLD: {s.kld[0]:10.6f} ± {s.kld[1]:10.6f}"]
    k = s.kld_sorted
    lines.append(f"Maximum KLD: {k[-1]:10.6f}")
    lines += [f"{name}KLD: {percentile(k, q):10.6f}" for name, q in LEVELS]
    lines.append(f"Median  KLD: {percentile(k, 0.5):10.6f}")
    lines += [f"{name}KLD: {percentile(k, q):10.6f}" for name, q in LOW_LEVELS]
    lines += [f"Minimum KLD: {k[0]:10.6f}", "", "====== Token probability statistics ======",
              f"Mean    Δp: {100 * s.p_diff[0]:6.3f} ± {100 * s.p_diff[1]:5.3f} %"]
    d = s.p_diff_sorted
    lines.append(f"Maximum Δp: {100 * d[-1]:6.3f}%")
    lines += [f"{name}Δp: {100 * percentile(d, q):6.3f}%" for name, q in LEVELS + [("75.0%   ", 0.75)]]
    lines.append(f"Median  Δp: {100 * percentile(d, 0.5):6.3f}%")
    lines += [f"{name}Δp: {100 * percentile(d, q):6.3f}%" for name, q in [("25.0%   ", 0.25)] + LOW_LEVELS]
    lines += [f"Minimum Δp: {100 * d[0]:6.3f}%",
              f"RMS Δp    : {100 * s.rms_p_diff[0]:6.3f} ± {100 * s.rms_p_diff[1]:5.3f} %",
              f"Same top p: {100 * s.same_top[0]:6.3f} ± {100 * s.same_top[1]:5.3f} %"]
    return lines
