"""KL divergence (lessons 11b, 11c; run.py --perplexity --kl-divergence): llama-perplexity's statistics
against an independent float64 computation on the same logits, the 16-bit base file and its refusals,
and on the default model the order Q8_0 < Q4_K_M < Q2_K against F32."""
import importlib.util
import io
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

import run
from lessons.l01_gguf import GGMLType, GGUFFile
from lessons.l02_tokenizer import Tokenizer
from lessons.l08_transformer import NumpyLlama
from lessons.l11b_kl_divergence import pack_log_probs, row_width, token_stats, unpack_log_probs

TOOLS = Path(__file__).resolve().parents[1] / "tools"
N_CTX, N_CHUNKS = 32, 8  # 8 chunks of 15 scored tokens: 120, above llama.cpp's 100 for statistics
NUMPY = ["--backend", "numpy", "-ctk", "f32", "-ctv", "f32"]  # float32 KV cache, as the float64 oracle


def call(*argv):
    out, err = io.StringIO(), io.StringIO()
    rc = run.main([str(a) for a in argv], out, err)
    return rc, out.getvalue(), err.getvalue()


def assert_one_line_error(rc, err, status, *words):
    assert rc == status, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])


def write_text(path, seed=0, n_words=700):
    words = "the quick brown fox jumps over the lazy dog. hello world, hello there! the end".split()
    rng = random.Random(seed)
    path.write_text(" ".join(rng.choice(words) for _ in range(n_words)))
    return path


@pytest.fixture
def kl_setup(tmp_path, tiny_llama):
    """A tiny F32 base model, its text, the base file saved by run.py, and two models to compare."""
    base = tiny_llama(n_ctx_train=64, seed=3, qk_scale=2.0, embd_scale=2.0)
    text = write_text(tmp_path / "text.txt")
    kld = tmp_path / "base.kld"
    rc, out, err = call("-m", base, *NUMPY, "--perplexity", "-f", text, "-c", N_CTX,
                        "--chunks", N_CHUNKS, "--kl-divergence-base", kld)
    assert rc == 0, err
    quantized = tiny_llama(n_ctx_train=64, seed=3, qk_scale=2.0, embd_scale=2.0, weight_type=GGMLType.Q4_0)
    other = tiny_llama(n_ctx_train=64, seed=4, qk_scale=2.0, embd_scale=2.0)  # same vocabulary, other weights
    return {"base": base, "text": text, "kld": kld, "save_out": out, "save_err": err,
            "models": {"Q4_0": quantized, "other": other}}


# ---- the idea, by hand -------------------------------------------------------------------------

def test_worked_example_of_the_lesson():
    # p_base = (1/2, 1/2), p_Q = (3/4, 1/4), true token 0: KL = ln(4/3)/2, Q "better" by perplexity
    base = pack_log_probs(np.log(np.array([[0.5, 0.5]], np.float32)))
    s = token_stats(np.log(np.array([[0.75, 0.25]], np.float32)), base, np.array([0]))
    assert s["kld"][0] == pytest.approx(0.5 * math.log(4 / 3), abs=1e-6)  # not KL(Q || base) = 0.1308
    assert s["nll"][0] == pytest.approx(math.log(4 / 3), abs=1e-6)
    assert s["nll_base"][0] == pytest.approx(math.log(2), abs=1e-6)
    assert s["p_diff"][0] == pytest.approx(0.25, abs=1e-6) and s["same_top"][0]


def test_packed_row_is_llama_cpps_layout_and_round_trips():
    logits = np.array([[0.0, -1.0, -20.0, 5.0, 5.0 - 16.0]], np.float32)  # -20 lies below max - 16
    row = pack_log_probs(logits)
    assert row.shape == (1, row_width(5)) == (1, 10) and row.dtype == np.uint16
    scale, min_log_prob = row[0, :4].view(np.float32)
    lse = math.log(np.exp(logits[0].astype(np.float64) - 5).sum())
    assert scale == pytest.approx(16 / 65535, rel=1e-6)
    assert min_log_prob == pytest.approx(-16 - lse, abs=1e-5)
    assert list(row[0, 4:9]) == [round(11 / scale), round(10 / scale), 0, 65535, 0]  # steps above max - 16
    exact = logits[0] - 5 - lse
    back = unpack_log_probs(row, 5)[0]
    kept = logits[0] >= 5 - 16
    assert np.abs(back[kept] - exact[kept]).max() <= scale  # within one step
    assert back[2] == pytest.approx(min_log_prob)  # clamped to the bottom


def test_flat_row_packs_to_zero_steps():
    row = pack_log_probs(np.zeros((1, 4), np.float32))
    assert row[0, :2].view(np.float32)[0] == 0 and not row[0, 4:].any()
    assert unpack_log_probs(row, 4)[0] == pytest.approx(np.full(4, -math.log(4)), abs=1e-6)


# ---- the statistics against float64 -------------------------------------------------------------

def float64_oracle(base_path, q_path, text_path):
    """Every figure of the three sections, from logits of whole chunks, in float64 with numpy."""
    gguf_b, gguf_q = GGUFFile(base_path), GGUFFile(q_path)
    ids = Tokenizer.from_metadata(gguf_b.metadata).encode(text_path.read_text(), parse_special=False)
    model_b, model_q = NumpyLlama(gguf_b, n_ctx=N_CTX), NumpyLlama(gguf_q, n_ctx=N_CTX)
    kld, nll, nll_b, same = [], [], [], []
    for c in range(N_CHUNKS):
        chunk = np.array(ids[c * N_CTX : (c + 1) * N_CTX], np.int32)
        rows = []
        for model in (model_b, model_q):
            model.reset()
            x = model.forward(chunk, 0).astype(np.float64)[N_CTX // 2 : N_CTX - 1]  # predicting 17..31
            rows.append(x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True))
        lb, lq = rows
        lb_stored = np.maximum(lb, lb.max(1, keepdims=True) - 16)  # llama.cpp keeps 16 below the top
        t = chunk[N_CTX // 2 + 1 :]
        kld.append((np.exp(lb) * (lb - lq)).sum(1))
        nll.append(-lq[np.arange(len(t)), t])
        nll_b.append(-lb_stored[np.arange(len(t)), t])
        same.append(lq.argmax(1) == lb.argmax(1))
    kld, nll, nll_b, same = (np.concatenate(a) for a in (kld, nll, nll_b, same))
    n = len(kld)

    def err(x):  # standard error of a mean
        return np.std(x) / math.sqrt(n - 1)

    ppl, ppl_b = math.exp(nll.mean()), math.exp(nll_b.mean())
    dp = np.exp(-nll) - np.exp(-nll_b)
    rms = math.sqrt(np.mean(dp**2))
    top = same.mean()
    o = {"Mean PPL(Q)": (ppl, ppl * err(nll)), "Mean PPL(base)": (ppl_b, ppl_b * err(nll_b)),
         "Cor(ln(PPL(Q)), ln(PPL(base)))": (100 * np.corrcoef(nll, nll_b)[0, 1], None),
         "Mean ln(PPL(Q)/PPL(base))": (nll.mean() - nll_b.mean(), err(nll - nll_b)),
         "Mean PPL(Q)/PPL(base)": (ppl / ppl_b, ppl / ppl_b * err(nll - nll_b)),
         "Mean PPL(Q)-PPL(base)": (ppl - ppl_b, err(ppl * nll - ppl_b * nll_b)),
         "Mean    KLD": (kld.mean(), err(kld)), "Maximum KLD": (kld.max(), None),
         "Minimum KLD": (kld.min(), None), "Median  KLD": (np.median(kld), None),
         "Mean    Δp": (100 * dp.mean(), 100 * err(dp)), "Maximum Δp": (100 * dp.max(), None),
         "Minimum Δp": (100 * dp.min(), None), "Median  Δp": (100 * np.median(dp), None),
         "RMS Δp    ": (100 * rms, 100 * 0.5 / rms * err(dp**2)),
         "Same top p": (100 * top, 100 * math.sqrt(top * (1 - top) / (n - 1)))}
    for q in (99.9, 99.0, 95.0, 90.0, 10.0, 5.0, 1.0, 0.1):
        o[f"{q:4.1f}%   KLD"] = (np.percentile(kld, q, method="linear"), None)
    for q in (99.9, 99.0, 95.0, 90.0, 75.0, 25.0, 10.0, 5.0, 1.0, 0.1):
        o[f"{q:4.1f}%   Δp"] = (100 * np.percentile(dp, q, method="linear"), None)
    return o, n


def parse_report(text):
    """{label: (value, uncertainty or None)} from the three sections run.py printed."""
    figures = {}
    for line in text.splitlines():
        m = re.match(r"^(.+?)\s*:\s*(-?[\d.]+)%?(?:\s*±\s*([\d.]+))?\s*%?$", line)
        if m:
            label = m.group(1) if m.group(1).startswith("RMS") else m.group(1).rstrip()
            figures[label if not label.startswith("RMS") else "RMS Δp    "] = (
                float(m.group(2)), float(m.group(3)) if m.group(3) else None)
    return figures


def tolerance(label, value):
    """The printed precision, plus what 16-bit base log-probs move (a step is under 16/65535 in ln p)."""
    if label.startswith("Cor"):
        return 0.01  # printed with 2 decimals, in %
    if "%" in label or "Δp" in label or label.startswith("Same"):
        return 2e-3 + 1e-4 * abs(value)  # 3 decimals, in %
    return 1e-4 * max(1.0, abs(value)) + 2e-6  # 6 decimals


@pytest.mark.parametrize("q", ["Q4_0", "other"])
def test_printed_statistics_match_float64(kl_setup, q):
    rc, out, err = call("-m", kl_setup["models"][q], *NUMPY, "--perplexity", "-f", kl_setup["text"],
                        "--kl-divergence", "--kl-divergence-base", kl_setup["kld"])
    assert rc == 0, err
    printed = parse_report(out)
    oracle, n = float64_oracle(kl_setup["base"], kl_setup["models"][q], kl_setup["text"])
    assert printed.keys() == oracle.keys(), sorted(set(printed) ^ set(oracle))
    assert "====== Perplexity statistics ======" in out and "====== Token probability statistics ======" in out
    for label, (value, unc) in oracle.items():
        got, got_unc = printed[label]
        assert got == pytest.approx(value, abs=tolerance(label, value)), (label, got, value)
        if unc is not None:
            assert got_unc == pytest.approx(unc, abs=tolerance(label, unc)), (label, got_unc, unc)
    assert oracle["Mean    KLD"][0] > (0.1 if q == "Q4_0" else 1.0)  # the figures are not all near zero


def test_running_lines_per_chunk(kl_setup):
    rc, out, err = call("-m", kl_setup["models"]["Q4_0"], *NUMPY, "--perplexity", "-f",
                        kl_setup["text"], "--kl-divergence", "--kl-divergence-base", kl_setup["kld"], "--chunks", 7)
    assert rc == 0, err
    lines = err.splitlines()
    header = lines.index(next(x for x in lines if x.startswith("chunk ")))
    assert lines[header].split() == ["chunk", "PPL", "ln(PPL(Q)/PPL(base))", "KL", "Divergence", "Δp", "RMS",
                                     "Same", "top", "p"]
    rows = lines[header + 1 : header + 8]
    assert [int(r.split()[0]) for r in rows] == list(range(1, 8))
    assert all(re.fullmatch(r"\s+\d+(\s+-?[\d.]+ ±\s+[\d.]+( %)?){5}", r) for r in rows), rows
    final_ppl = parse_report(out)["Mean PPL(Q)"][0]
    assert float(rows[-1].split()[1]) == pytest.approx(final_ppl, abs=1e-4)  # 7 chunks: 105 tokens


def test_saving_leaves_perplexity_output_unchanged(kl_setup):
    rc, out, err = call("-m", kl_setup["base"], *NUMPY, "--perplexity", "-f", kl_setup["text"],
                        "-c", N_CTX, "--chunks", N_CHUNKS)
    assert rc == 0 and out == kl_setup["save_out"] and out.startswith("Final estimate: PPL = ")
    assert [x for x in kl_setup["save_err"].splitlines() if "saving" not in x] == err.splitlines()
    # and the base's own perplexity, read back from the 16-bit file, is the one printed when saving
    rc, cmp_out, _ = call("-m", kl_setup["base"], *NUMPY, "--perplexity", "-f", kl_setup["text"],
                          "--kl-divergence", "--kl-divergence-base", kl_setup["kld"])
    saved = float(out.split()[4])
    assert parse_report(cmp_out)["Mean PPL(base)"][0] == pytest.approx(saved, rel=3e-4)
    assert parse_report(cmp_out)["Mean    KLD"][0] < 1e-4  # a model against itself


def test_file_size_is_llama_cpps(kl_setup):
    n_vocab = GGUFFile(kl_setup["base"]).metadata["tokenizer.ggml.tokens"].__len__()
    expected = 8 + 12 + 4 * N_CHUNKS * N_CTX + 2 * N_CHUNKS * (N_CTX // 2 - 1) * row_width(n_vocab)
    assert kl_setup["kld"].stat().st_size == expected
    assert kl_setup["kld"].read_bytes()[:8] == b"_logits_"


# ---- refusals: one line, exit 1 (bad file) or 2 (bad flags) ------------------------------------

def compare(kl_setup, *extra, model=None, kld=None, text=None):
    return call("-m", model or kl_setup["models"]["Q4_0"], *NUMPY, "--perplexity",
                "-f", text or kl_setup["text"], "--kl-divergence", "--kl-divergence-base", kld or kl_setup["kld"],
                *extra)


def test_refuses_a_model_with_another_vocabulary(kl_setup, tiny_llama):
    rc, _, err = compare(kl_setup, model=tiny_llama(n_ctx_train=64, n_vocab=300))
    assert_one_line_error(rc, err, 1, "vocabulary")


def test_refuses_another_text(kl_setup, tmp_path):
    rc, _, err = compare(kl_setup, text=write_text(tmp_path / "other.txt", seed=1))
    assert_one_line_error(rc, err, 1, "another text")


@pytest.mark.parametrize("damage,words", [
    (lambda b: b[:-10], ["truncated or corrupt"]),
    (lambda b: b + b"\0\0", ["truncated or corrupt"]),
    (lambda b: b[:30], ["truncated or corrupt"]),
    (lambda b: b"", ["not a file of log-probabilities"]),
    (lambda b: b"_LOGITS_" + b[8:], ["not a file of log-probabilities"]),
    (lambda b: b[:8] + np.int32(-32).tobytes() + b[12:], ["truncated or corrupt", "n_ctx 4294967264"]),
    (lambda b: b[:8] + np.int32(33).tobytes() + b[12:], ["corrupt header"]),
    (lambda b: b[:12] + np.int32(1 << 30).tobytes() + b[16:], ["corrupt header"]),
    (lambda b: b[:20] + np.int32(10**6).tobytes() + b[24:], ["token id outside"]),
    (lambda b: b[: 20 + 4 * N_CHUNKS * N_CTX] + np.float32("nan").tobytes() + b[24 + 4 * N_CHUNKS * N_CTX :],
     ["row 0 of chunk 1"]),
])
def test_refuses_a_broken_file(kl_setup, tmp_path, damage, words):
    broken = tmp_path / "broken.kld"
    broken.write_bytes(damage(kl_setup["kld"].read_bytes()))
    rc, _, err = compare(kl_setup, kld=broken)
    assert_one_line_error(rc, err, 1, str(broken), *words)


def test_refuses_a_missing_file(kl_setup, tmp_path):
    rc, _, err = compare(kl_setup, kld=tmp_path / "absent.kld")
    assert_one_line_error(rc, err, 1, "absent.kld")


@pytest.mark.parametrize("flags,words", [
    (["-c", 64], ["--ctx-size 32"]),
])
def test_refuses_another_context(kl_setup, flags, words):
    rc, _, err = compare(kl_setup, *flags)
    assert_one_line_error(rc, err, 2, *words)


@pytest.mark.parametrize("argv,words", [
    (["--kl-divergence-base", "x.kld", "-p", "hi"], ["--perplexity"]),
    (["--kl-divergence", "-p", "hi"], ["--perplexity"]),
    (["--perplexity", "-f", "t.txt", "--kl-divergence"], ["--kl-divergence-base FILE"]),
    (["--perplexity", "-f", "t.txt", "--chunks", "0"], ["--chunks"]),
    (["--perplexity", "-f", "t.txt", "--chunks", "-2"], ["--chunks"]),
])
def test_bad_flags(argv, words):
    rc, _, err = call(*argv)
    assert_one_line_error(rc, err, 2, *words)


def test_unwritable_base_file_is_one_line(kl_setup, tmp_path):
    target = tmp_path / "no" / "such" / "dir.kld"
    rc, out, err = call("-m", kl_setup["base"], *NUMPY, "--perplexity", "-f", kl_setup["text"],
                        "-c", N_CTX, "--kl-divergence-base", target)
    assert_one_line_error(rc, err, 1, str(target))


def test_a_failed_run_leaves_no_half_written_file(kl_setup, tmp_path, monkeypatch):
    import lessons.l11b_kl_divergence as l11b
    calls = []

    def failing_pack(logits):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError
        return l11b_pack(logits)

    l11b_pack = l11b.pack_log_probs
    monkeypatch.setattr(l11b, "pack_log_probs", failing_pack)
    target = tmp_path / "half.kld"
    rc, _, err = call("-m", kl_setup["base"], *NUMPY, "--perplexity", "-f", kl_setup["text"],
                      "-c", N_CTX, "--kl-divergence-base", target)
    assert rc == 1 and "out of memory" in err and len(calls) == 3
    assert not target.exists() and not (tmp_path / "half.kld.partial").exists()  # nothing half-written


def test_too_few_tokens_prints_no_statistics(kl_setup):
    rc, out, err = compare(kl_setup, "--chunks", 2)  # 30 scored tokens: llama.cpp needs 100
    assert rc == 0 and out == "" and "statistics need 100" in err


# ---- the default model: the presets in order ---------------------------------------------------

@pytest.mark.slow
def test_default_model_kl_orders_the_presets(default_model_path, tmp_path):
    import export

    pytest.importorskip("cpp_core.model", reason="the C++ core is not built")
    f32 = tmp_path / "f32.gguf"
    assert export.main([str(default_model_path), str(f32), "F32"]) == 0
    ids = np.load(run.__file__.replace("run.py", "tests/fixtures/tinyshakespeare40k_smollm2_ids.npy"))[:700]
    tok = Tokenizer.from_metadata(GGUFFile(default_model_path).metadata)
    text = tmp_path / "text.txt"
    text.write_text(tok.decode(ids.tolist()))
    kld = tmp_path / "f32.kld"
    rc, _, err = call("-m", f32, "--perplexity", "-f", text, "-c", 256, "--chunks", 1, "--kl-divergence-base", kld)
    assert rc == 0, err
    means = {}
    for preset in ("Q8_0", "Q4_K_M", "Q2_K"):
        path = tmp_path / f"{preset}.gguf"
        assert export.main([str(f32), str(path), preset]) == 0
        rc, out, err = call("-m", path, "--perplexity", "-f", text, "--kl-divergence", "--kl-divergence-base", kld)
        assert rc == 0, err
        means[preset] = parse_report(out)["Mean    KLD"]
        path.unlink()
    assert 0 < means["Q8_0"][0] < means["Q4_K_M"][0] < means["Q2_K"][0], means
    # and apart by more than their errors
    assert means["Q8_0"][0] + 3 * means["Q8_0"][1] < means["Q4_K_M"][0] - 3 * means["Q4_K_M"][1]
    assert means["Q4_K_M"][0] + 3 * means["Q4_K_M"][1] < means["Q2_K"][0] - 3 * means["Q2_K"][1]


# ---- the exercises of docs/11b-kl-divergence.md ------------------------------------------------

def test_exercise_a_shift_of_every_logit_changes_nothing():
    base_logits = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    s = token_stats(base_logits + 3.0, pack_log_probs(base_logits), np.arange(5))
    assert np.abs(s["kld"]).max() < 2e-5 and np.abs(s["p_diff"]).max() < 1e-5 and s["same_top"].all()


def test_exercise_temperature_two_by_hand():
    # base logits (0, ln 3): p_base = (1/4, 3/4); Q halves them: p_Q = (1, sqrt 3) / (1 + sqrt 3)
    base_logits = np.array([[0.0, math.log(3)]], np.float32)
    s = token_stats(base_logits / 2, pack_log_probs(base_logits), np.array([1]))
    q = np.array([1, math.sqrt(3)]) / (1 + math.sqrt(3))
    by_hand = 0.25 * math.log(0.25 / q[0]) + 0.75 * math.log(0.75 / q[1])
    assert by_hand == pytest.approx(0.030738, abs=1e-6)
    assert s["kld"][0] == pytest.approx(by_hand, abs=1e-5)
    assert s["p_diff"][0] == pytest.approx(q[1] - 0.75, abs=1e-5) and s["same_top"][0]


def test_a_bos_adding_model_against_itself(tiny_llama, tmp_path):
    # SentencePiece vocab: BOS replaces each chunk's first token, in the saving run and the comparing run alike
    model = tiny_llama(vocab="spm", n_ctx_train=64, seed=5)
    text, kld = write_text(tmp_path / "text.txt"), tmp_path / "spm.kld"
    rc, out, err = call("-m", model, *NUMPY, "--perplexity", "-f", text, "-c", N_CTX, "--chunks", N_CHUNKS,
                        "--kl-divergence-base", kld)
    assert rc == 0, err
    rc, cmp_out, err = call("-m", model, *NUMPY, "--perplexity", "-f", text, "--kl-divergence",
                            "--kl-divergence-base", kld)
    assert rc == 0, err
    figures = parse_report(cmp_out)
    assert figures["Mean    KLD"][0] < 1e-4 and figures["Same top p"][0] == 100.0
    assert figures["Mean PPL(base)"][0] == pytest.approx(float(out.split()[4]), rel=3e-4)


def test_chunks_limits_plain_perplexity(kl_setup):
    from lessons.l11_perplexity import perplexity
    rc, out, err = call("-m", kl_setup["base"], *NUMPY, "--perplexity", "-f", kl_setup["text"], "-c", N_CTX,
                        "--chunks", 3)
    assert rc == 0, err
    assert len([x for x in err.split() if x.startswith("[")]) == 3 and "3 chunks of 32" in err
    gguf = GGUFFile(kl_setup["base"])
    ids = Tokenizer.from_metadata(gguf.metadata).encode(kl_setup["text"].read_text(), parse_special=False)
    ppl, _ = perplexity(NumpyLlama(gguf, N_CTX), ids[: 3 * N_CTX + N_CTX // 2], N_CTX)  # 3 whole chunks
    assert out == f"Final estimate: PPL = {ppl:.4f} +/- {out.split()[-1]}\n"


# ---- llama.cpp's llama-perplexity reading our base file (tools/make_kl_llama_cpp_fixture.py) -----

def masked_layout(printed: str) -> list[str]:
    """The chunk table and the three sections, every figure with its padding masked as " N": the tool's own
    masking (tools/make_kl_llama_cpp_fixture.py), so the fixture and this test mask alike."""
    spec = importlib.util.spec_from_file_location("make_kl_llama_cpp_fixture", TOOLS / "make_kl_llama_cpp_fixture.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.layout(printed)


@pytest.mark.slow
def test_llama_perplexity_reads_our_base_file_as_we_do(default_model_path, tmp_path):
    import json

    import export
    fixture_path = Path(run.__file__).parent / "tests" / "fixtures" / "kl_llama_perplexity.json"
    if not fixture_path.exists():
        pytest.skip("run tools/make_kl_llama_cpp_fixture.py")
    fixture = json.loads(fixture_path.read_text())
    pytest.importorskip("cpp_core.model", reason="the C++ core is not built")
    ids = np.load(Path(run.__file__).parent / "tests" / "fixtures" / "tinyshakespeare40k_smollm2_ids.npy")
    text = tmp_path / "text.txt"
    text.write_text(Tokenizer.from_metadata(GGUFFile(default_model_path).metadata).decode(
        ids[: fixture["n_ids"]].tolist()))
    f32, q8, kld = tmp_path / "f32.gguf", tmp_path / "q8_0.gguf", tmp_path / "f32.kld"
    assert export.main([str(default_model_path), str(f32), "F32"]) == 0
    assert export.main([str(f32), str(q8), "Q8_0"]) == 0
    rc, out, err = call("-m", f32, "--perplexity", "-f", text, "-c", fixture["n_ctx"], "--chunks", fixture["n_chunks"],
                        "--kl-divergence-base", kld)
    assert rc == 0 and out.strip() == fixture["our_final_estimate"], err  # the same base file as then
    for name, model in (("F32", f32), ("Q8_0", q8)):
        rc, out, err = call("-m", model, "--perplexity", "-f", text, "--kl-divergence", "--kl-divergence-base", kld)
        assert rc == 0, err
        ours, theirs = parse_report(out), fixture["llama_perplexity_reads_ours"][name]
        assert masked_layout(err[err.index("chunk "):] + out) == fixture["layout"]  # llama-perplexity's lines
        # read from the same file by both programs: the base's perplexity is the same to the last digit
        assert ours["Mean PPL(base)"][0] == pytest.approx(theirs["Mean PPL(base)"][0], abs=2e-6)
        assert ours["Mean PPL(base)"][1] == pytest.approx(theirs["Mean PPL(base)"][1], abs=2e-6)
        if name == "F32":  # the same weights in two implementations: float rounding only
            assert ours["Mean PPL(Q)"][0] == pytest.approx(theirs["Mean PPL(Q)"][0], rel=1e-4)
            assert ours["Mean    KLD"][0] < 1e-4 and theirs["Mean    KLD"][0] < 1e-4
