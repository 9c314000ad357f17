"""run.py end to end: every flag, bad models and bad flags (one line, exit 1 or 2), and the
default model's greedy text against llama.cpp's."""
import io
import json
import subprocess
import sys

import pytest

import run
from lessons.l01_gguf import GGMLType

BACKENDS = ["numpy", "cpp"]


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = run.main([str(a) for a in argv], out, err)
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc, out, err, status, *words):
    assert rc == status, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def cpp_available():
    try:
        import cpp_core.model  # noqa: F401
        return True
    except ImportError:
        return False


def backend_param(backend):
    if backend == "cpp" and not cpp_available():
        pytest.skip("C++ model not built")
    return backend


# ---- broken models: each names the file and the problem ----------------------------------------

BROKEN = {
    "head_count 0": dict(metadata={"llama.attention.head_count": 0}),
    "head_count_kv not dividing head_count": dict(metadata={"llama.attention.head_count_kv": 3}),
    "block_count beyond the tensors": dict(metadata={"llama.block_count": 5}),
    "missing tensor": dict(drop_tensors=("blk.1.ffn_up.weight",)),
    "misshapen tensor": dict(tensor_shapes={"blk.0.attn_q.weight": (32, 16)}),
    "absurd embedding size": dict(metadata={"llama.embedding_length": 1 << 40}),
    "absurd context": dict(metadata={"llama.context_length": 1 << 62}),
    "unknown architecture": dict(metadata={"general.architecture": "mamba"}),
    "missing hyper-parameter": dict(metadata={"llama.block_count": None}),
    "unknown tokenizer model": dict(metadata={"tokenizer.ggml.model": "wordpiece"}),
    "token id out of range": dict(metadata={"tokenizer.ggml.eos_token_id": 10 ** 6}),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_one_line(tiny_llama, case, backend):
    path = tiny_llama(**BROKEN[case])
    rc, out, err = call("-m", path, "-p", "hello", "-n", 2, "--backend", backend_param(backend))
    assert_one_line_error(rc, out, err, 1, str(path))
    assert out == ""


def test_tokenize_needs_only_the_vocabulary(tiny_llama):
    """llama-tokenize reads any architecture's vocabulary: so does --tokenize."""
    path = tiny_llama(metadata={"general.architecture": "mamba"}, drop_tensors=("output_norm.weight",))
    rc, out, err = call("-m", path, "--tokenize", "-p", "hello world")
    assert rc == 0, err
    ids = json.loads(out)
    assert isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)


# ---- bad flags: exit 2 -------------------------------------------------------------------------

BAD_FLAGS = {
    "unknown flag": ["--nope"],
    "-n not a number": ["-n", "many"],
    "-n below -1": ["-n", "-5"],
    "negative ctx": ["-c", "-1"],
    "zero threads": ["-t", "0"],
    "absurd threads": ["-t", "100000"],
    "top-p above 1": ["--top-p", "1.5"],
    "min-p below 0": ["--min-p", "-0.1"],
    "repeat-penalty 0": ["--repeat-penalty", "0"],
    "nan temperature": ["--temp", "nan"],
    "prompt and file": ["-p", "x", "-f", "y"],
    "perplexity without file": ["--perplexity"],
    "two modes": ["--inspect", "--tokenize"],
    "unknown backend": ["--backend", "gpu"],
    "unsupported cache type": ["-ctk", "q8_0"],
    "K and V cache types differ": ["-ctk", "f32", "-ctv", "f16"],
}


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_bad_flags_exit_2(case):
    rc, out, err = call(*BAD_FLAGS[case])
    assert_one_line_error(rc, out, err, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctx_larger_than_training_is_refused_before_allocating(tiny_llama, backend):
    path = tiny_llama(n_ctx_train=64)
    rc, out, err = call("-m", path, "-p", "hi", "-c", 10 ** 12, "--backend", backend_param(backend))
    assert_one_line_error(rc, out, err, 2, "ctx-size")


def test_prompt_longer_than_context(tiny_llama):
    path = tiny_llama(n_ctx_train=64)
    rc, out, err = call("-m", path, "-p", "hello " * 100, "-c", 16, "--backend", "numpy")
    assert_one_line_error(rc, out, err, 2, "context")


def test_missing_prompt_file(tiny_llama, tmp_path):
    path = tiny_llama()
    rc, out, err = call("-m", path, "-f", tmp_path / "missing.txt", "--backend", "numpy")
    assert_one_line_error(rc, out, err, 1, "missing.txt")


def test_no_traceback_in_a_real_process(tmp_path):
    """The same promise from the outside: a process, a directory as the model."""
    proc = subprocess.run([sys.executable, "run.py", "-m", str(tmp_path), "-p", "x"],
                          capture_output=True, text=True, cwd=run.__file__.rsplit("/", 1)[0])
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


# ---- flags that work, on tiny models -----------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("vocab", ["bpe", "spm"])
def test_generation_echoes_prompt_and_reports_timings(tiny_llama, backend, vocab):
    path = tiny_llama(vocab=vocab, weight_type=GGMLType.Q8_0)
    rc, out, err = call("-m", path, "-p", "the quick", "-n", 5, "--temp", 0.7, "-s", 3,
                        "--top-k", 10, "--top-p", 0.9, "--min-p", 0.01, "--repeat-penalty", 1.1,
                        "-t", 1, "-c", 32, "--ignore-eos", "--backend", backend_param(backend))
    assert rc == 0, err
    assert out.startswith("the quick") and len(out) > len("the quick\n")
    assert "prompt eval time =" in err and "tokens per second" in err
    assert "       eval time =" in err and "/     4 runs" in err  # the 5th token is never fed back


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cache_type", ["f16", "f32"])
def test_cache_types(tiny_llama, backend, cache_type):
    """-ctk/-ctv as llama-cli spells them; f16 is the default, f32 the exact reference."""
    rc, out, err = call("-m", tiny_llama(), "-p", "hello", "-n", 4, "--temp", 0, "--ignore-eos", "-ctk", cache_type,
                        "-ctv", cache_type, "--backend", backend_param(backend))
    assert rc == 0, err
    assert out.startswith("hello") and len(out) > len("hello\n")


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_text(tiny_llama, backend):
    path = tiny_llama()
    args = ("-m", path, "-p", "hello", "-n", 8, "-s", 42, "--ignore-eos", "--backend", backend_param(backend))
    first, second = call(*args), call(*args)
    assert first[0] == 0 and first[1] == second[1]


def test_prompt_from_file_and_n_zero(tiny_llama, tmp_path):
    path, text = tiny_llama(), tmp_path / "prompt.txt"
    text.write_text("hello there", encoding="utf-8")
    rc, out, err = call("-m", path, "-f", text, "-n", 0, "--backend", "numpy")
    assert rc == 0, err
    assert out == "hello there\n"


def test_perplexity_on_a_tiny_model(tiny_llama, tmp_path):
    path, text = tiny_llama(), tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20, encoding="utf-8")
    rc, out, err = call("-m", path, "--perplexity", "-f", text, "-c", 16, "--backend", "numpy")
    assert rc == 0, err
    assert out.startswith("Final estimate: PPL = ") and " +/- " in out
    ppl = float(out.split("= ")[1].split(" +/-")[0])
    assert 1.0 < ppl < 1e4


# ---- the default model against llama.cpp -------------------------------------------------------

def test_tokenize_default_model_matches_llama_cpp(reference_dir, default_model_path):
    ref = json.loads((reference_dir / "tokenizer_smollm2.json").read_text())
    for text, ids in zip(ref["corpus"], ref["smollm2_ids_special"]):
        rc, out, err = call("--tokenize", "-p", text)
        assert rc == 0, err
        assert json.loads(out) == ids, text


@pytest.mark.parametrize("backend", ["numpy"])
def test_greedy_text_matches_llama_cpp_f32(reference_dir, default_model_path, backend):
    """run.py --temp 0 on the Q4_1 file, numpy path (f32 math on dequantized weights), equals
    llama.cpp's greedy text on the same weights in F32, all 64 tokens."""
    ref = json.loads((reference_dir / "smollm2_generation.json").read_text())
    prompt = "The capital of France is"
    rc, out, err = call("-p", prompt, "-n", 64, "--temp", 0, "--ignore-eos", "-c", 128, "--backend", backend)
    assert rc == 0, err
    assert out == prompt + ref[prompt]["f32_greedy_text"] + "\n"
