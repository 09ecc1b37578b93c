"""A throw-away HTTP server on 127.0.0.1 for download tests: nothing leaves the machine."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    files: dict[str, bytes] = field(default_factory=dict)  # "/name" -> body
    truncate: set[str] = field(default_factory=set)  # paths whose Content-Length promises twice the body
    hits: list[str] = field(default_factory=list)


@contextlib.contextmanager
def serve() -> Iterator[Served]:
    state = Served("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            state.hits.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) * (2 if self.path in state.truncate else 1)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    """A local port nobody listens on (connection refused: what 'offline' looks like to a client)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
