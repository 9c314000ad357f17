"""The OpenAI-compatible server (llama_lessons/server.py, run.py --server), spoken to by the official
`openai` client and by raw sockets: answers equal to lesson 10's greedy loop on the template rendered by
hand, streams, queueing of concurrent clients, a client gone mid-stream, and every bad request."""
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lessons.l01_gguf import GGUFFile
from lessons.l02_tokenizer import Tokenizer
from llama_lessons.api import Llama
from llama_lessons.server import MAX_BODY, LlamaServer
from test_chat import CHATML, chatml, greedy_reply

openai = pytest.importorskip("openai", reason="the openai client is a dev dependency")

N_CTX = 256
BACKEND = "numpy"  # the lessons' model: always there, and fast enough for a tiny one


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from conftest import build_tiny_llama
    return build_tiny_llama(tmp_path_factory.mktemp("server"), n_ctx_train=N_CTX,
                            metadata={"tokenizer.chat_template": CHATML})


@pytest.fixture(scope="module")
def server(model_path):
    llm = Llama(model_path=str(model_path), n_ctx=N_CTX, backend=BACKEND, verbose=False)
    srv = LlamaServer(llm, "127.0.0.1", 0, model_name="tiny")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def no_eog(model_path):
    """logit_bias that bans every end-of-generation token: the random tiny model then fills max_tokens."""
    tok = Tokenizer.from_metadata(GGUFFile(model_path).metadata)
    return {str(t): -100 for t in sorted(tok.eot_ids)}


def request(port, method, path, body=None):
    """(status, body) of one plain HTTP request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"} if body is not None else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def greedy(model_path, prompt, n):
    return greedy_reply(model_path, prompt, n, BACKEND, N_CTX, ban_eog=True)[0]


# ---- the answers -------------------------------------------------------------------------------

def test_health_and_models(server, client):
    status, raw = request(server.server_address[1], "GET", "/health")
    assert status == 200 and json.loads(raw) == {"status": "ok"}
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_chat_equals_greedy_continuation_of_the_template(client, model_path, no_eog):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
    r = client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=12,
                                       logit_bias=no_eog)
    prompt = chatml(messages)  # ChatML by hand, not through jinja2
    assert r.choices[0].message.content == greedy(model_path, prompt, 12)
    assert r.choices[0].message.role == "assistant" and r.choices[0].finish_reason == "length"
    n_prompt = len(Tokenizer.from_metadata(GGUFFile(model_path).metadata).encode(prompt))
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (n_prompt, 12, n_prompt + 12)
    assert r.object == "chat.completion"


def test_chat_streamed(client, model_path, no_eog):
    messages = [{"role": "user", "content": "the lazy dog"}]
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=10,
                                                 logit_bias=no_eog, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == greedy(model_path, chatml(messages), 10)
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_completion_and_stream(client, model_path, no_eog):
    r = client.completions.create(model="tiny", prompt="the quick brown", temperature=0, max_tokens=9,
                                  logit_bias=no_eog)
    expected = greedy(model_path, "the quick brown", 9)
    assert r.choices[0].text == expected and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 9 and r.object == "text_completion"
    chunks = list(client.completions.create(model="tiny", prompt="the quick brown", temperature=0, max_tokens=9,
                                            logit_bias=no_eog, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == expected and chunks[-1].choices[0].finish_reason == "length"


def test_stop_string_ends_with_finish_reason_stop(client, model_path, no_eog):
    expected = greedy(model_path, "hello world", 12)
    stop = expected[4:6]
    assert len(stop) == 2 and stop.strip()
    r = client.completions.create(model="tiny", prompt="hello world", temperature=0, max_tokens=12,
                                  logit_bias=no_eog, stop=[stop])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].text == expected[: expected.index(stop)]


def test_seed_makes_sampling_repeatable(client):
    def ask(seed):
        return client.completions.create(model="tiny", prompt="the end", temperature=1.0, top_p=1.0, max_tokens=8,
                                         seed=seed, extra_body={"top_k": 0, "min_p": 0.0}).choices[0].text
    assert ask(7) == ask(7)
    assert len({ask(s) for s in range(1, 5)}) > 1  # the seed is used


def test_eight_concurrent_clients_get_the_answers_of_one_at_a_time(client, no_eog):
    prompts = [f"{w} the" for w in "quick brown fox jumps over lazy dog hello".split()]

    def ask(prompt):
        return client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=8,
                                         logit_bias=no_eog).choices[0].text
    alone = [ask(p) for p in prompts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, prompts))
    assert together == alone and len(set(alone)) > 1


# ---- a client gone mid-stream ------------------------------------------------------------------

def raw_post(port, path, body: bytes):
    return request(port, "POST", path, body)


def test_client_killed_mid_stream_stops_its_generation(server, client, no_eog, monkeypatch):
    model = server.llm.engine.model
    forward = model.forward

    def slow_forward(*args, **kwargs):  # 20 ms a token: 300 tokens would take 6 s
        time.sleep(0.02)
        return forward(*args, **kwargs)
    monkeypatch.setattr(model, "forward", slow_forward)
    closed = server.streams_closed
    body = json.dumps({"prompt": "the quick", "max_tokens": 200, "stream": True, "temperature": 0,
                       "logit_bias": no_eog}).encode()
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=30)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    received = b""
    while received.count(b"data: ") < 3:
        received += sock.recv(4096)
    sock.close()  # the client is gone
    t0 = time.monotonic()
    while server.streams_closed == closed and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    assert server.streams_closed == closed + 1
    engine = server.llm.engine
    with engine.lock:  # the generation has let go of the model
        n_generated = len(engine.cached) - len(engine.tokenize("the quick"))
    assert n_generated < 50, n_generated  # stopped within a few tokens of the disconnect, not at 200
    monkeypatch.setattr(model, "forward", forward)
    r = client.completions.create(model="tiny", prompt="the quick", temperature=0, max_tokens=3, logit_bias=no_eog)
    assert r.choices[0].finish_reason == "length"  # and the server goes on serving


# ---- bad requests: 400 (or 404, 411, 413) with an OpenAI error body, never a crash -------------

LONG = "the quick brown fox " * 200  # far over 256 tokens


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", b"{not json", None),
    ("/v1/chat/completions", b"\xff\xfe", None),
    ("/v1/chat/completions", b"[1, 2]", None),
    ("/v1/chat/completions", b"{}", "messages"),
    ("/v1/completions", b'{"max_tokens": 3}', "prompt"),
    ("/v1/chat/completions", b'{"messages": "hi"}', "messages"),
    ("/v1/chat/completions", b'{"messages": []}', "messages"),
    ("/v1/chat/completions", b'{"messages": [{"role": 1, "content": "x"}]}', "messages"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": 5}]}', "messages"),
    ("/v1/completions", b'{"prompt": {"a": 1}}', "prompt"),
    ("/v1/completions", b'{"prompt": []}', "prompt"),
    ("/v1/completions", b'{"prompt": "x", "temperature": "hot"}', "temperature"),
    ("/v1/completions", b'{"prompt": "x", "temperature": -1}', "temperature"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": "many"}', "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": -5}', "max_tokens"),
    ("/v1/completions", b'{"prompt": "x", "top_p": 1.5}', "top_p"),
    ("/v1/completions", b'{"prompt": "x", "top_k": 1.5}', "top_k"),
    ("/v1/completions", b'{"prompt": "x", "min_p": true}', "min_p"),
    ("/v1/completions", b'{"prompt": "x", "seed": "x"}', "seed"),
    ("/v1/completions", b'{"prompt": "x", "stop": 5}', "stop"),
    ("/v1/completions", b'{"prompt": "x", "stream": "yes"}', "stream"),
    ("/v1/completions", b'{"prompt": "x", "n": 2}', "n"),
    ("/v1/completions", b'{"prompt": "x", "logprobs": 3}', "logprobs"),
    ("/v1/completions", b'{"prompt": "x", "logit_bias": {"a": 1}}', "logit_bias"),
    ("/v1/completions", b'{"prompt": "x", "frobnicate": 1}', "frobnicate"),
    ("/v1/completions", b'{"prompt": [1, 2, 99999]}', None),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "response_format": '
                             b'{"type": "json_object"}}', "response_format"),
])
def test_bad_request_is_400_with_an_openai_error(server, path, body, param):
    status, raw = raw_post(server.server_address[1], path, body)
    assert status == 400, raw
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and error["param"] == param


def test_prompt_over_the_context_is_400(client, server):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt=LONG, max_tokens=4)
    assert e.value.status_code == 400 and "context" in e.value.body["message"]
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": LONG}], stream=True)


def test_unknown_paths_are_404(server):
    for method, path in (("GET", "/nope"), ("POST", "/v1/nope"), ("DELETE", "/v1/models")):
        status, raw = request(server.server_address[1], method, path, b"{}" if method == "POST" else None)
        assert status == 404 and json.loads(raw)["error"]["type"] == "not_found_error"


def read_all(sock) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


@pytest.mark.parametrize("raw", [b"GARBAGE\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n",
                                 b"OPTIONS /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"])
def test_garbled_http_gets_a_json_error_too(server, raw):
    sock = socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10)
    sock.sendall(raw)
    head, _, body = read_all(sock).partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"501", b"505") and "error" in json.loads(body)


def test_body_size_is_limited_and_length_required(server):
    port = server.server_address[1]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                 + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode() + b"{")  # the rest never comes
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413") and b"invalid_request_error" in answer
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 411") and answer.count(b"HTTP/1.1") == 1
    status, _ = raw_post(port, "/v1/completions", b'{"prompt": "x", "max_tokens": 1}')
    assert status == 200  # still serving


# ---- run.py --server ---------------------------------------------------------------------------

def test_run_py_server_listens_on_localhost_and_prints_its_url(model_path):
    run_py = Path(__file__).resolve().parents[1] / "run.py"
    proc = subprocess.Popen([sys.executable, str(run_py), "--server", "-m", str(model_path), "--backend", "numpy",
                             "-c", "128", "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert line.startswith("server: listening on http://127.0.0.1:"), line
        url = line.split()[3]
        port = int(url.rsplit(":", 1)[1])
        status, raw = request(port, "POST", "/v1/chat/completions",
                              json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}))
        assert status == 200 and json.loads(raw)["model"] == model_path.name
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


@pytest.mark.parametrize("argv,words", [(["--server", "--port", "70000"], "--port"),
                                        (["--server", "--port", "-1"], "--port"),
                                        (["--server", "--perplexity"], "not allowed with"),
                                        (["--port", "9000", "-p", "hi"], "go with --server"),
                                        (["--host", "0.0.0.0", "-p", "hi"], "go with --server")])
def test_run_py_server_bad_flags(argv, words):
    import io

    import run
    err = io.StringIO()
    assert run.main(argv, io.StringIO(), err) == 2
    assert len(err.getvalue().splitlines()) == 1 and words in err.getvalue()


def test_run_py_server_port_in_use_is_one_line(model_path):
    import io

    import run
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        err = io.StringIO()
        rc = run.main(["--server", "-m", str(model_path), "--backend", "numpy", "-c", "64",
                       "--port", str(taken.getsockname()[1])], io.StringIO(), err)
    assert rc == 1 and len(err.getvalue().splitlines()) == 1 and "cannot listen on 127.0.0.1:" in err.getvalue()


def test_an_error_inside_a_stream_is_its_last_event(server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the model broke")
    monkeypatch.setattr(server.llm.engine.model, "forward", broken)
    status, raw = raw_post(server.server_address[1], "/v1/completions",
                           b'{"prompt": "the end", "max_tokens": 4, "stream": true}')
    monkeypatch.undo()
    events = [e for e in raw.decode().split("\n\n") if e]
    assert status == 200 and json.loads(events[-1][len("data: "):])["error"]["type"] == "server_error"
    status, _ = raw_post(server.server_address[1], "/v1/completions", b'{"prompt": "x", "max_tokens": 1}')
    assert status == 200  # and the lock was released


def test_default_model_chat_through_run_py_server(default_model_path):
    from test_chat import SMOL_SYSTEM
    pytest.importorskip("cpp_core.model", reason="the C++ core is not built")
    run_py = Path(__file__).resolve().parents[1] / "run.py"
    proc = subprocess.Popen([sys.executable, str(run_py), "--server", "-c", "256", "-t", "1", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stderr.readline().split()[3]
        client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        r = client.chat.completions.create(model="any", messages=messages, temperature=0, max_tokens=16)
        expected, tokens, eog = greedy_reply(default_model_path, chatml(messages, SMOL_SYSTEM), 16, "cpp", 256)
        assert r.choices[0].message.content == expected and "Paris" in expected
        assert r.choices[0].finish_reason == ("stop" if eog else "length") and r.usage.completion_tokens == len(tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()
