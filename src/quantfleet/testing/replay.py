"""A loopback HTTP server that replays recorded exchanges, in order, to a real HTTP client.

A cassette is a JSON document ``{"exchanges": [{"request": ..., "response": ...}, ...]}``.
Each request names a ``method`` and ``path`` and may name ``query`` parameters
and ``json`` body fields, which the incoming request must carry (other fields
may be there too). Each response has a ``status`` and an optional ``json``
body; ``{"drop": true}`` closes the connection without answering (a lost
connection). The next request must match the next exchange: a request out of
order, or one nobody recorded, is answered 599 and listed in
:attr:`ReplayServer.mismatches`. So the client under test runs its own
transport (sockets, HTTP parsing, retries) against what the vendor said.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ReplayServer", "replaying"]


class ReplayServer:
    """Serve ``exchanges`` on 127.0.0.1 (a free port) from a thread; :attr:`url` is where."""

    def __init__(self, exchanges: list[dict[str, Any]]) -> None:
        self.exchanges = list(exchanges)
        self.served = 0
        self.mismatches: list[str] = []
        self._lock = threading.Lock()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read mismatches instead
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                response = replay._next(self.command, self.path, body)
                if response.get("drop"):
                    self.close_connection = True
                    self.connection.close()
                    return
                data = b"" if "json" not in response else json.dumps(response["json"]).encode()
                self.send_response(int(response["status"]))
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _answer  # noqa: N815 (http.server's names)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @classmethod
    def from_file(cls, path: Path) -> ReplayServer:
        """Return a server of the cassette at ``path``."""
        return cls(json.loads(path.read_text())["exchanges"])

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _next(self, method: str, target: str, body: bytes) -> dict[str, Any]:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        with self._lock:
            if self.served >= len(self.exchanges):
                self.mismatches.append(f"unrecorded {method} {target} (after all {len(self.exchanges)} exchanges)")
                return {"status": 599, "json": {"message": "no recorded exchange left"}}
            expected = self.exchanges[self.served]
            problem = _differs(expected["request"], method, parts.path, query, body)
            if problem:
                self.mismatches.append(f"exchange {self.served + 1}: {problem}")
                return {"status": 599, "json": {"message": problem}}
            self.served += 1
            answer: dict[str, Any] = expected["response"]
            return answer

    def start(self) -> None:
        """Serve from a thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def check(self) -> None:
        """Raise AssertionError unless every exchange was served, in order, and nothing else was asked."""
        assert not self.mismatches, "\n".join(self.mismatches)
        left = self.exchanges[self.served :]
        assert not left, f"{len(left)} recorded exchange(s) never asked for, first: {left[0]['request']}"


def _differs(expected: dict[str, Any], method: str, path: str, query: dict[str, str], body: bytes) -> str:
    want = f"{expected['method']} {expected['path']}"
    if (method, path) != (expected["method"], expected["path"]):
        return f"expected {want}, got {method} {path}"
    for name, value in expected.get("query", {}).items():
        if query.get(name) != str(value):
            return f"{want}: query {name}={query.get(name)!r}, recorded {value!r}"
    if "json" in expected:
        try:
            sent = json.loads(body or b"null")
        except ValueError:
            return f"{want}: the body is not JSON"
        for name, value in expected["json"].items():
            if not isinstance(sent, dict) or sent.get(name) != value:
                got = sent.get(name) if isinstance(sent, dict) else None
                return f"{want}: body field {name}={got!r}, recorded {value!r}"
    return ""


@contextmanager
def replaying(path: Path) -> Iterator[ReplayServer]:
    """Serve the cassette at ``path`` for the block; check afterwards that all of it was asked for, in order."""
    server = ReplayServer.from_file(path)
    server.start()
    try:
        yield server
    finally:
        server.close()
    server.check()
