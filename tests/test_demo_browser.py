"""Notebook 07 served by Voila on localhost and driven in headless Chromium, on the smoke run's real models.

Chromium comes from Debian (`tests/browser_setup.sh` installs it); the test skips with that instruction when
it is missing. A screenshot of the app is saved to test-artifacts/demo-screenshot.png.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import demo_inputs as gen
import pytest

from helpers.demo.models import bundled_photos

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07-caption-demo.ipynb"
SCREENSHOT = ROOT / "test-artifacts" / "demo-screenshot.png"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
APP_TIMEOUT_MS = (
    240_000  # the page shows the app after every cell ran: TensorFlow, torch and both models load
)
CAPTION_TIMEOUT_MS = 60_000  # one upload on 2 CPU cores

pytestmark = pytest.mark.browser


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll with plain TCP connects (an HTTP GET would make Voila start a kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"voila did not listen on port {port} within {timeout:.0f} s")


def parameterized_copy(run_dir: Path, folder: Path) -> Path:
    """Notebook 07 with `run_dir` set (and one example, not four) in a cell after its parameters cell, as
    papermill injects parameters."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    [index] = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    injected = nbformat.v4.new_code_cell(f"run_dir = {str(run_dir)!r}\nnum_examples = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def voila(notebook: Path, workdir: Path) -> Iterator[str]:
    """Serve `notebook` with Voila on a free localhost port; yields its URL; SIGTERM on exit."""
    port = free_port()
    env = dict(os.environ, JUPYTER_DATA_DIR=str(workdir / "jupyter-data"), JUPYTER_RUNTIME_DIR=str(workdir))
    log = open(workdir / "voila.log", "wb")  # noqa: SIM115  (closed below, after the server stopped)
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}"]
    cmd += ["--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
    # Run from the checkout so Voila reads its voila.json (it raises the websocket message limit).
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def upload(page, files) -> None:
    """Choose files through the FileUpload button (its <input type=file> never enters the DOM)."""
    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    chooser.value.set_files(files)


def voila_log(workdir: Path) -> str:
    return (workdir / "voila.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def chromium() -> Path:
    from conftest import require

    require(
        CHROMIUM.is_file(),
        f"Chromium not found at {CHROMIUM}",
        "run tests/browser_setup.sh (or set CHROMIUM_PATH)",
    )
    return CHROMIUM


def test_demo_in_a_real_browser(chromium, smoke_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06")
    notebook = parameterized_copy(run_dir, tmp_path)
    photo = bundled_photos()[0]  # a real photo: matplotlib's grace_hopper.jpg
    corrupt = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": gen.truncated_jpeg()}
    with voila(notebook, tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        # Nothing leaves localhost (the page asks a CDN for Font Awesome; this machine may be offline).
        page.route(
            "**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort()
        )
        page.goto(url, wait_until="domcontentloaded")
        cards = page.locator(".demo-cards")  # the app's cards, not the example cards printed above it
        try:
            page.wait_for_selector("button.widget-upload", timeout=APP_TIMEOUT_MS)
        except Exception as err:
            raise AssertionError(f"the app never appeared; voila log:\n{voila_log(tmp_path)}") from err
        expect(page.locator(".demo-limit")).to_contain_text("up to 8 MB each")

        upload(page, str(photo))
        caption = cards.locator(".demo-card-ok .demo-caption")
        expect(caption).to_have_count(1, timeout=CAPTION_TIMEOUT_MS)
        first_caption = caption.inner_text().strip()
        assert len(first_caption.split()) >= 2, first_caption
        expect(cards.locator(".demo-top5 tr")).to_have_count(5)
        expect(page.locator(".demo-status")).to_contain_text("1 image captioned")

        # Over the stated limit, and over a stock Jupyter server's 10 MiB websocket message limit too.
        oversize = {
            "name": "huge.jpg",
            "mimeType": "image/jpeg",
            "buffer": b"\xff\xd8\xff" + bytes(12_000_000),
        }
        upload(page, [corrupt, oversize])
        error = cards.locator(".demo-card-error .demo-error")
        expect(error).to_have_count(2, timeout=CAPTION_TIMEOUT_MS)
        expect(error.nth(0)).to_contain_text("Could not read this file: JPEG data is truncated or corrupt")
        expect(error.nth(1)).to_have_text(
            "Could not read this file: file is 12.00 MB, over the 8 MB upload limit"
        )
        expect(cards.locator(".demo-card-ok")).to_have_count(0)

        upload(page, str(photo))  # the same file again: the widget was cleared, so this still fires
        expect(caption).to_have_count(1, timeout=CAPTION_TIMEOUT_MS)
        assert caption.inner_text().strip() == first_caption  # greedy decoding is deterministic
        expect(cards.locator(".demo-card-error")).to_have_count(0)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(".demo-app").screenshot(path=str(SCREENSHOT))
        browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
