"""A Python API in llama-cpp-python's shape, so code written for its `Llama` runs unchanged:

    from llama_lessons import Llama
    llm = Llama(model_path="model.gguf", n_ctx=2048)          # model_path=None: the default model
    out = llm("Q: Name the planets. A:", max_tokens=32, stop=["Q:", "\\n"])
    out["choices"][0]["text"]
    out = llm.create_chat_completion(messages=[{"role": "user", "content": "Hi"}])
    out["choices"][0]["message"]["content"]
    for chunk in llm.create_chat_completion(messages=..., stream=True):
        print(chunk["choices"][0]["delta"].get("content", ""), end="")

The return values are OpenAI's `text_completion` / `chat.completion` objects (plain dicts), or iterators
of `text_completion` / `chat.completion.chunk` objects when streaming. The signatures follow
llama-cpp-python 0.3 (same names, order and defaults); its options that need what this project lacks
(grammars, logprobs, mirostat, typical-p, tail-free sampling, suffixes, tools) are accepted only at their
defaults and refused with a ValueError otherwise. A prompt over the context is a ValueError.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np

from lessons.l09_sampling import SamplingParams
from lessons.l10b_chat_template import validate_messages
from llama_lessons.engine import Engine

LLAMA_DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's "random seed"


def _default_model_path() -> str:
    from lessons.default_model import INSTALL_HINT, default_model_path

    path = default_model_path()
    if path is None:
        raise ValueError(f"no model_path given and the default model is not installed: {INSTALL_HINT}")
    return str(path)


def _stop_list(stop) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop):
        raise ValueError("stop must be a string or a list of strings")
    return list(stop)


def _logit_bias(bias) -> dict[int, float]:
    if not bias:
        return {}
    if not isinstance(bias, dict):
        raise ValueError("logit_bias must be a mapping of token id to bias")
    out = {}
    for k, v in bias.items():
        try:
            out[int(k)] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"logit_bias: {k!r}: {v!r} is not a token id and a number") from None
    return out


def _unsupported(**given) -> None:
    """Options of llama-cpp-python this project does not implement: fine at their defaults only."""
    for name, (value, default) in given.items():
        if value != default:
            raise ValueError(f"{name}={value!r} is not supported by llama_lessons")


class Llama:
    def __init__(self, model_path: str | None = None, *, n_ctx: int = 512, n_threads: int | None = None,
                 seed: int = LLAMA_DEFAULT_SEED, backend: str = "cpp", verbose: bool = True,
                 chat_template: str | None = None, use_mmap: bool = True, use_mlock: bool = False,
                 n_gpu_layers: int = 0, n_batch: int = 512, n_ubatch: int = 512, last_n_tokens_size: int = 64,
                 **kwargs):
        """Load a GGUF model. n_ctx 0 = the model's training context. backend: "cpp" (fast) or "numpy" (the
        lessons). seed: the default seed of sampling calls (-1 or LLAMA_DEFAULT_SEED = random). verbose prints
        a load line and per-call timings to stderr, as llama-cpp-python's verbose logs do. The GPU/batch/mmap
        options are accepted for compatibility and have no effect here (weights are always memory-mapped)."""
        from lessons.l01_gguf import GGUFFile
        from lessons.l08_transformer import LlamaConfig

        self.model_path = model_path if model_path is not None else _default_model_path()
        if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 0:
            raise ValueError(f"n_ctx must be 0 or a positive integer, got {n_ctx!r}")
        self.verbose, self.last_n_tokens_size = verbose, last_n_tokens_size
        gguf = GGUFFile(self.model_path)
        n_ctx = n_ctx or LlamaConfig.from_gguf(gguf).n_ctx_train  # llama-cpp-python: 0 = from the model
        from lessons.l02_tokenizer import Tokenizer
        from llama_lessons.engine import load_model

        model, n_ctx = load_model(gguf, backend, n_ctx, n_threads, "f16")
        self.engine = Engine(model, Tokenizer.from_metadata(gguf.metadata), gguf.metadata, chat_template,
                             name=self.model_path)
        self.metadata = {k: str(v) for k, v in gguf.metadata.items() if not isinstance(v, list)}
        self._streams: list = []  # generations handed out as streams, closed when a new call starts
        self._seed = seed
        self._rng = np.random.default_rng(None if seed in (-1, LLAMA_DEFAULT_SEED) else seed)
        if verbose:
            print(f"llama_lessons: loaded {self.model_path} ({backend} backend, n_ctx {n_ctx})", file=sys.stderr)

    # ---- llama-cpp-python's small methods ----
    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        """UTF-8 bytes -> ids. add_bos=True adds BOS (and EOS) where the model's metadata asks for them."""
        if isinstance(text, str):
            raise TypeError("tokenize() takes UTF-8 bytes, as llama-cpp-python's does: text.encode('utf-8')")
        return self.engine.tokenize(bytes(text).decode("utf-8", errors="replace"), None if add_bos else False, special)

    def detokenize(self, tokens: list[int], prev_tokens: list[int] | None = None, special: bool = False) -> bytes:
        """ids -> UTF-8 bytes; llama-cpp-python's rule: one leading space goes when the first token is BOS."""
        out = b"".join(self.engine.tok.token_bytes(int(t), special) for t in tokens)
        return out[1:] if tokens and tokens[0] == self.token_bos() and out[:1] == b" " else out

    def n_ctx(self) -> int:
        return self.engine.n_ctx

    def n_vocab(self) -> int:
        return self.engine.tok.n_vocab

    def token_bos(self) -> int:
        return -1 if self.engine.tok.bos_id is None else self.engine.tok.bos_id

    def token_eos(self) -> int:
        return -1 if self.engine.tok.eos_id is None else self.engine.tok.eos_id

    def set_seed(self, seed: int) -> None:
        self._seed = seed
        self._rng = np.random.default_rng(None if seed in (-1, LLAMA_DEFAULT_SEED) else seed)

    def reset(self) -> None:
        for g in [g for g in self._streams if g.thread == threading.get_ident()]:
            g.close()
        self.engine.reset()

    # ---- completions ----
    def _generate(self, ids, max_tokens, params, stop, stream: bool):
        """engine.generate, after closing this thread's streams that were left unfinished: one thread cannot
        wait for itself, and llama-cpp-python lets a new call start while an old stream is not exhausted."""
        me = threading.get_ident()
        for old in [g for g in self._streams if g.thread == me]:
            old.close()
        self._streams = [g for g in self._streams if g.finish_reason is None and g.thread != me]
        # llama-cpp-python's sampler only counts the tokens it generates for the repetition penalties
        gen = self.engine.generate(ids, max_tokens, params, stop, penalize_prompt=False)
        if stream:
            self._streams.append(gen)
        return gen

    def _params(self, temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty, frequency_penalty,
                logit_bias, seed) -> SamplingParams:
        for name, value in (("temperature", temperature), ("top_p", top_p), ("min_p", min_p),
                            ("repeat_penalty", repeat_penalty), ("presence_penalty", presence_penalty),
                            ("frequency_penalty", frequency_penalty)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"{name} must be a number, got {value!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise ValueError(f"top_k must be an integer, got {top_k!r}")
        for name, value in (("top_p", top_p), ("min_p", min_p)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if not 0.0 < repeat_penalty < float("inf"):
            raise ValueError(f"repeat_penalty must be above 0, got {repeat_penalty!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if seed is None or seed in (-1, LLAMA_DEFAULT_SEED):
            seed = int(self._rng.integers(0, 2**32))
        return SamplingParams(temp=float(temperature), top_k=top_k, top_p=float(top_p), min_p=float(min_p),
                              repeat_penalty=float(repeat_penalty), repeat_last_n=self.last_n_tokens_size,
                              presence_penalty=float(presence_penalty), frequency_penalty=float(frequency_penalty),
                              logit_bias=_logit_bias(logit_bias), seed=int(seed))

    def _prompt_ids(self, prompt) -> list[int]:
        if isinstance(prompt, str):
            # llama-cpp-python: special tokens parsed; an empty prompt is just BOS
            return self.engine.tokenize(prompt) if prompt else [self.token_bos()]
        if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            bad = [t for t in prompt if not 0 <= t < self.n_vocab()]
            if bad:
                raise ValueError(f"token id {bad[0]} is out of range for a vocabulary of {self.n_vocab()}")
            return list(prompt)
        raise ValueError("prompt must be a string or a list of token ids")

    def _max_tokens(self, max_tokens, n_prompt: int) -> int:
        """llama-cpp-python: None or <= 0 = as many as the context holds; never past the context."""
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
            raise ValueError(f"max_tokens must be an integer, got {max_tokens!r}")
        room = self.n_ctx() - n_prompt
        return room if max_tokens is None or max_tokens <= 0 else min(max_tokens, room)

    def create_completion(self, prompt, suffix=None, max_tokens=16, temperature=0.8, top_p=0.95, min_p=0.05,
                          typical_p=1.0, logprobs=None, echo=False, stop=[], frequency_penalty=0.0,  # noqa: B006
                          presence_penalty=0.0, repeat_penalty=1.0, top_k=40, stream=False, seed=None, tfs_z=1.0,
                          mirostat_mode=0, mirostat_tau=5.0, mirostat_eta=0.1, model=None, stopping_criteria=None,
                          logits_processor=None, grammar=None, logit_bias=None):
        """Continue the prompt: a `text_completion` dict, or an iterator of them when stream=True."""
        _unsupported(suffix=(suffix, None), logprobs=(logprobs, None), typical_p=(typical_p, 1.0),
                     tfs_z=(tfs_z, 1.0), mirostat_mode=(mirostat_mode, 0), grammar=(grammar, None),
                     stopping_criteria=(stopping_criteria, None), logits_processor=(logits_processor, None))
        ids = self._prompt_ids(prompt)
        gen = self._generate(ids, self._max_tokens(max_tokens, len(ids)),
                             self._params(temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty,
                                          frequency_penalty, logit_bias, seed), _stop_list(stop), stream)
        head = {"id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time()),
                "model": model or self.model_path}
        prefix = (prompt if isinstance(prompt, str) else self.detokenize(ids).decode("utf-8", "replace")) if echo else ""
        if stream:
            return self._stream_completion(gen, head, prefix)
        text = gen.run()
        self._timings(gen)
        return {**head, "choices": [{"text": prefix + text, "index": 0, "logprobs": None,
                                     "finish_reason": gen.finish_reason}],
                "usage": self._usage(gen)}

    def __call__(self, prompt, suffix=None, max_tokens=16, temperature=0.8, top_p=0.95, min_p=0.05, typical_p=1.0,
                 logprobs=None, echo=False, stop=[], frequency_penalty=0.0, presence_penalty=0.0,  # noqa: B006
                 repeat_penalty=1.0, top_k=40, stream=False, seed=None, tfs_z=1.0, mirostat_mode=0,
                 mirostat_tau=5.0, mirostat_eta=0.1, model=None, stopping_criteria=None, logits_processor=None,
                 grammar=None, logit_bias=None):
        """Same as create_completion."""
        return self.create_completion(prompt, suffix, max_tokens, temperature, top_p, min_p, typical_p, logprobs,
                                      echo, stop, frequency_penalty, presence_penalty, repeat_penalty, top_k, stream,
                                      seed, tfs_z, mirostat_mode, mirostat_tau, mirostat_eta, model,
                                      stopping_criteria, logits_processor, grammar, logit_bias)

    def _stream_completion(self, gen, head, prefix) -> Iterator[dict]:
        def chunk(text, finish_reason=None):
            return {**head, "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}]}
        try:
            if prefix:
                yield chunk(prefix)
            for piece in gen:
                yield chunk(piece)
            yield chunk("", gen.finish_reason)
            self._timings(gen)
        finally:
            gen.close()  # a consumer that stops early releases the model

    # ---- chat ----
    def create_chat_completion(self, messages, functions=None, function_call=None, tools=None, tool_choice=None,
                               temperature=0.2, top_p=0.95, top_k=40, min_p=0.05, typical_p=1.0, stream=False,
                               stop=[], seed=None, response_format=None, max_tokens=None,  # noqa: B006
                               presence_penalty=0.0, frequency_penalty=0.0, repeat_penalty=1.0, tfs_z=1.0,
                               mirostat_mode=0, mirostat_tau=5.0, mirostat_eta=0.1, model=None,
                               logits_processor=None, grammar=None, logit_bias=None, logprobs=None,
                               top_logprobs=None):
        """Answer the conversation with the model's chat template: a `chat.completion` dict, or an iterator of
        `chat.completion.chunk` dicts when stream=True (first the role, then the content, then finish_reason)."""
        _unsupported(functions=(functions, None), function_call=(function_call, None), tools=(tools, None),
                     tool_choice=(tool_choice, None), response_format=(response_format, None),
                     typical_p=(typical_p, 1.0), tfs_z=(tfs_z, 1.0), mirostat_mode=(mirostat_mode, 0),
                     logits_processor=(logits_processor, None), grammar=(grammar, None),
                     logprobs=(bool(logprobs), False), top_logprobs=(top_logprobs, None))
        prompt = self.engine.chat_prompt(validate_messages(messages), add_generation_prompt=True)
        ids = self.engine.tokenize(prompt)
        gen = self._generate(ids, self._max_tokens(max_tokens, len(ids)),
                             self._params(temperature, top_p, top_k, min_p, repeat_penalty, presence_penalty,
                                          frequency_penalty, logit_bias, seed), _stop_list(stop), stream)
        head = {"id": f"chatcmpl-{uuid.uuid4()}", "object": "chat.completion", "created": int(time.time()),
                "model": model or self.model_path}
        if stream:
            return self._stream_chat(gen, {**head, "object": "chat.completion.chunk"})
        text = gen.run()
        self._timings(gen)
        return {**head, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "logprobs": None, "finish_reason": gen.finish_reason}],
                "usage": self._usage(gen)}

    def _stream_chat(self, gen, head) -> Iterator[dict]:
        def chunk(delta, finish_reason=None):
            return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
        try:
            yield chunk({"role": "assistant"})
            for piece in gen:
                yield chunk({"content": piece})
            yield chunk({}, gen.finish_reason)
            self._timings(gen)
        finally:
            gen.close()

    # ---- reporting ----
    @staticmethod
    def _usage(gen) -> dict:
        n_prompt, n_completion = len(gen.ids), len(gen.tokens)
        return {"prompt_tokens": n_prompt, "completion_tokens": n_completion, "total_tokens": n_prompt + n_completion}

    def _timings(self, gen) -> None:
        if self.verbose:
            s = gen.stats
            print(f"llama_lessons: prompt eval {s.prompt_ms:.2f} ms / {s.n_prompt} tokens "
                  f"({gen.n_past} cached), eval {s.eval_ms:.2f} ms / {s.n_eval} runs", file=sys.stderr)


__all__ = ["Llama", "LLAMA_DEFAULT_SEED"]
