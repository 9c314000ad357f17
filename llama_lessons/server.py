"""An OpenAI-compatible HTTP server, in the shape of llama.cpp's llama-server, over the Python API.

    python run.py --server -m model.gguf [--host 127.0.0.1] [--port 8080]

    GET  /health                 {"status": "ok"}
    GET  /v1/models              the one model
    POST /v1/completions         OpenAI text completions (prompt: a string or token ids)
    POST /v1/chat/completions    OpenAI chat completions, with the model's chat template

Both POSTs take max_tokens, temperature, top_p, top_k, min_p, seed, stop, stream (and the penalties,
logit_bias, echo); the answer carries finish_reason "stop" or "length" and usage. With "stream": true
the answer is server-sent events, one `data: {chunk}` per piece of text, then `data: [DONE]`.

How it works, in three decisions:
  - the standard library's ThreadingHTTPServer: a thread per connection, no dependency. The model is
    one object with one KV cache, so the engine's lock makes the requests queue: one generates, the
    others wait in their threads (a stream holds the lock until its last event).
  - a client that goes away stops its generation: each event is written as soon as its text exists,
    and a write that fails (or a peek that finds the socket closed) closes the stream, which cancels
    the generation and releases the lock for the next request.
  - the request is distrusted: its size is limited, its JSON must be an object whose fields have the
    types OpenAI documents, and anything wrong (a prompt over the context included) is a 400 with an
    OpenAI-style error body, never a traceback; an unexpected failure is a 500 with the same shape.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # 1 MiB of JSON is far more than any context of text
DEFAULT_MAX_TOKENS = 16  # OpenAI's (and llama-cpp-python's) default for /v1/completions


class RequestError(Exception):
    """A bad request: its HTTP status and an OpenAI-style error."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.param, self.code, self.kind = status, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


class ClientGone(Exception):
    """The client closed its connection while we were answering."""


# ---- the request's fields ----------------------------------------------------------------------
# name -> (check, what the check wants); the checks take the value and return it (maybe converted)

def _number(lo=None, hi=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ValueError("a number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"a number between {lo} and {hi}" if hi is not None else f"a number >= {lo}")
        return float(v)
    return check


def _integer(lo=None, allow_none=False):
    def check(v):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("an integer" + (" or null" if allow_none else ""))
        if lo is not None and v < lo:
            raise ValueError(f"an integer >= {lo}")
        return v
    return check


def _boolean(v):
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _string(v):
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _stop(v):
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if isinstance(v, list) and len(v) <= 16 and all(isinstance(s, str) for s in v):
        return v
    raise ValueError("a string or a list of at most 16 strings")


def _logit_bias(v):
    if v is None:
        return None
    if not isinstance(v, dict) or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and -100 <= b <= 100
                                          for b in v.values()):
        raise ValueError("an object mapping token ids to numbers between -100 and 100")
    try:
        return {int(k): float(b) for k, b in v.items()}
    except ValueError:
        raise ValueError("an object whose keys are token ids") from None


def _only(value, what):
    def check(v):
        if v != value:
            raise ValueError(what)
        return v
    return check


def _no_logprobs(v):
    if v not in (None, False):
        raise ValueError("false or null (log-probabilities are not supported)")
    return False


def _prompt(v):
    if isinstance(v, str):
        return v
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
        return v[0]  # one prompt in a list: the client's batch of one
    if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v):
        return v
    raise ValueError("a string, a list of one string, or a non-empty list of token ids")


def _messages(v):
    from lessons.l10b_chat_template import validate_messages
    return validate_messages(v)  # ValueError says what is wrong


def _stream_options(v):
    if v is None or (isinstance(v, dict) and set(v) <= {"include_usage"} and v.get("include_usage") in (None, False)):
        return v
    raise ValueError("null (stream_options.include_usage is not supported)")


def _response_format(v):
    if v is None or (isinstance(v, dict) and v.get("type") == "text"):
        return v
    raise ValueError('{"type": "text"} (structured output is not supported)')


SAMPLING = {
    "model": _string, "max_tokens": _integer(0, allow_none=True), "temperature": _number(0, 2),
    "top_p": _number(0, 1), "top_k": _integer(), "min_p": _number(0, 1), "seed": _integer(allow_none=True),
    "stop": _stop, "stream": _boolean, "presence_penalty": _number(-2, 2), "frequency_penalty": _number(-2, 2),
    "repeat_penalty": _number(1e-6), "logit_bias": _logit_bias, "user": _string,
    "n": _only(1, "1 (one choice per request)"), "stream_options": _stream_options,
}
FIELDS = {
    "/v1/completions": {**SAMPLING, "prompt": _prompt, "echo": _boolean,
                        "logprobs": _only(None, "null (log-probabilities are not supported)"),
                        "best_of": _only(1, "1"), "suffix": _only(None, "null (suffixes are not supported)")},
    "/v1/chat/completions": {**SAMPLING, "messages": _messages, "max_completion_tokens": _integer(0, allow_none=True),
                             "logprobs": _no_logprobs,
                             "top_logprobs": _only(None, "null"), "response_format": _response_format},
}
REQUIRED = {"/v1/completions": "prompt", "/v1/chat/completions": "messages"}


# --8<-- [start:parse]
def parse_request(path: str, body: bytes) -> dict:
    """The JSON body of a POST to path, checked field by field: {name: value}."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, ValueError) as e:
        raise RequestError(f"the body is not valid JSON: {e}") from None
    if not isinstance(request, dict):
        raise RequestError("the body must be a JSON object")
    fields = FIELDS[path]
    required = REQUIRED[path]
    if required not in request:
        raise RequestError(f"'{required}' is required", param=required)
    checked = {}
    for name, value in request.items():
        if name not in fields:
            raise RequestError(f"unrecognized request argument: '{name}'", param=name)
        try:
            checked[name] = fields[name](value)
        except ValueError as e:
            raise RequestError(f"'{name}' must be {e}", param=name) from None
    return checked
# --8<-- [end:parse]


# ---- the server ----------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llama-lessons"
    timeout = 60  # a client that sends nothing for this long is dropped (reads only; generation is not timed)
    server: LlamaServer

    # -- plumbing --
    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def send_json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, e: RequestError) -> None:
        self.send_json(e.status, e.body())

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (a garbled request line, an unsupported method...): JSON too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsed: answer with a status line all the same
            self.request_version = "HTTP/1.0"
        kind = "not_found_error" if code == 404 else "invalid_request_error" if code < 500 else "server_error"
        self.send_json(code, RequestError(message or explain or f"HTTP {code}", code, kind=kind).body())

    # --8<-- [start:gone]
    def client_gone(self) -> bool:
        """True when the client closed its side (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
    # --8<-- [end:gone]

    def read_body(self) -> bytes:
        self.close_connection = True  # until the body is read: an unread body must not pass for a request
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError("send the body with a Content-Length, not chunked", status=411)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise RequestError("a Content-Length header is required", status=411) from None
        if length < 0:
            raise RequestError("a Content-Length header is required", status=411)
        if length > MAX_BODY:
            raise RequestError(f"the body is {length} bytes; the limit is {MAX_BODY}", status=413)
        body = self.rfile.read(length)
        if len(body) < length:
            raise ClientGone
        self.close_connection = self.headers.get("Connection", "").lower() == "close"
        return body

    # -- routes --
    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(200, {"status": "ok"})
        elif path in ("/v1/models", "/models"):
            self.send_json(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "created": self.server.created,
                 "owned_by": "llama-lessons"}]})
        else:
            self.send_error_json(RequestError(f"no route for GET {path}", status=404, kind="not_found_error"))

    def do_POST(self):  # noqa: N802
        path = self.path.split("?", 1)[0]
        path = {"/completions": "/v1/completions", "/chat/completions": "/v1/chat/completions"}.get(path, path)
        try:
            if path not in FIELDS:
                self.read_body()  # keep the connection in step before answering
                raise RequestError(f"no route for POST {path}", status=404, kind="not_found_error")
            request = parse_request(path, self.read_body())
            self.answer(path, request)
        except RequestError as e:
            self.send_error_json(e)
        except ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # the promise: never a traceback, never a dead server
            message = f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            try:
                self.send_error_json(RequestError(message, status=500, kind="server_error"))
            except OSError:
                self.close_connection = True

    def do_PUT(self):  # noqa: N802
        self.send_error_json(RequestError(f"no route for PUT {self.path}", status=404, kind="not_found_error"))

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    # -- the answer --
    def answer(self, path: str, request: dict) -> None:
        llm = self.server.llm
        stream = request.pop("stream", False)
        request.pop("user", None)
        request.pop("n", None)
        request.pop("stream_options", None)
        request.pop("best_of", None)
        request.pop("response_format", None)
        request["model"] = self.server.model_name  # the one model, whatever the client called it
        if path == "/v1/chat/completions":
            if "max_completion_tokens" in request:  # OpenAI's newer name
                request["max_tokens"] = request.pop("max_completion_tokens")
            call = llm.create_chat_completion
        else:
            request.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
            call = llm.create_completion
        try:
            result = call(**request, stream=stream)
        except ValueError as e:  # a prompt over the context, messages the template refuses, ...
            code = "context_length_exceeded" if type(e).__name__ == "ContextOverflow" else None
            raise RequestError(str(e).splitlines()[0] if str(e) else "invalid request", code=code) from None
        if not stream:
            self.send_json(200, result)
            return
        self.stream_events(result)

    # --8<-- [start:stream]
    def stream_events(self, chunks) -> None:
        """Server-sent events, one per chunk, then [DONE]; a client gone closes (cancels) the stream."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")  # the stream's end is the connection's end
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in chunks:
                if self.client_gone():
                    raise ClientGone
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            raise ClientGone from None
        except Exception as e:  # the status line is gone already: the error becomes the last event
            error = RequestError(f"internal error: {type(e).__name__}: {e}", status=500, kind="server_error")
            self.wfile.write(b"data: " + json.dumps(error.body()).encode() + b"\n\n")
        finally:
            chunks.close()  # cancels a generation still running and releases the model's lock
            self.server.on_stream_closed()
    # --8<-- [end:stream]


class LlamaServer(ThreadingHTTPServer):
    daemon_threads = True  # a thread still answering does not keep the process alive at exit
    allow_reuse_address = True

    def __init__(self, llm, host: str = "127.0.0.1", port: int = 8080, model_name: str = "llama-lessons",
                 verbose: bool = False):
        self.llm, self.model_name, self.verbose = llm, model_name, verbose
        self.created = int(time.time())
        self.streams_closed = 0  # how many streams ended (finished or cancelled): tests wait on it
        if ":" in host:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    def on_stream_closed(self) -> None:
        self.streams_closed += 1

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve(llm, host: str = "127.0.0.1", port: int = 8080, model_name: str = "llama-lessons", err=None) -> None:
    """Serve until Ctrl-C; one line with the URL on stderr."""
    err = err or sys.stderr
    server = LlamaServer(llm, host, port, model_name)
    print(f"server: listening on {server.url} (model {model_name}; Ctrl-C stops)", file=err, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
