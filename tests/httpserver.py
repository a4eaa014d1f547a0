"""A real HTTP server on 127.0.0.1 for download tests, with scripted misbehaviour per path.

Behaviours (set with `FileServer.route(path, kind, body, **options)`):

* ``ok``: serve `body`, honouring ``Range: bytes=N-`` with 206 responses;
* ``404``: not found;
* ``reset``: close the TCP connection with a reset before answering;
* ``truncate``: announce the full length, send `cut` bytes, close (every time);
* ``truncate_once``: like ``truncate`` for the first request, then like ``ok``;
* ``slow``: like ``ok`` but in 20 chunks with `delay` seconds between them.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Threaded HTTP server; `requests` logs ``(path, range header or None)``."""

    def __init__(self) -> None:
        self.routes: dict[str, dict] = {}
        self.requests: list[tuple[str, str | None]] = []
        handler = self._make_handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def route(self, path: str, kind: str, body: bytes = b"", **options: object) -> str:
        """Register `path`; return its URL."""
        self.routes[path] = {"kind": kind, "body": body, "served": 0, **options}
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def hits(self, path: str) -> list[str | None]:
        """The Range headers of the requests made for `path` (None when absent)."""
        return [rng for p, rng in self.requests if p == path]

    def _make_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                route = server.routes.get(self.path)
                if route is None or route["kind"] == "404":
                    self.send_error(404)
                    return
                kind = route["kind"]
                route["served"] += 1
                if kind == "reset":
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    self.close_connection = True
                    return
                body: bytes = route["body"]
                if kind == "truncate" or (kind == "truncate_once" and route["served"] == 1):
                    self._send(200, body, len(body), cut=int(route["cut"]))
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[len("bytes=") : -1])
                delay = float(route.get("delay", 0.0)) if kind == "slow" else 0.0
                self._send(206 if start else 200, body[start:], len(body) - start, delay=delay)

            def _send(self, status: int, body: bytes, length: int, cut: int | None = None,
                      delay: float = 0.0) -> None:  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                step = max(1, len(body) // 20) if delay else len(body) or 1
                for i in range(0, len(body), step):
                    self.wfile.write(body[i : i + step])
                    self.wfile.flush()
                    if delay:
                        time.sleep(delay)

        return Handler
