"""run.py's generation modes on the engine: raw completion and chat (-cnv), plus llama.cpp's flag helpers.

Chat, turn by turn, as llama-cli -cnv does it:
  1. the conversation so far, as tokens, is in the KV cache (the engine remembers which);
  2. the user's line becomes a message; the template renders the conversation before it and after it, and
     the difference (`<|im_end|>\\n<|im_start|>user\\n...<|im_start|>assistant\\n` for ChatML) is tokenized
     and appended to the conversation's tokens: only those, plus the reply's last token that was never fed
     back, are evaluated;
  3. the reply streams; it ends at an end-of-generation token, a reverse prompt, -n tokens or a full context.
A conversation that outgrows the context stops with a message, or with --context-shift drops its oldest
turns after the system prompt and goes on (the engine then re-evaluates what follows the system prompt).
"""

from __future__ import annotations

import math
import re
import sys

# (numpy and jinja2 are imported where they are used: run.py imports this module before it has set the
# BLAS thread count, which numpy reads once, at import)

COLOR_PROMPT, COLOR_USER, COLOR_RESET = "\x1b[33m", "\x1b[1m\x1b[32m", "\x1b[0m"  # llama.cpp's: yellow, bold green


class ChatStop(Exception):
    """The conversation cannot go on (full context without --context-shift): a one-line message, exit 1."""


# ---- llama.cpp's flags -------------------------------------------------------------------------

KV_TYPES_HERE = ("f16", "f32")
KV_TYPES_LLAMA_CPP = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def add_flags(p) -> None:
    """Chat and llama-cli's sampling/IO flags (run.py's parser calls this)."""
    chat = p.add_argument_group("chat (the model's own template)")
    cnv = chat.add_mutually_exclusive_group()
    cnv.add_argument("-cnv", "--conversation", action="store_true", help="chat: a '> ' prompt, turn after turn")
    cnv.add_argument("-no-cnv", "--no-conversation", action="store_true", help="raw completion (the default)")
    chat.add_argument("-st", "--single-turn", action="store_true", help="chat for one turn, then exit")
    sys_group = chat.add_mutually_exclusive_group()
    sys_group.add_argument("-sys", "--system-prompt", help="chat: the system message")
    sys_group.add_argument("-sysf", "--system-prompt-file", help="chat: read the system message from a file")
    chat.add_argument("--chat-template-file", metavar="FILE", help="a Jinja chat template instead of the model's")
    chat.add_argument("--context-shift", action="store_true",
                      help="chat: when the context is full, drop the oldest turns after the system prompt")
    gen = p.add_argument_group("llama-cli's generation flags")
    gen.add_argument("-r", "--reverse-prompt", action="append", metavar="TEXT",
                     help="stop when the output ends with TEXT (repeatable)")
    gen.add_argument("-e", "--escape", action="store_true", help="process \\n, \\t, \\\\... in the prompt")
    gen.add_argument("--presence-penalty", type=float, default=0.0, help="subtract this once from seen tokens (0 = off)")
    gen.add_argument("--frequency-penalty", type=float, default=0.0,
                     help="subtract this times the count from seen tokens (0 = off)")
    gen.add_argument("--logit-bias", action="append", metavar="ID(+/-)BIAS",
                     help="add BIAS to token ID's logit, e.g. 15043+1 or 2-inf (repeatable)")
    gen.add_argument("--no-mmap", action="store_true", help="read the weights into memory instead of mapping the file")
    gen.add_argument("--mlock", action="store_true", help="keep the model in RAM (where the system allows it)")
    gen.add_argument("--color", action="store_true", help="colour the prompt and the user's input")
    noop = p.add_argument_group("llama.cpp flags that do not apply here (accepted with a warning)")
    noop.add_argument("-fa", "--flash-attn", nargs="?", const="on", metavar="on|off|auto")
    noop.add_argument("-b", "--batch-size", type=int)
    noop.add_argument("-ub", "--ubatch-size", type=int)
    noop.add_argument("--no-warmup", action="store_true")


def check_flags(args) -> None:
    """Raise ValueError (a usage error) for a bad value of these flags."""
    for name in ("cache_type_k", "cache_type_v"):
        value = getattr(args, name)
        if value not in KV_TYPES_HERE:
            what = "not in this build" if value in KV_TYPES_LLAMA_CPP else "unknown type"
            raise ValueError(f"--{name.replace('_', '-')} {value}: {what}; the KV cache types here are "
                             f"{', '.join(KV_TYPES_HERE)}")
    for name in ("presence_penalty", "frequency_penalty"):
        if not math.isfinite(getattr(args, name)):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number")
    parse_logit_bias(args.logit_bias)
    if args.flash_attn is not None and args.flash_attn not in ("on", "off", "auto"):
        raise ValueError(f"--flash-attn must be on, off or auto, got {args.flash_attn!r}")
    for name in ("batch_size", "ubatch_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be 1 or more, got {value}")
    if args.reverse_prompt and any(not r for r in args.reverse_prompt):
        raise ValueError("--reverse-prompt must not be empty")
    chat_only = [f for f, on in (("-sys", args.system_prompt is not None), ("-sysf", args.system_prompt_file),
                                 ("--chat-template-file", args.chat_template_file), ("-st", args.single_turn),
                                 ("--context-shift", args.context_shift)) if on]
    if args.no_conversation and chat_only:
        raise ValueError(f"{chat_only[0]} is for chat; it does not go with -no-cnv")
    if chat_mode(args) and (args.inspect or args.tokenize or args.perplexity):
        raise ValueError("chat (-cnv) does not go with --inspect, --tokenize or --perplexity")


def chat_mode(args) -> bool:
    """-cnv, or a chat-only flag (-st, -sys, -sysf, --chat-template-file) without -no-cnv."""
    return not args.no_conversation and bool(
        args.conversation or args.single_turn or args.system_prompt is not None or args.system_prompt_file
        or args.chat_template_file)


def noop_warnings(args) -> list[str]:
    """One line for each accepted flag that changes nothing here."""
    out = []
    if args.flash_attn not in (None, "off", "auto"):
        out.append("-fa: this build has no flash attention kernel; attention runs as usual")
    if args.batch_size is not None or args.ubatch_size is not None:
        out.append("-b/-ub: the prompt is evaluated in one batch here; the batch size is ignored")
    if args.no_warmup:
        out.append("--no-warmup: there is no warm-up run to skip")
    if args.context_shift and not chat_mode(args) and not args.no_conversation:
        out.append("--context-shift: raw completion stops at a full context here; the shift is for chat (-cnv)")
    return out


def read_file_text(path: str, flag: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(f"{path}: not UTF-8 text ({flag})") from None
    except OSError as e:
        raise OSError(f"{path}: {e.strerror or e} ({flag})") from None


def read_weights_into_memory(gguf) -> None:
    """--no-mmap: copy every tensor out of the file's mapping, then unmap it (llama.cpp reads instead of mmap)."""
    import numpy as np

    for t in gguf.tensors.values():
        t.data = np.array(t.data)  # a private copy in anonymous memory
    try:
        gguf._mmap.close()
    except (BufferError, AttributeError):
        pass  # a view still alive: the mapping goes when it does


def lock_memory(gguf) -> str | None:
    """--mlock: lock the model's weights in RAM (mlock on each tensor); a warning text when the system refuses."""
    import ctypes
    import ctypes.util
    import os

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        for t in gguf.tensors.values():
            if libc.mlock(ctypes.c_void_p(t.data.ctypes.data), ctypes.c_size_t(t.data.nbytes)) != 0:
                e = ctypes.get_errno()
                return f"--mlock: could not lock the model in RAM ({os.strerror(e)}; see ulimit -l)"
    except (OSError, AttributeError) as e:
        return f"--mlock: not available on this system ({e})"
    return None


# ---- llama.cpp's flag values -------------------------------------------------------------------

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "'": "'", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f",
            "v": "\v", "?": "?"}


def process_escapes(text: str) -> str:
    """-e: \\n \\r \\t \\' \\" \\\\ (and \\a \\b \\f \\v \\?, \\xHH) become the characters; others stay as written."""
    def one(m: re.Match) -> str:
        s = m.group(0)
        if s[1] == "x":
            return chr(int(s[2:], 16)) if len(s) == 4 else s
        return _ESCAPES.get(s[1], s)
    return re.sub(r"\\(x[0-9a-fA-F]{2}|x|.)", one, text, flags=re.S)


def parse_logit_bias(values: list[str] | None) -> dict[int, float]:
    """--logit-bias TOKEN_ID(+/-)BIAS, e.g. 15043+1, 15043-1 or 2-inf (bans token 2)."""
    out = {}
    for v in values or ():
        m = re.fullmatch(r"\s*(\d+)\s*([+-])\s*(inf|infinity|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)\s*",
                         v, flags=re.I)
        if m is None:
            raise ValueError(f"--logit-bias {v!r}: expected TOKEN_ID+BIAS or TOKEN_ID-BIAS, e.g. 15043+1 or 2-inf")
        bias = float(m.group(3)) * (-1.0 if m.group(2) == "-" else 1.0)
        if math.isinf(bias) and bias > 0:
            raise ValueError(f"--logit-bias {v!r}: +inf is not a bias (use -inf to ban a token)")
        out[int(m.group(1))] = bias
    return out


def sampling_params(args, seed: int, n_vocab: int):
    from lessons.l09_sampling import SamplingParams

    bias = parse_logit_bias(args.logit_bias)
    bad = [t for t in bias if t >= n_vocab]
    if bad:
        raise ValueError(f"--logit-bias: token {bad[0]} is out of range for a vocabulary of {n_vocab}")
    return SamplingParams(temp=args.temp, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                          repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n,
                          presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty,
                          logit_bias=bias, seed=seed)


def print_timings(stats, err, n_past: int | None = None) -> None:
    """llama.cpp's words, so people can compare the two outputs line by line."""
    def line(label, ms, n, unit, extra=""):
        per = ms / n if n else 0.0
        rate = 1000.0 * n / ms if ms > 0 else 0.0
        print(f"{label} = {ms:10.2f} ms / {n:5} {unit} ({per:8.2f} ms per token, "
              f"{rate:8.2f} tokens per second){extra}", file=err)
    line("prompt eval time", stats.prompt_ms, stats.n_prompt, "tokens",
         "" if n_past is None else f", {n_past} tokens from the cache")
    line("       eval time", stats.eval_ms, stats.n_eval, "runs  ")


# ---- raw completion (the default) ----------------------------------------------------------------

def run_completion(engine, ids: list[int], text: str, params, args, out, err) -> None:
    """Echo the prompt, stream the continuation; stop at EOG (unless --ignore-eos), -n, a reverse prompt."""
    out.write(f"{COLOR_PROMPT}{text}{COLOR_RESET}" if args.color else text)
    out.flush()
    gen = engine.generate(ids, args.n_predict, params, stop=args.reverse_prompt or (),
                          ignore_eos=args.ignore_eos, strip_stop=False)  # llama-cli prints the reverse prompt
    for piece in gen:
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    print_timings(gen.stats, err)


# ---- chat ----------------------------------------------------------------------------------------

class Chat:
    """One conversation's messages and their tokens, on an engine."""

    def __init__(self, engine, system: str | None, context_shift: bool):
        self.engine, self.context_shift = engine, context_shift
        self.messages: list[dict] = [{"role": "system", "content": system}] if system else []
        self.n_keep = len(self.messages)  # messages a context shift never drops
        self.ids: list[int] = []  # the conversation's tokens so far, as the model saw (or will see) them
        self.last_reply, self.last_eog = None, None
        engine.chat_prompt(self.messages + [{"role": "user", "content": "x"}])  # no template: fail before any turn

    # --8<-- [start:turn]
    def turn_ids(self, user: str) -> list[int]:
        """The tokens of the conversation with this user message and the assistant's turn opened."""
        from lessons.l10b_chat_template import ChatTemplateError

        eng = self.engine
        try:
            past = eng.chat_prompt(self.messages, add_generation_prompt=False) if self.messages else ""
        except ChatTemplateError:  # e.g. a template that wants a user message last: render it all below
            past = None
        self.messages.append({"role": "user", "content": user})
        new = eng.chat_prompt(self.messages, add_generation_prompt=True)
        tail = self._tail(past) if past is not None else None
        if not self.ids or tail is None or not new.startswith(past):
            return eng.tokenize(new)  # first turn (or a template that rewrites the past): render it all
        return self.ids + eng.tokenize(tail + new[len(past):], add_bos=False)

    def _tail(self, past: str) -> str | None:
        """What the template wrote after the last reply ('<|im_end|>\\n'), less the EOG token the model
        sampled; None when the reply cannot be found at the end of the rendered past."""
        end = past.rfind(self.last_reply) if self.last_reply else -1
        if end < 0:
            return None
        tail = past[end + len(self.last_reply):]
        if self.last_eog and tail.startswith(self.last_eog):
            tail = tail[len(self.last_eog):]
        return tail
    # --8<-- [end:turn]

    def fit(self, ids: list[int]) -> list[int]:
        """ids if they leave room to answer; else drop old turns (--context-shift) or stop."""
        n_ctx = self.engine.n_ctx
        while len(ids) >= n_ctx:
            if not self.context_shift:
                raise ChatStop(f"the conversation ({len(ids)} tokens) no longer fits the context ({n_ctx}); "
                               "start again with a larger --ctx-size, or use --context-shift")
            if len(self.messages) - self.n_keep <= 1:  # only the new message is left: it alone is too long
                raise ChatStop(f"the message is {len(ids)} tokens with the system prompt, the context only {n_ctx}")
            drop = 2 if len(self.messages) - self.n_keep > 2 else 1  # the oldest user message and its reply
            del self.messages[self.n_keep:self.n_keep + drop]
            ids = self.engine.tokenize(self.engine.chat_prompt(self.messages, add_generation_prompt=True))
        return ids

    def answered(self, ids: list[int], gen) -> None:
        """Record the reply: its text in the messages, its tokens (and the EOG token) in ids."""
        self.messages.append({"role": "assistant", "content": gen.text})
        eog = gen.stopped_by == "eog"
        self.last_reply, self.last_eog = gen.text, None
        self.ids = ids + gen.tokens
        if eog:  # the id that ended the reply: sampled (not in gen.tokens), and part of the conversation
            eog_id = self._eog_id()
            if eog_id is not None:
                self.ids.append(eog_id)
                self.last_eog = self.engine.tok.tokens[eog_id]

    def _eog_id(self) -> int | None:
        """The EOG token the template uses after a reply (the first EOG text found in a rendered reply)."""
        eng = self.engine
        probe = eng.chat_prompt(self.messages[:-1] + [{"role": "assistant", "content": "\x00"}], False)
        after = probe[probe.rfind("\x00") + 1:]
        for tid in sorted(eng.tok.eot_ids):
            if after.startswith(eng.tok.tokens[tid]):
                return tid
        return None


def read_line(inp, out, color: bool) -> str | None:
    """The user's line after a '> ' prompt (empty lines ask again); None at end of input or /exit."""
    while True:
        out.write("\n> " + (COLOR_USER if color else ""))
        out.flush()
        try:
            line = inp.readline()
        except KeyboardInterrupt:  # Ctrl-C at the prompt leaves, as in llama-cli
            line = ""
        except UnicodeDecodeError:
            raise ChatStop("the input is not UTF-8 text") from None
        finally:
            if color:
                out.write(COLOR_RESET)
                out.flush()
        if not line:  # end of input (Ctrl-D)
            return None
        line = line.rstrip("\r\n")
        if line.strip() == "/exit":
            return None
        if line.strip():
            return line


def run_chat(engine, first: str | None, params, args, out, err, inp=None) -> None:
    """-cnv: read a line, answer it, until /exit or the end of input. -st: one turn. -p: the first message."""
    from lessons.l10b_chat_template import ChatTemplateError

    inp = inp or sys.stdin
    try:
        _chat_loop(engine, first, params, args, out, err, inp)
    except ChatTemplateError as e:  # no template, or one that refuses the conversation: one line
        raise ChatStop(str(e)) from None


def _chat_loop(engine, first, params, args, out, err, inp) -> None:
    chat = Chat(engine, args.system_prompt, args.context_shift)
    pending = first
    while True:
        user = pending if pending is not None else read_line(inp, out, args.color)
        pending = None
        if user is None:
            break
        ids = chat.fit(chat.turn_ids(user))
        gen = engine.generate(ids, args.n_predict, params, stop=args.reverse_prompt or (),
                              ignore_eos=args.ignore_eos, strip_stop=False)
        try:
            for piece in gen:
                out.write(piece)
                out.flush()
        except KeyboardInterrupt:  # Ctrl-C stops the reply, not the program
            gen.close()
            out.write("\n[interrupted]")
        out.write("\n")
        out.flush()
        chat.answered(ids, gen)
        print_timings(gen.stats, err, gen.n_past)
        err.flush()
        if gen.stopped_by == "context_full" and not args.context_shift:
            raise ChatStop(f"the context ({engine.n_ctx} tokens) is full; start again with a larger --ctx-size, "
                           "or use --context-shift")
        if args.single_turn:
            break
