"""llama-cli's flags in run.py: each one's effect checked against an oracle (lesson 10's loop with the same
sampling, or the plain formula), the flags that do not apply (one warning line), and every bad value
(one error line, exit 2)."""
import io
import math

import numpy as np
import pytest

import run
from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer
from lessons.l08_transformer import NumpyLlama
from lessons.l09_sampling import Sampler, SamplingParams
from lessons.l10_generate import generate
from llama_lessons.cli_chat import parse_logit_bias, process_escapes


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = run.main([str(a) for a in argv], out, err, io.StringIO(""))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def model(tiny_llama):
    return tiny_llama(n_ctx_train=128)


def oracle(path, prompt: str, n: int, **params) -> str:
    """Lesson 10's loop on a fresh numpy model: the text run.py should print after the prompt."""
    gguf = GGUFFile(path)
    tok = Tokenizer.from_metadata(gguf.metadata)
    stats = generate(NumpyLlama(gguf, 128, kv_type="f16"), tok.encode(prompt), n,
                     Sampler(SamplingParams(temp=0, **params)), stop_ids=tok.eot_ids)
    return tok.decode(stats.tokens, special=False)


def run_text(path, prompt, n, *flags):
    rc, out, err = call("-m", path, "-p", prompt, "-n", n, "--temp", 0, "-c", 128, "--backend", "numpy", *flags)
    assert rc == 0, err
    assert out.startswith(prompt) and out.endswith("\n")
    return out[len(prompt):-1], err


# ---- the sampler's new stages, against the formula ------------------------------------------------

def test_presence_and_frequency_penalties_follow_openai_formula():
    logits = np.array([3.0, 2.0, -1.0, 0.5, 1.0], np.float32)
    history = [0, 0, 2, 4, 0]  # counts: token 0 three times, 2 once, 4 once
    p = SamplingParams(temp=1, top_k=0, top_p=1, min_p=0, presence_penalty=0.5, frequency_penalty=0.25,
                       repeat_penalty=2.0)
    ids, probs = Sampler(p).distribution(logits, history)
    counts = {0: 3, 2: 1, 4: 1}
    expected = []
    for t, l in enumerate(logits.tolist()):
        if t in counts:  # llama.cpp: the repeat penalty first, then count * frequency + presence
            l = (l / 2.0 if l > 0 else l * 2.0) - counts[t] * 0.25 - 0.5
        expected.append(l)
    e = np.exp(np.array(expected) - max(expected))
    got = dict(zip(ids.tolist(), probs.tolist()))
    np.testing.assert_allclose([got[t] for t in range(5)], e / e.sum(), rtol=1e-6)


def test_logit_bias_adds_and_bans():
    logits = np.array([1.0, 5.0, 2.0], np.float32)
    assert Sampler(SamplingParams(temp=0, logit_bias={1: -math.inf})).sample(logits, []) == 2
    assert Sampler(SamplingParams(temp=0, logit_bias={0: 4.5})).sample(logits, []) == 0
    ids, _ = Sampler(SamplingParams(temp=1, logit_bias={1: -math.inf})).distribution(logits, [])
    assert 1 not in ids.tolist()


@pytest.mark.parametrize("text,expected", [
    (r"a\nb", "a\nb"), (r"a\tb", "a\tb"), (r"a\\nb", "a\\nb"), (r"\"q\'", "\"q'"), (r"\x41", "A"),
    (r"keep \q", "keep \\q"), ("trailing\\", "trailing\\"),
])
def test_escapes_like_llama_cpp(text, expected):
    assert process_escapes(text) == expected


def test_logit_bias_values():
    assert parse_logit_bias(["15043+1", "15043-0.5", "2-inf", "7+1e-1"]) == {15043: -0.5, 2: -math.inf, 7: 0.1}


# ---- each flag's effect in run.py ---------------------------------------------------------------

def test_reverse_prompt_stops_and_is_printed(model):
    full, _ = run_text(model, "the quick", 16, "--ignore-eos")
    first, second = full[6:8], full[10:12]
    assert first not in full[:6] and first and second
    text, _ = run_text(model, "the quick", 16, "--ignore-eos", "-r", second, "-r", first)
    assert text == full[:full.index(first) + len(first)]  # the earliest of the two, printed as llama-cli does


def test_escape_processes_the_prompt(model):
    rc, out, err = call("-m", model, "-p", r"the\tquick\nfox", "-e", "-n", 2, "--temp", 0, "--backend", "numpy")
    assert rc == 0 and out.startswith("the\tquick\nfox"), err
    rc, out, err = call("-m", model, "-p", r"the\tquick", "-n", 2, "--temp", 0, "--backend", "numpy")
    assert rc == 0 and out.startswith(r"the\tquick"), err  # without -e the backslashes stay


@pytest.mark.parametrize("flags,params", [
    (["--presence-penalty", "1.5"], dict(presence_penalty=1.5)),
    (["--frequency-penalty", "0.7", "--repeat-last-n", "-1"], dict(frequency_penalty=0.7, repeat_last_n=-1)),
])
def test_penalties_reach_the_sampler(model, flags, params):
    text, _ = run_text(model, "the the the", 12, *flags)
    assert text == oracle(model, "the the the", 12, **params)
    assert text != oracle(model, "the the the", 12)  # (the flag does change this text)


def test_logit_bias_flag(model):
    gguf = GGUFFile(model)
    tok = Tokenizer.from_metadata(gguf.metadata)
    greedy = generate(NumpyLlama(gguf, 128, kv_type="f16"), tok.encode("hello"), 8, Sampler(SamplingParams(temp=0)),
                      stop_ids=tok.eot_ids).tokens
    banned, _ = run_text(model, "hello", 8, "--logit-bias", f"{greedy[0]}-inf")  # ban the greedy first token
    assert banned == oracle(model, "hello", 8, logit_bias={greedy[0]: -math.inf})
    assert banned != tok.decode(greedy, special=False)


@pytest.mark.parametrize("flags", [["--no-mmap"], ["--mlock"], ["--no-mmap", "--mlock"]])
def test_memory_flags_change_nothing_in_the_text(model, flags):
    text, err = run_text(model, "the lazy", 8, *flags)
    assert text == oracle(model, "the lazy", 8)
    assert all(line.startswith(("warning: --mlock", "prompt eval", "       eval")) for line in err.splitlines())


def test_color_marks_the_prompt(model):
    rc, out, err = call("-m", model, "-p", "the", "-n", 2, "--temp", 0, "--backend", "numpy", "--color")
    assert rc == 0 and out.startswith("\x1b[33mthe\x1b[0m"), err


@pytest.mark.parametrize("flags,word", [
    (["-fa"], "-fa"), (["-fa", "on"], "-fa"), (["-b", "64"], "-b"), (["-ub", "32"], "-ub"),
    (["--no-warmup"], "--no-warmup"),
    (["--context-shift"], "chat"),
])
def test_flags_that_do_not_apply_warn_once(model, flags, word):
    text, err = run_text(model, "the", 4, *flags)
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and word in warnings[0]
    assert text == oracle(model, "the", 4)


@pytest.mark.parametrize("flags", [["-fa", "off"], ["-ngl", "0"]])
def test_flags_set_to_off_do_not_warn(model, flags):
    _, err = run_text(model, "the", 2, *flags)
    assert "warning" not in err


# ---- bad values: one line, exit 2 ---------------------------------------------------------------

BAD = {
    "cache type llama.cpp has": (["-ctk", "q8_0", "-ctv", "q8_0"], ["q8_0", "f16, f32"]),
    "cache type V": (["-ctv", "q4_0"], ["q4_0", "f16, f32"]),
    "unknown cache type": (["-ctk", "q9"], ["unknown", "f16, f32"]),
    "logit bias without sign": (["--logit-bias", "15"], ["--logit-bias"]),
    "logit bias not a number": (["--logit-bias", "x+1"], ["--logit-bias"]),
    "logit bias +inf": (["--logit-bias", "3+inf"], ["-inf"]),
    "logit bias out of vocabulary": (["--logit-bias", "100000+1", "-p", "x"], ["100000"]),
    "presence penalty nan": (["--presence-penalty", "nan"], ["--presence-penalty"]),
    "frequency penalty word": (["--frequency-penalty", "high"], ["--frequency-penalty"]),
    "empty reverse prompt": (["-r", ""], ["--reverse-prompt"]),
    "flash-attn value": (["-fa", "maybe"], ["--flash-attn"]),
    "batch size 0": (["-b", "0"], ["--batch-size"]),
    "ubatch not a number": (["-ub", "x"], ["-ub"]),
    "gpu layers word": (["-ngl", "many"], ["-ngl"]),
    "-cnv and -no-cnv": (["-cnv", "-no-cnv"], ["-no-cnv"]),
    "-sys with -no-cnv": (["-no-cnv", "-sys", "hi"], ["-sys"]),
    "-sys and -sysf": (["-sys", "a", "-sysf", "b"], ["-sysf"]),
    "chat and perplexity": (["-cnv", "--perplexity", "-f", "x"], ["--perplexity"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_values_one_line_exit_2(model, case):
    flags, words = BAD[case]
    rc, out, err = call("-m", model, "--backend", "numpy", *flags)
    assert rc == 2 and out == "", err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_system_prompt_file(model, tmp_path):
    rc, out, err = call("-m", model, "--backend", "numpy", "-sysf", tmp_path / "none.txt")
    assert rc == 1 and err.count("\n") == 1 and err.startswith("error: ") and "none.txt" in err


def test_special_tokens_are_never_printed(model):
    tok = Tokenizer.from_metadata(GGUFFile(model).metadata)
    im_start = tok.token_to_id["<|im_start|>"]  # a control token, not end-of-generation
    text, err = run_text(model, "the", 5, "--logit-bias", f"{im_start}+100")  # greedy picks it every time
    assert text == "" and "/     4 runs" in err  # five tokens generated, none of them printed
