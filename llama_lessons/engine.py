"""The engine: one model, its tokenizer and its KV cache, shared by run.py's chat, the Python API and the server.

    engine = Engine.load("model.gguf", n_ctx=2048, backend="cpp")
    ids = engine.tokenize(engine.chat_prompt([{"role": "user", "content": "Hi"}]))
    gen = engine.generate(ids, max_tokens=64, params=SamplingParams(temp=0), stop=["\\n\\n"])
    for piece in gen:                    # text as it is generated, whole characters only
        print(piece, end="", flush=True)
    gen.finish_reason, gen.n_evaluated   # "stop" or "length"; prompt tokens this call evaluated

What it adds to lesson 10's loop:
  - prefix reuse: the engine remembers which tokens its KV cache holds. A new prompt that starts with
    them (the next turn of a chat, the same system prompt again) evaluates only the tokens after the
    longest common prefix. At least the last prompt token is always evaluated: its logits are needed.
  - stop strings (llama.cpp's reverse prompts, OpenAI's `stop`): generation stops when the text
    contains one. For the API the stop string itself is not returned, and text that might be the start
    of one is held back until it is clear (what llama.cpp's server does); run.py prints it.
  - end-of-generation tokens stop it, special tokens are never printed, text is decoded UTF-8-safely.
  - cancel(): from another thread (a client gone) or by leaving the loop; Ctrl-C simply propagates.
  - one lock around the model: a generation holds it from its first piece until it ends or is closed,
    so concurrent requests queue. Close a generation you stop reading (gen.close()), or the next one
    waits for the garbage collector to do it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np

from lessons.l09_sampling import Sampler, SamplingParams
from lessons.l10_generate import GenerationStats, generate_tokens
from lessons.l10b_chat_template import compile_template, render, template_source


class ContextOverflow(ValueError):
    """A prompt that does not fit the context (the server answers 400)."""


def load_model(gguf, backend: str = "cpp", n_ctx: int = 0, n_threads: int | None = None, kv_type: str = "f16",
               n_gpu_layers: int = -1):
    """(model, n_ctx) for a GGUFFile; n_ctx 0 = min(4096, training context). ValueError on a bad file or n_ctx;
    cpp_core.cuda.CudaError when backend "cuda" finds no GPU, driver or compiler (n_gpu_layers -1 = all)."""
    from lessons.l08_transformer import LlamaConfig

    config = LlamaConfig.from_gguf(gguf)  # validates the file before anything is allocated
    n_ctx = n_ctx or min(4096, config.n_ctx_train)
    if n_ctx > config.n_ctx_train:
        raise ValueError(f"n_ctx {n_ctx} is larger than the model's training context ({config.n_ctx_train})")
    if backend == "numpy":
        from lessons.l08_transformer import NumpyLlama

        return NumpyLlama(gguf, n_ctx, kv_type=kv_type), n_ctx
    if backend == "cuda":
        from cpp_core.cuda import CudaLlama  # the driver and NVRTC are looked for only now

        return CudaLlama(gguf, n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads or os.cpu_count() or 1,
                         kv_type=kv_type), n_ctx
    if backend != "cpp":
        raise ValueError(f"backend must be 'cpp', 'numpy' or 'cuda', got {backend!r}")
    from cpp_core.model import CppLlama  # ImportError when the C++ core is not built

    return CppLlama(gguf, n_ctx, n_threads or os.cpu_count() or 1, kv_type=kv_type), n_ctx


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class Engine:
    def __init__(self, model, tokenizer, metadata: dict | None = None, chat_template: str | None = None,
                 name: str = "model"):
        self.model, self.tok, self.name = model, tokenizer, name
        self.metadata = metadata or {}
        self._template_override = chat_template
        self._template = None
        # One generation at a time: the model and its cache are one state. A plain Lock, not an RLock: a
        # streamed generation holds it across its yields, and a server may resume it from another thread
        # than the one that started it (a Lock may be released by any thread).
        self.lock = threading.Lock()
        self.cached: list[int] = []  # the tokens whose keys/values the KV cache holds, positions 0..
        self.n_evaluated = 0  # every token ever evaluated (prompt and decode): tests check prefix reuse with it

    @classmethod
    def load(cls, path: str, *, backend: str = "cpp", n_ctx: int = 0, n_threads: int | None = None,
             kv_type: str = "f16", chat_template: str | None = None) -> Engine:
        from lessons.l01_gguf import GGUFFile
        from lessons.l02_tokenizer import Tokenizer

        gguf = GGUFFile(path)
        tok = Tokenizer.from_metadata(gguf.metadata)
        model, _ = load_model(gguf, backend, n_ctx, n_threads, kv_type)
        return cls(model, tok, gguf.metadata, chat_template, name=str(path))

    @property
    def n_ctx(self) -> int:
        return self.model.n_ctx

    # ---- text <-> tokens ----
    def tokenize(self, text: str, add_bos: bool | None = None, special: bool = True) -> list[int]:
        return self.tok.encode(text, add_bos=add_bos, parse_special=special)

    def detokenize(self, ids, special: bool = False) -> bytes:
        pieces = [self.tok.token_bytes(int(t), special) for t in ids]
        if self.tok.add_space_prefix and pieces and pieces[0].startswith(b" "):
            pieces[0] = pieces[0][1:]  # SentencePiece's added space, as tok.decode drops it
        return b"".join(pieces)

    def special_text(self, tid: int | None) -> str:
        return self.tok.tokens[tid] if tid is not None else ""

    # ---- chat ----
    def chat_prompt(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The model's template rendered for these messages (ChatTemplateError if there is none)."""
        if self._template is None:
            self._template = compile_template(template_source(self.metadata, self._template_override))
        return render(self._template, messages, add_generation_prompt,
                      bos_token=self.special_text(self.tok.bos_id), eos_token=self.special_text(self.tok.eos_id))

    # ---- evaluation with prefix reuse ----
    # --8<-- [start:prefix]
    def reusable_prefix(self, ids: list[int]) -> int:
        """How many of ids the cache already holds (at most len(ids) - 1: the last is evaluated for its logits)."""
        return min(common_prefix(self.cached, ids), len(ids) - 1)

    def evaluate(self, ids: list[int]) -> np.ndarray:
        """Logits [n_vocab] after ids, evaluating only what the cache does not hold yet."""
        ids = [int(t) for t in ids]
        self.check_fits(ids)
        with self.lock:
            n_past = self.reusable_prefix(ids)
            self.cached = ids[:n_past]
            logits = self.model.forward(np.asarray(ids[n_past:], np.int32), n_past, last_only=True)[-1]
            self.cached = ids
            self.n_evaluated += len(ids) - n_past
            return logits
    # --8<-- [end:prefix]

    def reset(self) -> None:
        with self.lock:
            self.model.reset()
            self.cached = []

    def check_fits(self, ids: list[int]) -> None:
        if not ids:
            raise ValueError("the prompt is empty (no tokens)")
        if len(ids) >= self.n_ctx:
            raise ContextOverflow(f"the prompt is {len(ids)} tokens, the context only {self.n_ctx}: "
                                  "shorten the prompt or raise the context size")

    def generate(self, ids: list[int], max_tokens: int = -1, params: SamplingParams | None = None,
                 stop: list[str] | tuple = (), ignore_eos: bool = False, strip_stop: bool = True,
                 penalize_prompt: bool = True) -> Generation:
        """A Generation: iterate it for text pieces. max_tokens -1 = until the context is full.
        penalize_prompt=False: repetition penalties count the new tokens only (llama-cpp-python's rule)."""
        return Generation(self, ids, max_tokens, params or SamplingParams(), stop, ignore_eos, strip_stop,
                          penalize_prompt)


class Generation:
    """One call's generation: iterable (text pieces), then finish_reason, text, tokens, stats."""

    def __init__(self, engine: Engine, ids, max_tokens: int, params: SamplingParams, stop, ignore_eos: bool,
                 strip_stop: bool, penalize_prompt: bool = True):
        self.engine, self.ids = engine, [int(t) for t in ids]
        engine.check_fits(self.ids)  # eagerly: the API raises ValueError at the call, the server answers 400
        if max_tokens < -1:
            raise ValueError(f"max_tokens must be -1 or more, got {max_tokens}")
        self.max_tokens, self.params, self.ignore_eos, self.strip_stop = max_tokens, params, ignore_eos, strip_stop
        self.penalize_prompt = penalize_prompt
        self.stop = [s for s in ([stop] if isinstance(stop, str) else list(stop or ())) if s]
        self.text = ""  # what was handed out
        self.stats = GenerationStats()
        self.finish_reason: str | None = None  # "stop" (EOG token or stop string) or "length"
        self.stopped_by = ""  # "eog", "stop_string", "n_predict", "context_full" or "cancelled"
        self.n_past = 0  # prompt tokens the cache already held
        self._cancel = threading.Event()
        self._iter: Iterator[str] | None = None
        self.thread = threading.get_ident()  # who asked for it (the API closes its own abandoned streams)

    @property
    def tokens(self) -> list[int]:
        return self.stats.tokens

    @property
    def n_evaluated(self) -> int:
        """Prompt tokens this call evaluated (the rest came from the cache)."""
        return self.stats.n_prompt

    def cancel(self) -> None:
        """Stop after the current token (safe from any thread)."""
        self._cancel.set()

    def __iter__(self) -> Iterator[str]:
        if self._iter is None:
            self._iter = self._run()
        return self._iter

    def close(self) -> None:
        if self._iter is not None:
            self._iter.close()  # runs _run's finally: the lock is released, the cache bookkeeping done

    def run(self) -> str:
        """Generate to the end; the whole text."""
        for _ in self:
            pass
        return self.text

    # --- the loop: tokens -> text, stop strings, the cache's bookkeeping ---
    # --8<-- [start:run]
    def _run(self) -> Iterator[str]:
        eng, ids, stats = self.engine, self.ids, self.stats
        with eng.lock:
            self.n_past = n_past = eng.reusable_prefix(ids)
            eng.cached = ids[:n_past]  # what stays valid whatever happens next
            decoder = eng.tok.stream_decoder()  # special tokens decode to nothing
            stop_ids = set() if self.ignore_eos else set(eng.tok.eot_ids)
            tokens = generate_tokens(eng.model, ids, self.max_tokens, Sampler(self.params), stop_ids, n_past, stats,
                                     self.penalize_prompt)
            full, sent = "", 0  # all decoded text; how much of it was handed out
            try:
                for _token in tokens:
                    before = len(full)
                    full += decoder.push(_token)
                    hit = self._find_stop(full, before)
                    if hit is not None:
                        end = hit[0] if self.strip_stop else hit[0] + len(hit[1])
                        if end > sent:
                            self.text += full[sent:end]
                            yield full[sent:end]
                        self.finish_reason, self.stopped_by = "stop", "stop_string"
                        return
                    hold = self._partial_stop(full, sent) if self.strip_stop else 0
                    if len(full) - hold > sent:
                        piece, sent = full[sent:len(full) - hold], len(full) - hold
                        self.text += piece
                        yield piece
                    if self._cancel.is_set():
                        self.finish_reason, self.stopped_by = "stop", "cancelled"
                        return
                full += decoder.flush()
                if len(full) > sent:
                    self.text += full[sent:]
                    yield full[sent:]
                self.stopped_by = "eog" if stats.stop_reason == "stop_id" else stats.stop_reason
                self.finish_reason = "stop" if stats.stop_reason == "stop_id" else "length"
            finally:
                tokens.close()
                if self.finish_reason is None:  # the consumer left the loop, or an exception (Ctrl-C)
                    self.finish_reason, self.stopped_by = "stop", "cancelled"
                prefilled = bool(stats.tokens) or stats.stop_reason == "stop_id"
                if prefilled:  # the prompt, then each new token fed back (the last one never is)
                    eng.cached = ids + stats.tokens[:stats.n_eval]
                    eng.n_evaluated += stats.n_prompt + stats.n_eval
                else:
                    stats.n_prompt = 0
    # --8<-- [end:run]

    def _find_stop(self, text: str, before: int) -> tuple[int, str] | None:
        """The earliest stop string in text that ends after `before` (new text): (index, string)."""
        best = None
        for s in self.stop:
            i = text.find(s, max(0, before - len(s) + 1))
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        return best

    def _partial_stop(self, text: str, sent: int) -> int:
        """Characters at the end of text that could begin a stop string: held back until it is clear."""
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text) - sent), hold, -1):
                if text.endswith(s[:k]):
                    hold = k
                    break
        return hold
