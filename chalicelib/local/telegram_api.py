"""A small fake of the Telegram Bot API for the embedded stack and the tests.

It answers ``POST /bot<token>/sendMessage`` as Telegram does and records every message it
accepted (``messages``), so a developer (``GET /messages`` on it) and a test can see what
Herald sent, exactly once each. Tests make it misbehave like Telegram: ``blocked`` chats
answer 403 ("bot was blocked by the user") and ``throttle(n, retry_after)`` answers the
next ``n`` calls 429 with ``parameters.retry_after``. Any token works; the token a message
came with is recorded (a test checks which bot sent it).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_SEND = re.compile(r"^/bot([^/]+)/sendMessage$")


@dataclass(frozen=True)
class SentMessage:
    token: str
    chat_id: str
    text: str
    parse_mode: str | None
    message_id: int


class FakeBotApi:
    """The fake Bot API on ``host`` (port 0: a free one); a ``Service`` of the stack."""

    name = "fake telegram bot api"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.messages: list[SentMessage] = []
        self.blocked: set[str] = set()
        self.calls = 0
        self._throttled: list[float] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = fake.answer(self.path, self.rfile.read(length))
                self._reply(status, answer)

            def do_GET(self) -> None:
                if self.path != "/messages":
                    self._reply(404, {"ok": False, "description": "Not Found"})
                    return
                with fake._lock:
                    listed = [m.__dict__ for m in fake.messages]
                self._reply(200, {"ok": True, "result": listed})

            def _reply(self, status: int, answer: dict[str, Any]) -> None:
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the stack's own logs say what Herald did

        self._host = host
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="herald-fake-telegram", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def throttle(self, times: int, retry_after: float) -> None:
        """Answer the next ``times`` sendMessage calls 429 with ``retry_after``."""
        with self._lock:
            self._throttled.extend([retry_after] * times)

    def answer(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Telegram's answer to one request (and the message recorded when accepted)."""
        match = _SEND.match(path)
        if match is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            request = json.loads(raw or b"{}")
            chat_id, text = str(request["chat_id"]), str(request["text"])
        except (ValueError, KeyError, TypeError):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request"}
        with self._lock:
            self.calls += 1
            if self._throttled:
                wait = self._throttled.pop(0)
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {wait:g}",
                    "parameters": {"retry_after": wait},
                }
            if chat_id in self.blocked:
                return 403, {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                }
            sent = SentMessage(
                match[1], chat_id, text, request.get("parse_mode"), len(self.messages) + 1
            )
            self.messages.append(sent)
        return 200, {
            "ok": True,
            "result": {"message_id": sent.message_id, "chat": {"id": chat_id}, "text": text},
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        self._server.server_close()
        return not self._thread.is_alive()
