"""moto's S3 server on loopback, counting the bytes it serves, for benchmarks/data_scale.py.

delta-rs talks to S3 from Rust, so no Python hook in the client sees what a
job reads; the server does. Every response body is counted by kind of key
(``log``: under ``_delta_log/``; ``data``: any other object; ``list``: bucket
listings) and by method. ``GET /__counters`` answers the totals as JSON (and
is not counted); ``POST /__counters`` resets them.

Run: ``python benchmarks/_counting_s3.py PORT``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class CountingApp:
    """Wrap a WSGI app; add the size of each response body to a counter keyed by (method, kind)."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.bytes: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/__counters":
            with self.lock:
                if environ["REQUEST_METHOD"] == "POST":
                    self.bytes.clear()
                    self.requests.clear()
                body = json.dumps({"bytes": dict(self.bytes), "requests": dict(self.requests)}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        query = environ.get("QUERY_STRING", "")
        key = path.lstrip("/").split("/", 1)[1] if "/" in path.lstrip("/") else ""
        if "list-type" in query or (environ["REQUEST_METHOD"] == "GET" and (not key or key.endswith("/"))):
            kind = "list"
        elif "/_delta_log/" in path:
            kind = "log"
        else:
            kind = "data"
        return self._counted(f"{environ['REQUEST_METHOD']} {kind}", self.app(environ, start_response))

    def _counted(self, label: str, out: Iterable[bytes]) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in out:
                size += len(chunk)
                yield chunk
        finally:
            close = getattr(out, "close", None)
            if close is not None:
                close()
            with self.lock:
                self.bytes[label] += size
                self.requests[label] += 1


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, CountingApp(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
