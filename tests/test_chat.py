"""Chat: the GGUF's template (lesson 10b) against a hand-written ChatML renderer, run.py -cnv's replies against
the greedy continuation of that independently rendered prompt (both backends), prefix reuse across turns
(through a real pseudo-terminal), the context running out, and templates that are missing or broken."""
import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer
from lessons.l09_sampling import Sampler, SamplingParams
from lessons.l10_generate import generate
from lessons.l10b_chat_template import ChatTemplateError, compile_template, render

REPO = Path(run.__file__).resolve().parent
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
# A plain ChatML template for the tiny models (no default system message).
CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def chatml(messages, default_system=None, generation_prompt=True) -> str:
    """The oracle: ChatML written out by hand, independent of jinja2 and of the file's template."""
    if default_system is not None and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": default_system}] + messages
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if generation_prompt else "")


def backend_model(backend, gguf, n_ctx):
    if backend == "numpy":
        from lessons.l08_transformer import NumpyLlama
        return NumpyLlama(gguf, n_ctx, kv_type="f16")
    cpp = pytest.importorskip("cpp_core.model", reason="C++ model not built")
    return cpp.CppLlama(gguf, n_ctx, 1, kv_type="f16")


def greedy_reply(path, prompt: str, n: int, backend: str, n_ctx: int, ban_eog=False) -> tuple[str, list[int], bool]:
    """(text, tokens, ended by EOG) of the greedy continuation of prompt, by lesson 10's loop on a fresh model."""
    gguf = GGUFFile(path)
    tok = Tokenizer.from_metadata(gguf.metadata)
    model = backend_model(backend, gguf, n_ctx)
    params = SamplingParams(temp=0, logit_bias={t: float("-inf") for t in tok.eot_ids} if ban_eog else {})
    stats = generate(model, tok.encode(prompt), n, Sampler(params), stop_ids=tok.eot_ids)
    return tok.decode(stats.tokens, special=False), stats.tokens, stats.stop_reason == "stop_id"


def call(*argv, stdin=""):
    out, err = io.StringIO(), io.StringIO()
    rc = run.main([str(a) for a in argv], out, err, io.StringIO(stdin))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def chat_model(tiny_llama):
    return tiny_llama(n_ctx_train=128, metadata={"tokenizer.chat_template": CHATML})


def eog_bans(path) -> list[str]:
    """--logit-bias flags banning every end-of-generation token: a random tiny model then always fills -n."""
    tok = Tokenizer.from_metadata(GGUFFile(path).metadata)
    return [a for t in sorted(tok.eot_ids) for a in ("--logit-bias", f"{t}-inf")]


# ---- the template -------------------------------------------------------------------------------

@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}],
])
def test_default_models_template_is_chatml(default_model, messages):
    template = compile_template(default_model.metadata["tokenizer.chat_template"])
    assert render(template, messages) == chatml(messages, SMOL_SYSTEM)
    assert render(template, messages, add_generation_prompt=False) == chatml(messages, SMOL_SYSTEM, False)


def test_rendered_prompt_is_tokenized_with_special_tokens(default_model):
    tok = Tokenizer.from_metadata(default_model.metadata)
    text = chatml([{"role": "user", "content": "Hi"}], SMOL_SYSTEM)
    ids = tok.encode(text)
    # <|im_start|> is token 1 and <|im_end|> token 2 (lesson 2's worked example): 3 turns opened, 2 closed
    assert ids[0] == 1 and ids.count(1) == 3 and ids.count(2) == 2
    assert 1 not in tok.encode(text, parse_special=False)  # as plain text they would be punctuation


@pytest.mark.parametrize("source,words", [
    ("{% if messages|length > 1 %}{{ raise_exception('one message only') }}{% endif %}", "one message only"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "failed"),          # the sandbox refuses
    ("{% for m in messages %}", "does not parse"),
    ("{{ messages[0].content.upper() }}{% set x = messages.append(1) %}", "failed"),  # immutable
])
def test_bad_or_hostile_templates(source, words):
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(ChatTemplateError, match=words):
        render(compile_template(source), msgs)


# ---- -cnv replies are the greedy continuation of the independently rendered prompt --------------

@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_cnv_reply_is_greedy_continuation_tiny(chat_model, backend):
    expected, _, _ = greedy_reply(chat_model, chatml([{"role": "user", "content": "hello"}]), 6, backend, 128)
    rc, out, err = call("-m", chat_model, "-cnv", "--temp", 0, "-n", 6, "-c", 128, "--backend", backend,
                        stdin="hello\n")
    assert rc == 0, err
    assert out == f"\n> {expected}\n\n> "  # prompt, reply, prompt, end of input


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_cnv_reply_is_greedy_continuation_default_model(default_model_path, backend):
    question = "What is the capital of France?"
    expected, _, eog = greedy_reply(default_model_path, chatml([{"role": "user", "content": question}], SMOL_SYSTEM),
                                    12, backend, 256)
    rc, out, err = call("-cnv", "--temp", 0, "-n", 12, "-c", 256, "--backend", backend, "-p", question, "-st")
    assert rc == 0, err
    assert out == expected + "\n" and "Paris" in expected


def test_system_prompt_and_single_turn(chat_model, tmp_path):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the fox"}]
    expected, _, _ = greedy_reply(chat_model, chatml(msgs), 5, "numpy", 128, ban_eog=True)
    bans = eog_bans(chat_model)
    rc, out, err = call("-m", chat_model, "-sys", "be brief", "-p", "the fox", "-st", "--temp", 0, "-n", 5,
                        "--backend", "numpy", *bans)
    assert rc == 0 and out == expected + "\n", err
    (tmp_path / "sys.txt").write_text("be brief")
    rc, out2, err = call("-m", chat_model, "-sysf", tmp_path / "sys.txt", "-st", "--temp", 0, "-n", 5,
                         "--backend", "numpy", *bans, stdin="the fox\n")
    assert rc == 0 and out2 == "\n> " + expected + "\n", err  # -st without -p: one line read, then exit


def test_chat_template_file_overrides(tiny_llama, tmp_path):
    path = tiny_llama(n_ctx_train=128)  # no template in the file
    rc, out, err = call("-m", path, "-cnv", "--backend", "numpy", "-n", 2, stdin="hi\n")
    assert rc == 1 and err.splitlines() == [err.strip()] and "no chat template" in err and "--chat-template-file" in err
    (tmp_path / "t.jinja").write_text(CHATML)
    expected, _, _ = greedy_reply(path, chatml([{"role": "user", "content": "hi"}]), 3, "numpy", 128, ban_eog=True)
    rc, out, err = call("-m", path, "--chat-template-file", tmp_path / "t.jinja", "--temp", 0, "-n", 3,
                        "--backend", "numpy", *eog_bans(path), stdin="hi\n")
    assert rc == 0 and out == f"\n> {expected}\n\n> ", err


@pytest.mark.parametrize("content,words", [("{% for %}", "does not parse"), (None, "missing.jinja")])
def test_bad_template_file_one_line(chat_model, tmp_path, content, words):
    path = tmp_path / ("bad.jinja" if content else "missing.jinja")
    if content:
        path.write_text(content)
    rc, out, err = call("-m", chat_model, "--chat-template-file", path, "--backend", "numpy", stdin="hi\n")
    assert rc == 1 and len(err.splitlines()) == 1 and err.startswith("error: ") and words in err, err


def test_ctrl_c_stops_the_reply_not_the_program(chat_model):
    class InterruptOnce(io.StringIO):
        fired = False

        def write(self, s):
            if not self.fired and s and not s.startswith("\n"):  # the first piece of the first reply
                InterruptOnce.fired = True
                raise KeyboardInterrupt
            return super().write(s)

    out, err = InterruptOnce(), io.StringIO()
    rc = run.main(["-m", str(chat_model), "-cnv", "--temp", "0", "-n", "4", "--backend", "numpy", *eog_bans(chat_model)],
                  out, err, io.StringIO("hello\nthe end\n"))
    assert rc == 0 and InterruptOnce.fired, err.getvalue()
    assert out.getvalue().count("[interrupted]") == 1 and err.getvalue().count("prompt eval time") == 2


# ---- the context running out -------------------------------------------------------------------

def test_context_full_stops_with_a_message(chat_model):
    rc, out, err = call("-m", chat_model, "-cnv", "-c", 48, "-n", 8, "--temp", 0, "--backend", "numpy",
                        *eog_bans(chat_model), stdin="hello there\nthe quick brown fox\nthe lazy dog\n")
    assert rc == 1
    assert err.splitlines()[-1].startswith("error: ") and "--context-shift" in err.splitlines()[-1]
    assert "Traceback" not in err


def test_context_shift_drops_oldest_turns_keeps_system(chat_model):
    lines = ["hello there", "the quick brown fox", "the lazy dog", "hello world", "the end"]
    rc, out, err = call("-m", chat_model, "-cnv", "-c", 64, "-n", 6, "--temp", 0, "--backend", "numpy",
                        "-sys", "be brief", "--context-shift", *eog_bans(chat_model), stdin="\n".join(lines) + "\n")
    assert rc == 0, err
    assert out.count("\n> ") == len(lines) + 1  # every line answered, then the prompt at the end of input
    cached = [int(line.rsplit(", ", 1)[1].split()[0]) for line in err.splitlines() if line.startswith("prompt eval")]
    tok = Tokenizer.from_metadata(GGUFFile(chat_model).metadata)
    system = len(tok.encode(chatml([{"role": "system", "content": "be brief"}], generation_prompt=False)))
    # a shift re-renders the conversation: the cache then still holds the system prompt (and maybe a bit more)
    assert any(system <= c < 40 for c in cached[2:]), cached


# ---- -cnv in a pseudo-terminal: two turns, the second reusing the cache -------------------------

def read_until(fd, marker: bytes, timeout=60.0) -> bytes:
    buf, end = b"", time.monotonic() + timeout
    while marker not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {marker!r}; got {buf!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_cnv_through_a_pty_second_turn_evaluates_only_new_tokens(chat_model):
    tok = Tokenizer.from_metadata(GGUFFile(chat_model).metadata)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "run.py", "-m", str(chat_model), "-cnv", "--temp", "0", "-n", "4",
                             "-c", "128", "--backend", "numpy", *eog_bans(chat_model)],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=REPO, close_fds=True)
    os.close(slave)
    try:
        read_until(master, b"> ")
        os.write(master, b"hello\n")
        first = read_until(master, b"\n> ")
        os.write(master, b"the end\n")
        second = read_until(master, b"\n> ")
        os.write(master, b"/exit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert b"hello" in first and b"the end" in second  # the terminal echoes what was typed
    n_eval = [int(line.split("/")[1].split()[0]) for line in err.splitlines() if line.startswith("prompt eval time")]
    first_prompt = tok.encode(chatml([{"role": "user", "content": "hello"}]))
    # turn 2: the first reply's last token (sampled, never fed back) + what the template adds after it
    new = tok.encode("<|im_end|>\n<|im_start|>user\nthe end<|im_end|>\n<|im_start|>assistant\n")
    assert n_eval == [len(first_prompt), 1 + len(new)]


def test_empty_lines_ask_again_and_bad_input_is_one_line(chat_model):
    rc, out, err = call("-m", chat_model, "-cnv", "--temp", 0, "-n", 2, "--backend", "numpy", stdin="\n  \nhi\n/exit\n")
    assert rc == 0 and out.count("\n> ") == 4 and err.count("prompt eval time") == 1, err  # 2 empty, hi, /exit

    class NotUtf8(io.StringIO):
        def readline(self, *a):
            return b"\xff".decode("utf-8")

    out, err = io.StringIO(), io.StringIO()
    rc = run.main(["-m", str(chat_model), "-cnv", "--backend", "numpy"], out, err, NotUtf8())
    assert rc == 1 and err.getvalue() == "error: the input is not UTF-8 text\n"


def test_ctrl_c_in_a_terminal_stops_the_reply_then_exit(default_model_path):
    """A real terminal: Ctrl-C (the tty's SIGINT) mid-reply returns to the prompt; /exit then leaves with 0."""
    pytest.importorskip("cpp_core.model", reason="C++ model not built")
    pid, fd = pty.fork()
    if pid == 0:  # the child: run.py with the pty as its controlling terminal
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "run.py", "-cnv", "--temp", "0", "-n", "2000", "-c", "2048",
                                  "--ignore-eos"])
    try:
        read_until(fd, b"> ")
        os.write(fd, b"Tell me a very long story about a dragon.\n")
        read_until(fd, b"dragon.\r\n")  # the terminal's echo of the line
        time.sleep(0.2)
        os.write(fd, b"\x03")  # Ctrl-C, while the reply streams (2000 tokens take minutes)
        after = read_until(fd, b"\n> ")
        os.write(fd, b"/exit\n")
        read_until(fd, b"(never printed)", timeout=30)  # returns when the child closes the terminal
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    assert b"[interrupted]" in after and b"Traceback" not in after
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("guard,flags,stdin,words", [
    ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
     ["-sys", "be brief"], "hi\n", "System role not supported"),
    ("{% if messages|length > 1 %}{{ raise_exception('one turn only') }}{% endif %}", [], "hi\nagain\n", "one turn only"),
])
def test_a_template_that_refuses_the_conversation(chat_model, tmp_path, guard, flags, stdin, words):
    (tmp_path / "t.jinja").write_text(guard + CHATML)
    rc, out, err = call("-m", chat_model, "--chat-template-file", tmp_path / "t.jinja", "-n", 2, "--backend", "numpy",
                        *flags, stdin=stdin)
    assert rc == 1 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: ") and words in err.splitlines()[-1]
