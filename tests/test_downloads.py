"""The fetch function against a real HTTP server on 127.0.0.1 that misbehaves the ways the internet does."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpers.data import download_table
from helpers.data.downloads import DownloadError, download, fetch, file_hash

PAYLOAD = os.urandom(300_000)  # bytes; several reads' worth at the fetcher's 1 MiB chunk is not needed
SHA = "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"timeout": 0.5, "retries": 2, "backoff": 0.0}  # seconds; tests never wait on real back-off


@dataclass
class Server:
    """A threaded HTTP server whose answer per path is a function; it logs every request's Range header."""

    url: str
    routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler, int], None]] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # ends stalls at teardown

    def calls(self, path: str) -> list[str | None]:
        """The Range headers of the requests for `path`, in order (None: no Range)."""
        return [rng for p, rng in self.log if p == path]


def send(handler, body: bytes, length: bool = True, honour_range: bool = True) -> None:
    """Answer 200 with `body`, or 206 with the requested tail when a Range header asks for one."""
    start = 0
    rng = handler.headers.get("Range")
    if rng and honour_range:
        start = int(rng.removeprefix("bytes=").split("-")[0])
        if start >= len(body):
            handler.send_response(416)
            handler.send_header("Content-Range", f"bytes */{len(body)}")
            handler.end_headers()
            return
    handler.send_response(206 if start else 200)
    if start:
        handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
    if length:
        handler.send_header("Content-Length", str(len(body) - start))
    handler.end_headers()
    handler.wfile.write(body[start:])


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            state.log.append((self.path, self.headers.get("Range")))
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            route(self, len(state.calls(self.path)))

        def log_message(self, *args):  # keep pytest's output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


def no_part_files(folder: Path) -> bool:
    return not list(folder.glob("*.part"))


def test_plain_download_is_checked_and_renamed(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, len(PAYLOAD), **FAST)
    assert path.read_bytes() == PAYLOAD and no_part_files(tmp_path)
    assert download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, **FAST) == path
    assert server.calls("/f.bin") == [None]  # the second call found the checked copy: no request


def test_follows_a_redirect(server: Server, tmp_path: Path):
    def redirect(h, n):
        h.send_response(302)
        h.send_header("Location", "/real.bin")
        h.end_headers()

    server.routes |= {"/moved.bin": redirect, "/real.bin": lambda h, n: send(h, PAYLOAD)}
    path = download(f"{server.url}/moved.bin", tmp_path / "f.bin", SHA, **FAST)
    assert path.read_bytes() == PAYLOAD


def test_missing_content_length(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD, length=False)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, **FAST)
    assert path.read_bytes() == PAYLOAD


def dropping(cut: int) -> Callable:
    """First request: promise the whole file, send `cut` bytes, hang up. Later ones: serve the range."""

    def route(h, n):
        if n == 1:
            h.send_response(200)
            h.send_header("Content-Length", str(len(PAYLOAD)))
            h.end_headers()
            h.wfile.write(PAYLOAD[:cut])
            h.wfile.flush()
            h.close_connection = True
            return
        send(h, PAYLOAD)

    return route


def test_dropped_connection_resumes_with_a_range_request(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = dropping(123_456)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, **FAST)
    assert path.read_bytes() == PAYLOAD
    assert server.calls("/f.bin") == [None, "bytes=123456-"]  # the second request asked only for the rest


def test_drop_without_content_length_is_caught_by_the_table_size(server: Server, tmp_path: Path):
    """No length header and a hang-up look like the end of the file; the known size tells them apart."""

    def route(h, n):
        if n == 1:
            h.send_response(200)
            h.end_headers()
            h.wfile.write(PAYLOAD[:1000])
            return
        send(h, PAYLOAD, length=False)

    server.routes["/f.bin"] = route
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, len(PAYLOAD), **FAST)
    assert path.read_bytes() == PAYLOAD and server.calls("/f.bin") == [None, "bytes=1000-"]


def test_a_server_that_ignores_range_starts_the_file_over(server: Server, tmp_path: Path):
    first = dropping(50_000)
    server.routes["/f.bin"] = lambda h, n: first(h, n) if n == 1 else send(h, PAYLOAD, honour_range=False)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, **FAST)
    assert path.read_bytes() == PAYLOAD  # the 200 answer replaced the partial file instead of appending


def stalling(server: Server, after: int) -> Callable:
    """Send `after` bytes of a promised whole file, then go silent until the test ends."""

    def route(h, n):
        h.send_response(200)
        h.send_header("Content-Length", str(len(PAYLOAD)))
        h.end_headers()
        h.wfile.write(PAYLOAD[:after])
        h.wfile.flush()
        server.release.wait(30)

    return route


def test_a_stall_times_out_and_the_error_says_what_to_do(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = stalling(server, 70_000)
    with pytest.raises(DownloadError) as caught:
        download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, timeout=0.3, retries=1, backoff=0.0)
    message = str(caught.value)
    assert f"could not download {server.url}/f.bin" in message and "timed out" in message
    assert "run again" in message and "CAPTION_DOWNLOAD_MIRROR" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained traceback
    assert not (tmp_path / "f.bin").exists()  # nothing under the real name
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:70_000]  # kept, to be resumed
    assert server.calls("/f.bin") == [None, "bytes=70000-"]  # the retry already resumed


def test_a_stalled_part_is_resumed_by_the_next_run(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = stalling(server, 70_000)
    with pytest.raises(DownloadError):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, timeout=0.3, retries=0)
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, **FAST)
    assert path.read_bytes() == PAYLOAD and server.calls("/f.bin")[-1] == "bytes=70000-"


def test_wrong_hash_leaves_no_file(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = lambda h, n: send(h, b"<html>captive portal</html>")
    with pytest.raises(DownloadError, match=r"f\.bin: sha256 [0-9a-f]{64}, expected .*download was deleted"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, None, **FAST)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_wrong_size_is_refused_before_hashing(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD + b"x")
    with pytest.raises(DownloadError, match=f"size 300,001 bytes, expected {len(PAYLOAD):,}"):
        download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, len(PAYLOAD), **FAST)
    assert no_part_files(tmp_path) and not (tmp_path / "f.bin").exists()


def test_http_errors_retry_when_transient_and_stop_when_not(server: Server, tmp_path: Path):
    def flaky(h, n):
        if n == 1:
            h.send_error(503)
            return
        send(h, PAYLOAD)

    server.routes["/flaky.bin"] = flaky
    assert download(f"{server.url}/flaky.bin", tmp_path / "a.bin", SHA, **FAST).read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"/gone\.bin: HTTP 404 .*download_table\.py"):
        download(f"{server.url}/gone.bin", tmp_path / "b.bin", SHA, **FAST)
    assert len(server.calls("/gone.bin")) == 1  # a 404 is not retried


def test_unreachable_host_is_a_clear_error(tmp_path: Path):
    with pytest.raises(
        DownloadError, match=r"could not download http://127\.0\.0\.1:9/x\.bin \(cannot connect"
    ):
        download("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", SHA, timeout=2, retries=1, backoff=0.0)


def test_a_corrupt_cached_file_is_downloaded_again(server: Server, tmp_path: Path):
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD)
    (tmp_path / "f.bin").write_bytes(PAYLOAD[:-1] + b"!")
    assert download(f"{server.url}/f.bin", tmp_path / "f.bin", SHA, **FAST).read_bytes() == PAYLOAD


def test_unpinned_file_is_pinned_by_its_first_download(server: Server, tmp_path: Path):
    """No published hash (MobileNetV2's weights): the first download's sha256 guards every later use."""
    server.routes["/f.bin"] = lambda h, n: send(h, PAYLOAD)
    path = download(f"{server.url}/f.bin", tmp_path / "f.bin", None, len(PAYLOAD), **FAST)
    assert (tmp_path / "f.bin.sha256").read_text().strip() == SHA.removeprefix("sha256:")
    path.write_bytes(PAYLOAD[::-1])  # same size, other bytes: the size alone would not notice
    download(f"{server.url}/f.bin", path, None, len(PAYLOAD), **FAST)
    assert path.read_bytes() == PAYLOAD and len(server.calls("/f.bin")) == 2


def test_fetch_uses_the_table_a_mirror_and_its_manifest(server: Server, tmp_path: Path, monkeypatch):
    name = download_table.CIFAR100_ARCHIVE
    server.routes[f"/{name}"] = lambda h, n: send(h, PAYLOAD)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", server.url + "/")
    with pytest.raises(DownloadError, match="size 300,000 bytes, expected 169,001,437"):
        fetch(name, **FAST)  # the mirror's stand-in is not the published file: the table's size says so
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({name: {"hash": SHA, "size": len(PAYLOAD)}}))
    monkeypatch.setenv("CAPTION_DOWNLOAD_MANIFEST", str(manifest))
    path = fetch(name, **FAST)
    assert path == tmp_path / "keras" / "datasets" / name and path.read_bytes() == PAYLOAD


def test_the_table_covers_every_full_preset_file():
    table = download_table.TABLE
    for name in (
        download_table.CIFAR100_ARCHIVE,
        *download_table.IMAGENET_WEIGHTS.values(),
        *download_table.FLICKR8K_ARCHIVES,
    ):
        row = table[name]
        assert row.fetched_by == "helpers" and row.url.startswith("https://") and row.url.endswith(name)
        assert row.hash or row.size  # MobileNetV2 has no published hash: its size is pinned at least
    for name in (download_table.KARPATHY_ARCHIVE, *download_table.COCO_ARCHIVES):
        row = table[name]  # COCO's images are served over http only: the published md5 and size vouch
        assert row.fetched_by == "helpers" and row.hash and row.size and row.url.endswith(name)
        assert row.folder is None  # into run_dir/sources/downloads, deleted once extracted
    gpt2 = {n for n, row in table.items() if n.startswith("gpt2/") and row.used_by == "06"}
    assert gpt2 == {"gpt2/config.json", "gpt2/model.safetensors", "gpt2/generation_config.json"}
    assert table["gpt2/model.safetensors"].size == 548_105_171
    for row in table.values():
        if row.hash:
            algorithm, _, digest = row.hash.partition(":")
            assert len(digest) == {"md5": 32, "sha256": 64}[algorithm] and int(digest, 16) >= 0
    assert "| `cifar-100-python.tar.gz` |" in download_table.markdown_table()


def test_flickr8k_cn_hashes_match_the_shared_copies(real_samples: Path):
    for name, row in download_table.TABLE.items():
        if row.folder == "flickr8k-cn":
            path = real_samples / "flickr8k-cn" / name
            assert path.stat().st_size == row.size and "sha256:" + file_hash(path) == row.hash


def test_a_missing_hub_model_is_a_clear_error():
    """from_pretrained's failure names the model's hub address and what to do (the hub is offline here)."""
    from helpers.caption.model import build_gpt2

    with pytest.raises(
        RuntimeError, match=r"could not load 'no-such/model' from https://huggingface.co/no-such/model \("
    ):
        build_gpt2("no-such/model")
