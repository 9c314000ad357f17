"""The Python API (llama_lessons.Llama, llama-cpp-python's shape): completions and chat against the greedy
continuation computed by lesson 10's loop on a fresh model, OpenAI's object shapes, streaming, stop strings,
prefix reuse, tokenize/detokenize, thread safety, and errors."""
import inspect
import threading

import pytest

from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer
from llama_lessons import Llama
from test_chat import CHATML, SMOL_SYSTEM, chatml, greedy_reply

BACKENDS = ["numpy", "cpp"]


def backend_param(backend):
    if backend == "cpp":
        pytest.importorskip("cpp_core.model", reason="C++ model not built")
    return backend


@pytest.fixture
def chat_model(tiny_llama):
    return tiny_llama(n_ctx_train=128, metadata={"tokenizer.chat_template": CHATML})


def no_eog(path) -> dict:
    """A logit_bias banning every end-of-generation token, so a random model fills max_tokens."""
    return {t: float("-inf") for t in Tokenizer.from_metadata(GGUFFile(path).metadata).eot_ids}


# ---- completions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_completion_is_greedy_continuation(chat_model, backend):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend=backend_param(backend), verbose=False)
    expected, tokens, _ = greedy_reply(chat_model, "the quick brown", 6, backend, 128, ban_eog=True)
    out = llm("the quick brown", max_tokens=6, temperature=0, logit_bias=no_eog(chat_model))
    assert out["object"] == "text_completion" and out["id"].startswith("cmpl-")
    assert isinstance(out["created"], int) and out["model"] == str(chat_model)
    choice = out["choices"][0]
    assert choice == {"text": expected, "index": 0, "logprobs": None, "finish_reason": "length"}
    n_prompt = len(llm.tokenize(b"the quick brown", special=True))
    assert out["usage"] == {"prompt_tokens": n_prompt, "completion_tokens": 6, "total_tokens": n_prompt + 6}
    echoed = llm.create_completion("the quick brown", max_tokens=6, temperature=0, echo=True,
                                   logit_bias=no_eog(chat_model))
    assert echoed["choices"][0]["text"] == "the quick brown" + expected


def test_completion_stream_and_stop(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    bias = no_eog(chat_model)
    full = llm("hello", max_tokens=12, temperature=0, logit_bias=bias)["choices"][0]["text"]
    chunks = list(llm("hello", max_tokens=12, temperature=0, logit_bias=bias, stream=True))
    assert "".join(c["choices"][0]["text"] for c in chunks) == full
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    assert all(c["object"] == "text_completion" and c["id"] == chunks[0]["id"] for c in chunks)
    # a stop string from the middle of that text: the text before it, without it, finish_reason "stop"
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = full[:full.index(stop)]
    out = llm("hello", max_tokens=12, temperature=0, logit_bias=bias, stop=[stop, "\x00never"])
    assert out["choices"][0]["text"] == cut and out["choices"][0]["finish_reason"] == "stop"
    streamed = list(llm("hello", max_tokens=12, temperature=0, logit_bias=bias, stop=stop, stream=True))
    assert "".join(c["choices"][0]["text"] for c in streamed) == cut  # nothing of the stop string leaks out
    assert streamed[-1]["choices"][0]["finish_reason"] == "stop"


def test_same_seed_same_text(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    a = llm("the", max_tokens=8, temperature=1.0, seed=7)["choices"][0]["text"]
    b = llm("the", max_tokens=8, temperature=1.0, seed=7)["choices"][0]["text"]
    assert a == b


def test_prefix_reuse_evaluates_only_new_tokens(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    llm("the quick brown fox", max_tokens=1, temperature=0)
    before = llm.engine.n_evaluated
    llm("the quick brown fox", max_tokens=1, temperature=0)  # all cached: only the last token, for its logits
    assert llm.engine.n_evaluated - before == 1
    old, new = llm.tokenize(b"the quick brown fox"), llm.tokenize(b"the quick brown fox jumps over")
    assert new[:len(old)] == old
    before = llm.engine.n_evaluated
    llm("the quick brown fox jumps over", max_tokens=1, temperature=0)
    assert llm.engine.n_evaluated - before == len(new) - len(old)  # the new words only


# ---- chat ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_is_greedy_continuation_tiny(chat_model, backend):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend=backend_param(backend), verbose=False)
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    expected, _, eog = greedy_reply(chat_model, chatml(msgs), 8, backend, 128)
    out = llm.create_chat_completion(messages=msgs, temperature=0, max_tokens=8)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": expected},
                               "logprobs": None, "finish_reason": "stop" if eog else "length"}]


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_default_model(default_model_path, backend):
    llm = Llama(n_ctx=256, backend=backend_param(backend), verbose=False)  # model_path=None: the default model
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    expected, tokens, eog = greedy_reply(default_model_path, chatml(msgs, SMOL_SYSTEM), 16, backend, 256)
    out = llm.create_chat_completion(msgs, temperature=0, max_tokens=16)
    assert out["choices"][0]["message"]["content"] == expected and "Paris" in expected
    assert out["choices"][0]["finish_reason"] == ("stop" if eog else "length")
    assert out["usage"]["completion_tokens"] == len(tokens)
    assert out["usage"]["prompt_tokens"] == len(llm.tokenize(chatml(msgs, SMOL_SYSTEM).encode(), special=True))
    chunks = list(llm.create_chat_completion(msgs, temperature=0, max_tokens=16, stream=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == expected
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == out["choices"][0]["finish_reason"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_concurrent_calls_queue_for_the_model(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    prompts = ["the quick", "hello world", "the lazy dog", "the end"]
    expected = [llm(p, max_tokens=6, temperature=0)["choices"][0]["text"] for p in prompts]
    results = [None] * len(prompts)

    def work(i):
        results[i] = llm(prompts[i], max_tokens=6, temperature=0)["choices"][0]["text"]
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


# ---- tokens and small methods --------------------------------------------------------------------

def test_tokenize_detokenize_like_llama_cpp_python(tiny_llama):
    path = tiny_llama(vocab="spm")  # SentencePiece: add_bos_token true
    llm = Llama(model_path=str(path), n_ctx=64, backend="numpy", verbose=False)
    tok = Tokenizer.from_metadata(GGUFFile(path).metadata)
    assert llm.tokenize(b"the quick fox") == tok.encode("the quick fox") and llm.tokenize(b"x")[0] == llm.token_bos()
    assert llm.tokenize(b"the quick fox", add_bos=False) == tok.encode("the quick fox", add_bos=False)
    assert llm.detokenize(llm.tokenize(b"the quick fox")) == b"the quick fox"
    assert (llm.token_bos(), llm.token_eos(), llm.n_ctx()) == (1, 2, 64)
    with pytest.raises(TypeError):
        llm.tokenize("a str")


def test_special_tokens_parsed_only_when_asked(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=64, backend="numpy", verbose=False)
    im_start = Tokenizer.from_metadata(GGUFFile(chat_model).metadata).token_to_id["<|im_start|>"]
    assert llm.tokenize(b"<|im_start|>", special=True) == [im_start]
    assert im_start not in llm.tokenize(b"<|im_start|>", special=False)
    assert llm.detokenize([im_start]) == b"" and llm.detokenize([im_start], special=True) == b"<|im_start|>"


# ---- errors --------------------------------------------------------------------------------------

def test_prompt_over_the_context_is_a_value_error(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=16, backend="numpy", verbose=False)
    with pytest.raises(ValueError, match="context"):
        llm("the quick brown fox jumps over the lazy dog " * 3)
    with pytest.raises(ValueError, match="context"):
        llm.create_chat_completion([{"role": "user", "content": "the quick brown fox " * 5}], stream=True)


@pytest.mark.parametrize("kwargs,words", [
    (dict(grammar="root ::= x"), "grammar"),
    (dict(logprobs=3), "logprobs"),
    (dict(temperature="hot"), "temperature"),
    (dict(stop=[1]), "stop"),
    (dict(logit_bias={"x": 1}), "logit_bias"),
    (dict(max_tokens=1.5), "max_tokens"),
    (dict(min_p=1.5), "min_p"),
    (dict(top_p=-0.1), "top_p"),
    (dict(repeat_penalty=0), "repeat_penalty"),
    (dict(seed="x"), "seed"),
])
def test_bad_arguments_are_value_errors(chat_model, kwargs, words):
    llm = Llama(model_path=str(chat_model), n_ctx=64, backend="numpy", verbose=False)
    with pytest.raises(ValueError, match=words):
        llm("the", **kwargs)


@pytest.mark.parametrize("messages", [[], [{"content": "no role"}], [{"role": "user", "content": 5}], "hi"])
def test_bad_messages(chat_model, messages):
    llm = Llama(model_path=str(chat_model), n_ctx=64, backend="numpy", verbose=False)
    with pytest.raises(ValueError, match="messages"):
        llm.create_chat_completion(messages)


def test_model_without_template(tiny_llama):
    llm = Llama(model_path=str(tiny_llama()), n_ctx=64, backend="numpy", verbose=False)
    with pytest.raises(ValueError, match="no chat template"):
        llm.create_chat_completion([{"role": "user", "content": "hi"}])
    llm2 = Llama(model_path=str(tiny_llama()), n_ctx=64, backend="numpy", verbose=False, chat_template=CHATML)
    assert llm2.create_chat_completion([{"role": "user", "content": "hi"}], max_tokens=2)["object"] == "chat.completion"


def test_an_unfinished_stream_does_not_block_the_next_call(chat_model):
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    stream = llm("the", max_tokens=8, temperature=0, stream=True)
    next(stream), next(stream)  # the stream now holds the model
    result = []
    worker = threading.Thread(target=lambda: result.append(llm("hello", max_tokens=2, temperature=0)))
    worker.start()
    worker.join(timeout=0.5)
    assert worker.is_alive() and not result  # another thread queues behind the stream...
    rest = list(stream)
    worker.join(timeout=30)
    assert result and rest[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    stream = llm("the", max_tokens=8, temperature=0, stream=True)
    next(stream), next(stream)
    # ...while the thread that left it unfinished may simply start again (llama-cpp-python allows it)
    assert llm("hello", max_tokens=2, temperature=0)["choices"][0]["text"] == result[0]["choices"][0]["text"]


def test_a_stream_resumed_from_another_thread(chat_model):
    """A server may hand each next() of a stream to a different worker thread."""
    llm = Llama(model_path=str(chat_model), n_ctx=128, backend="numpy", verbose=False)
    expected = llm("the quick", max_tokens=6, temperature=0, logit_bias=no_eog(chat_model))["choices"][0]["text"]
    stream = llm("the quick", max_tokens=6, temperature=0, logit_bias=no_eog(chat_model), stream=True)
    pieces = [next(stream)["choices"][0]["text"]]
    worker = threading.Thread(target=lambda: pieces.extend(c["choices"][0]["text"] for c in stream))
    worker.start()
    worker.join(timeout=30)
    assert "".join(pieces) == expected
    assert llm("the quick", max_tokens=1, temperature=0)["object"] == "text_completion"  # the lock was released


# llama-cpp-python 0.3.36's signatures (llama_cpp/llama.py, class Llama): parameter names, order and defaults.
_COMPLETION = [("prompt", None), ("suffix", None), ("max_tokens", 16), ("temperature", 0.8), ("top_p", 0.95),
               ("min_p", 0.05), ("typical_p", 1.0), ("logprobs", None), ("echo", False), ("stop", []),
               ("frequency_penalty", 0.0), ("presence_penalty", 0.0), ("repeat_penalty", 1.0), ("top_k", 40),
               ("stream", False), ("seed", None), ("tfs_z", 1.0), ("mirostat_mode", 0), ("mirostat_tau", 5.0),
               ("mirostat_eta", 0.1), ("model", None), ("stopping_criteria", None), ("logits_processor", None),
               ("grammar", None), ("logit_bias", None)]
LLAMA_CPP_PYTHON = {
    "create_completion": _COMPLETION,
    "__call__": _COMPLETION,
    "create_chat_completion": [
        ("messages", None), ("functions", None), ("function_call", None), ("tools", None), ("tool_choice", None),
        ("temperature", 0.2), ("top_p", 0.95), ("top_k", 40), ("min_p", 0.05), ("typical_p", 1.0),
        ("stream", False), ("stop", []), ("seed", None), ("response_format", None), ("max_tokens", None),
        ("presence_penalty", 0.0), ("frequency_penalty", 0.0), ("repeat_penalty", 1.0), ("tfs_z", 1.0),
        ("mirostat_mode", 0), ("mirostat_tau", 5.0), ("mirostat_eta", 0.1), ("model", None),
        ("logits_processor", None), ("grammar", None), ("logit_bias", None), ("logprobs", None),
        ("top_logprobs", None)],
    "tokenize": [("text", None), ("add_bos", True), ("special", False)],
    "detokenize": [("tokens", None), ("prev_tokens", None), ("special", False)],
    "n_ctx": [], "token_bos": [], "token_eos": [],
}


@pytest.mark.parametrize("method", list(LLAMA_CPP_PYTHON))
def test_signatures_are_llama_cpp_pythons(method):
    """Positional and keyword calls written for llama-cpp-python bind the same way here."""
    params = list(inspect.signature(getattr(Llama, method)).parameters.values())[1:]  # less self
    got = [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]
    assert got == LLAMA_CPP_PYTHON[method]
    init = inspect.signature(Llama.__init__).parameters
    assert list(init)[1] == "model_path" and init["n_ctx"].default == 512 and init["seed"].default == 0xFFFFFFFF


# ---- the engine underneath -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_reuse_gives_the_logits_of_a_fresh_evaluation(chat_model, backend):
    """Reusing the cache (a longer prompt, then one that branches off earlier) must not change a single logit."""
    import numpy as np
    from llama_lessons.engine import Engine
    from test_chat import backend_model

    engine = Engine.load(str(chat_model), backend=backend_param(backend), n_ctx=128, n_threads=1)
    a = engine.tokenize("the quick brown fox")
    b = engine.tokenize("the quick brown fox jumps over the lazy dog")
    c = engine.tokenize("the quick red hello world")
    assert b[:len(a)] == a and 0 < sum(1 for x, y in zip(b, c) if x == y) < len(a)
    for ids, n_new in ((a, len(a)), (b, len(b) - len(a)), (c, None), (a, None)):
        before = engine.n_evaluated
        got = engine.evaluate(ids)
        fresh = backend_model(backend, GGUFFile(chat_model), 128).forward(np.asarray(ids, np.int32), 0)[-1]
        np.testing.assert_allclose(got, fresh, rtol=1e-5, atol=1e-5)
        if n_new is not None:
            assert engine.n_evaluated - before == n_new


def test_cancel_from_another_thread(chat_model):
    from llama_lessons.engine import Engine
    from lessons.l09_sampling import SamplingParams

    engine = Engine.load(str(chat_model), backend="numpy", n_ctx=128)
    ids = engine.tokenize("the")
    gen = engine.generate(ids, 50, SamplingParams(temp=0, logit_bias=no_eog(chat_model)))
    pieces = iter(gen)
    next(pieces)
    canceller = threading.Thread(target=gen.cancel)
    canceller.start()
    canceller.join()
    rest = list(pieces)
    assert gen.stopped_by == "cancelled" and len(gen.tokens) < 50 and len(rest) <= 1
    # the cache holds the prompt and the tokens fed back: a new call reuses them
    follow = ids + gen.tokens[:-1]
    assert engine.reusable_prefix(follow + [5]) == len(follow)


# ---- the same calls through llama-cpp-python itself (tools/make_chat_fixture.py) -------------------

def test_same_answers_as_llama_cpp_python(default_model_path):
    """llama-cpp-python's Llama on the F32 weights, rendering the GGUF's template itself, answered these calls
    (tools/make_chat_fixture.py); the same code with llama_lessons.Llama (numpy: F32 math) answers alike."""
    import json
    from pathlib import Path

    fixture = json.loads((Path(__file__).parent / "fixtures" / "chat_llama_cpp_python.json").read_text())
    llm = Llama(n_ctx=512, backend="numpy", seed=0, verbose=False)
    for chat in fixture["chats"]:
        out = llm.create_chat_completion(messages=chat["messages"], temperature=0, max_tokens=chat["max_tokens"])
        assert out["choices"][0]["message"]["content"] == chat["content"]
        assert out["choices"][0]["finish_reason"] == chat["finish_reason"]
        assert out["usage"] == chat["usage"]
    for call in fixture["completions"]:
        args = {k: call[k] for k in ("prompt", "max_tokens", "stop", "frequency_penalty", "presence_penalty",
                                     "repeat_penalty", "logit_bias") if k in call}
        out = llm(**args, temperature=0)
        assert out["choices"][0]["text"] == call["text"] and out["choices"][0]["finish_reason"] == call["finish_reason"]
        assert out["usage"] == call["usage"]
    for t in fixture["tokenize"]:
        assert llm.tokenize(t["text"].encode(), add_bos=t["add_bos"], special=t["special"]) == t["ids"]
    for d in fixture["detokenize"]:
        assert llm.detokenize(d["ids"], special=d["special"]) == bytes(d["bytes"])
    # streams, chunk by chunk: the role, one piece per token, then an empty delta with the finish reason
    chat = fixture["chats"][0]
    chunks = llm.create_chat_completion(messages=chat["messages"], temperature=0, max_tokens=32, stream=True)
    assert [{"delta": c["choices"][0]["delta"], "finish_reason": c["choices"][0]["finish_reason"],
             "object": c["object"]} for c in chunks] == fixture["chat_stream"]
    call = fixture["completions"][1]
    chunks = llm(call["prompt"], max_tokens=call["max_tokens"], temperature=0, stream=True)
    assert [{"text": c["choices"][0]["text"], "finish_reason": c["choices"][0]["finish_reason"],
             "object": c["object"]} for c in chunks] == fixture["completion_stream"]
