"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

Tests of the `llm` policy go through the real stack (litellm -> openai SDK -> httpx -> HTTP) and end here, so
they exercise what a user with a local vLLM / Ollama / OpenAI-compatible endpoint would hit, without network or a
real key. Each POST to /v1/chat/completions (or /chat/completions) pops the next scripted `Reply`; requests are
recorded so a test can assert what was sent. A request with `"stream": true` gets the same reply as SSE chunks.

Use it as a fixture (`fake_openai`, import it into the test module) or as a context manager:

    with FakeOpenAI([tool_reply("propose_experiment", {...})]) as srv:
        litellm.completion(model="openai/test-model", api_base=srv.url + "/v1", ...)
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Reply:
    """One scripted answer. `body` (raw text) overrides everything but status and headers."""

    status: int = 200
    content: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)  # (function name, raw arguments text)
    delay: float = 0.0  # seconds to wait before answering (longer than the client timeout = a timeout)
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    prompt_tokens: int = 120
    completion_tokens: int = 40


def tool_reply(name: str, args: dict[str, Any] | str, content: str | None = None, **kw: Any) -> Reply:
    """A reply calling one tool; `args` as a string is sent verbatim (use it for malformed JSON)."""
    raw = args if isinstance(args, str) else json.dumps(args)
    return Reply(content=content, tool_calls=[(name, raw)], **kw)


def text_reply(content: str, **kw: Any) -> Reply:
    """A plain assistant message (e.g. a fenced ```json block for models without tool calling)."""
    return Reply(content=content, **kw)


def error_reply(status: int, message: str, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    """An OpenAI-style error body with the given HTTP status."""
    body = json.dumps({"error": {"message": message, "type": "error", "code": status}})
    return Reply(status=status, body=body, headers=dict(headers or {}), **kw)


def rate_limited(retry_after_ms: int = 1) -> Reply:
    """HTTP 429 with a short retry-after-ms, as OpenAI sends it."""
    return error_reply(429, "Rate limit reached for test-model", {"retry-after-ms": str(retry_after_ms)})


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    raw: str

    @property
    def body(self) -> dict[str, Any]:
        data = json.loads(self.raw)
        assert isinstance(data, dict)
        return data


class FakeOpenAI:
    """The server. `push()` scripts more replies; `requests` holds what clients sent, in order."""

    def __init__(self, replies: Iterable[Reply] = (), api_key: str | None = None,
                 responder: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[RecordedRequest] = []
        self.api_key = api_key  # when set, other Authorization headers get a 401
        self.responder = responder  # answers from the request body once the scripted queue is empty
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> FakeOpenAI:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # cuts scripted delays short so shutdown never waits on them
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------- script
    def push(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self, request: dict[str, Any]) -> Reply | None:
        with self._lock:
            if self.replies:
                return self.replies.popleft()
        return self.responder(request) if self.responder is not None else None

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)


def _completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": args}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "total_tokens": reply.prompt_tokens + reply.completion_tokens},
    }


def _pieces(text: str, n: int = 3) -> list[str]:
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _stream_chunks(reply: Reply, model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if reply.content:
        for part in _pieces(reply.content):
            yield chunk({"content": part})
    for i, (name, args) in enumerate(reply.tool_calls):
        yield chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for part in _pieces(args):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": {
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens}}


def _make_handler(srv: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a streamed body simply ends when the connection closes
        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            srv._record(RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, raw))
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
                return
            if srv.api_key is not None and self.headers.get("Authorization") != f"Bearer {srv.api_key}":
                self._send(401, json.dumps({"error": {"message": "bad key", "type": "invalid_request_error"}}))
                return
            try:
                req = json.loads(raw)
            except json.JSONDecodeError:
                req = {}
            reply = srv._next(req if isinstance(req, dict) else {})
            if reply is None:
                # 400, not 500: a client would retry a 5xx, and the test would wait for nothing
                self._send(400, json.dumps({"error": {"message": "fake server: no scripted reply left"}}))
                return
            if reply.delay and srv._closing.wait(reply.delay):
                return
            model = str(req.get("model") or "test-model")
            try:
                if reply.body is not None or reply.status != 200:
                    self._send(reply.status, reply.body or "", reply.headers)
                elif req.get("stream"):
                    include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
                    self._stream(reply, model, include_usage)
                else:
                    self._send(200, json.dumps(_completion(reply, model)), reply.headers)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
                pass

        def _send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: Reply, model: str, include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for c in _stream_chunks(reply, model, include_usage):
                self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started server with an empty script; `push()` replies in the test."""
    with FakeOpenAI() as srv:
        yield srv
