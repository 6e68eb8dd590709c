"""A small OpenAI-compatible HTTP server on 127.0.0.1 that injects scripted faults (for the backend tests).

Each request to ``/v1/completions`` or ``/v1/chat/completions`` takes the next action of ``script``; when the
script is used up, ``default`` applies. Actions:

- ``"ok"``: 200 with a completion: text ``" query about <last word of the prompt>"`` cut before ``stop``
  strings, log-probs in ``logprob_style`` (``"openai"``: ``token_logprobs`` with one extra token for the
  stop string as some servers send, ``"llamacpp"``: ``content[i].logprob``, ``"none"``);
- ``"429"`` (with ``Retry-After: 0``), ``"500"``, ``"503"``, ``"400"``: that status with an error body;
- ``"hang"``: answer only after ``hang_seconds`` (longer than the client's timeout);
- ``"garbled"``: 200 with a body that is not JSON; ``"nochoices"``: 200 with JSON lacking ``choices``;
- ``"drop"``: close the connection without an answer.

``/tokenize`` answers 404 unless ``tokenize=True`` (then one id per character). Every request is
recorded in ``requests`` as (path, headers, parsed body).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def completion_words(prompt: str) -> list[str]:
    """The tokens the server 'generates' for a prompt: ' query', ' about', ' <last word>'."""
    last = prompt.split()[-1] if prompt.split() else "nothing"
    return [" query", " about", " " + last.strip(":?.")]


class FaultServer:
    def __init__(
        self,
        script: list[str] | None = None,
        default: str = "ok",
        logprob_style: str = "openai",
        hang_seconds: float = 3.0,
        tokenize: bool = False,
    ) -> None:
        self.script: deque[str] = deque(script or [])
        self.default = default
        self.logprob_style = logprob_style
        self.hang_seconds = hang_seconds
        self.tokenize = tokenize
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.actions: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def next_action(self) -> str:
        with self._lock:
            action = self.script.popleft() if self.script else self.default
            self.actions.append(action)
            return action

    def completion(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        chat = path.endswith("/chat/completions")
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        words = completion_words(prompt)
        text = "".join(words)
        stops = body.get("stop") or []
        cut = [text.find(s) for s in stops if s and text.find(s) >= 0]
        finish = "stop"
        if cut:
            text = text[: min(cut)]
        max_tokens = int(body.get("max_tokens") or 16)
        if max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
            text = "".join(words)
        lps = [-0.5 * (i + 1) for i in range(len(words))]
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if body.get("logprobs") and self.logprob_style == "openai":
            if chat:
                choice["logprobs"] = {"content": [{"token": w, "logprob": lp} for w, lp in zip(words, lps, strict=True)]}
            else:  # OpenAI/vLLM legacy format; the stop token is reported after the text, as some servers do
                choice["logprobs"] = {"tokens": [*words, "\n"], "token_logprobs": [*lps, -0.01]}
        elif body.get("logprobs") and self.logprob_style == "llamacpp":
            choice["logprobs"] = {"content": [{"token": w, "logprob": lp, "bytes": list(w.encode())} for w, lp in zip(words, lps, strict=True)]}
        return {
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model"),
            "choices": [choice],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(words)},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # silence
                pass

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                with server._lock:
                    server.requests.append((self.path, dict(self.headers.items()), body))
                if self.path == "/tokenize":
                    if server.tokenize and isinstance(body, dict):
                        self._send(200, json.dumps({"tokens": [ord(c) for c in body["content"]]}).encode())
                    else:
                        self._send(404, b'{"error": "not found"}')
                    return
                if self.path == "/detokenize" and server.tokenize and isinstance(body, dict):
                    self._send(200, json.dumps({"content": "".join(chr(t) for t in body["tokens"])}).encode())
                    return
                if self.path not in ("/v1/completions", "/v1/chat/completions"):
                    self._send(404, b'{"error": "not found"}')
                    return
                action = server.next_action()
                if action == "ok":
                    self._send(200, json.dumps(server.completion(self.path, body)).encode())
                elif action in ("429", "500", "503", "400"):
                    status = int(action)
                    msg = {"error": {"code": status, "message": f"injected {status}"}}
                    self._send(status, json.dumps(msg).encode(), {"Retry-After": "0"} if status == 429 else None)
                elif action == "hang":
                    deadline = time.monotonic() + server.hang_seconds
                    while time.monotonic() < deadline and not server._stop.is_set():
                        time.sleep(0.02)
                    with contextlib.suppress(OSError):  # the client may have given up
                        self._send(200, json.dumps(server.completion(self.path, body)).encode())
                elif action == "garbled":
                    self._send(200, b'{"choices": [{"text": "tru')
                elif action == "nochoices":
                    self._send(200, b'{"object": "text_completion", "usage": {}}')
                elif action == "drop":
                    self.close_connection = True
                    self.connection.close()
                else:
                    raise ValueError(f"unknown action {action}")

        return Handler
