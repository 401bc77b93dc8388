"""A real HTTP receiver on 127.0.0.1 for the notification tests: it keeps every request
(headers, with the path as ``:path``, and the raw body), answers as told (``status``, ``delay`` seconds, a JSON ``reply``),
and can be stopped and started again on the same port (a receiver that is down)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver"]


class Receiver:
    def __init__(self, port: int = 0):
        self.port = port
        self.requests: list[tuple[dict, bytes]] = []
        self.status = 200
        self.delay = 0.0
        self.reply: dict = {"ok": True}
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if outer.delay:
                    time.sleep(outer.delay)
                with outer._lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()} | {":path": self.path},
                                           body))
                out = json.dumps(outer.reply).encode()
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):  # quiet
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def bodies(self) -> list[dict]:
        with self._lock:
            return [json.loads(b) for _, b in self.requests]
