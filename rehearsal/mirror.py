"""A local HTTP mirror: serves one folder on 127.0.0.1 with Range support (for resumed downloads)."""

from __future__ import annotations

import contextlib
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d+)-$")


def _handler(folder: Path) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = folder / self.path.lstrip("/")
            if "/" in self.path.lstrip("/") or not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            match = _RANGE.match(self.headers.get("Range", ""))
            start = int(match.group(1)) if match else 0
            if start >= size and match:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                while block := f.read(1 << 20):
                    self.wfile.write(block)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
            pass

    return Handler


@contextlib.contextmanager
def serve(folder: str | Path) -> Iterator[str]:
    """Serve `folder` in a background thread; yields the base URL (http://127.0.0.1:PORT)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(Path(folder)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
