"""Notebook 07 served by Voila on localhost and driven in headless Chromium, on the smoke run's real models.

Chromium comes from Debian (`tests/browser_setup.sh` installs it); the test skips with that instruction when
it is missing. The test uploads good and bad files, then grows one card's narrative (Tell me more twice, one
region cell) and switches on an overlay; a screenshot of the app is saved to
$CAPTION_TEST_ARTIFACTS/demo-screenshot.png (default test-artifacts/).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import demo_inputs as gen
import pytest
from browser_support import (
    CHROMIUM_ARGS,
    ROOT,
    free_port,
    local_only,
    parameterized_copy,
    require_chromium,
    stop,
    upload,
    wait_for_port,
)
from conftest import ARTIFACTS

from helpers.demo.models import bundled_photos

SCREENSHOT = ARTIFACTS / "demo-screenshot.png"
APP_TIMEOUT_MS = (
    240_000  # the page shows the app after every cell ran: TensorFlow, torch and both models load
)
CAPTION_TIMEOUT_MS = 60_000  # one upload on 2 CPU cores
ACTION_TIMEOUT_MS = 90_000  # one card action (Tell me more decodes ~11 candidates) on 2 busy CPU cores

pytestmark = pytest.mark.browser


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
        stop(proc)
        log.close()


def without_studies(notebook: Path) -> Path:
    """The copy with `study_images = 0` injected too: the series' run of 07 measures the studies."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    [cell] = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    cell.source += "\nstudy_images = 0"
    nbformat.write(nb, notebook)
    return notebook


def grow_the_narrative(cards) -> None:
    """Tell me more twice, Look here at the top left cell, then the classifier's overlay."""
    from playwright.sync_api import expect

    sentences = cards.locator(".demo-narrative .demo-sentence")
    for count in (1, 2):
        cards.locator("button.demo-more").click()
        expect(sentences).to_have_count(count, timeout=ACTION_TIMEOUT_MS)
        expect(cards.locator("button.demo-more")).to_be_enabled(timeout=ACTION_TIMEOUT_MS)
    cards.locator("button.demo-cell-0-0").click()
    expect(sentences).to_have_count(3, timeout=ACTION_TIMEOUT_MS)
    expect(sentences.nth(2)).to_contain_text("At the top left, ")
    texts = [sentences.nth(i).inner_text() for i in range(3)]
    assert len(set(texts)) == 3, texts
    cards.locator(".demo-where button", has_text="classifier").click()
    expect(cards.locator("img.demo-overlay")).to_have_count(1, timeout=ACTION_TIMEOUT_MS)
    expect(cards.locator(".demo-notice")).to_have_count(0)


def voila_log(workdir: Path) -> str:
    return (workdir / "voila.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


def test_demo_in_a_real_browser(chromium, smoke_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06")
    notebook = without_studies(parameterized_copy(run_dir, tmp_path))
    photo = bundled_photos()[0]  # a real photo: matplotlib's grace_hopper.jpg
    corrupt = {"name": "broken.jpg", "mimeType": "image/jpeg", "buffer": gen.truncated_jpeg()}
    with voila(notebook, tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        local_only(page)  # the page asks a CDN for Font Awesome; this machine may be offline
        page.goto(url, wait_until="domcontentloaded", timeout=APP_TIMEOUT_MS)  # Voila runs the cells first
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
        expect(page.locator(".demo-app .demo-banner")).to_contain_text("smoke")  # the smoke run's models
        grow_the_narrative(cards)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.locator(".demo-app").screenshot(path=str(SCREENSHOT))
        browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
