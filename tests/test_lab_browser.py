"""Notebook 07 opened in JupyterLab (as `make lab` serves it) and driven in headless Chromium: run all cells
with the `caption-workbench` kernel, upload a photo through the widget, see its caption card.

JupyterLab runs on localhost with a token and its own empty config, data, runtime and IPython folders, so
nothing of the user's settings leaks in. A screenshot goes to test-artifacts/lab-screenshot.png.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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

from helpers import KERNEL_NAME
from helpers.demo.models import bundled_photos

SCREENSHOT = ARTIFACTS / "lab-screenshot.png"
LAB_TIMEOUT_MS = 120_000  # JupyterLab's page and the notebook's kernel on 2 busy CPU cores
APP_TIMEOUT_MS = 240_000  # all cells: TensorFlow, torch and both models load, one example is captioned
CAPTION_TIMEOUT_MS = 60_000  # one upload on 2 CPU cores
#: Settles once JupyterLab has opened the notebook and its kernel is up; returns the kernel's name.
KERNEL_READY_JS = """async () => {
    const app = window.jupyterapp;
    await app.restored;
    const panel = app.shell.currentWidget;
    await panel.context.ready;
    await panel.sessionContext.ready;
    return panel.sessionContext.session.kernel.name;
}"""

#: The options `make lab` starts JupyterLab with (besides the notebooks folder).
MAKE_LAB_OPTIONS = [
    "--KernelManager.transport_encryption=auto",
    '--ServerApp.tornado_settings={"websocket_max_message_size": 134217728}',
]


def isolated_env(workdir: Path) -> dict[str, str]:
    """This environment with Jupyter's and IPython's per-user folders replaced by empty ones under workdir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JUPYTERLAB", "IPYTHON"))}
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = workdir / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    return env


@contextlib.contextmanager
def jupyterlab(root: Path, workdir: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab serving `root` on a free localhost port; yields (base URL, token); SIGTERM on exit."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}"]
    cmd += [f"--IdentityProvider.token={token}", "--LabApp.expose_app_in_browser=True"]
    cmd += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--ServerApp.allow_root=True"]
    cmd += MAKE_LAB_OPTIONS
    log = open(workdir / "lab.log", "wb")  # noqa: SIM115  (closed below, after the server stopped)
    proc = subprocess.Popen(cmd, cwd=root, env=isolated_env(workdir), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, name="jupyterlab")
        yield f"http://127.0.0.1:{port}/", token
    finally:
        stop(proc)
        log.close()


def lab_log(workdir: Path) -> str:
    return (workdir / "lab.log").read_text(errors="replace")[-4000:]


def test_make_lab_starts_jupyterlab_as_tested():
    """The Makefile's `lab` recipe passes the options this test starts JupyterLab with."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlab: setup") :].split("\n\n")[0]
    assert "jupyter lab --ServerApp.root_dir=notebooks" in recipe
    assert [o for o in MAKE_LAB_OPTIONS if o not in recipe] == []


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


@pytest.mark.browser
@pytest.mark.slow
def test_notebook_07_in_jupyterlab(chromium, smoke_run, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run_dir = smoke_run.ensure("01", "02", "05", "06")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    notebook = parameterized_copy(run_dir, notebooks, study_images=0)  # the series' run measures those
    with jupyterlab(notebooks, tmp_path) as (url, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        local_only(page)
        page.goto(f"{url}lab/tree/{notebook.name}?token={token}", wait_until="domcontentloaded")
        page.wait_for_function("() => window.jupyterapp?.shell.currentWidget", timeout=LAB_TIMEOUT_MS)
        assert page.evaluate(KERNEL_READY_JS) == KERNEL_NAME, lab_log(tmp_path)

        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        try:
            page.wait_for_selector("button.widget-upload", timeout=APP_TIMEOUT_MS)
        except Exception as err:
            raise AssertionError(f"the app never appeared; jupyterlab log:\n{lab_log(tmp_path)}") from err
        expect(page.locator(".jp-OutputArea-output .demo-card-ok")).to_have_count(1)  # the example's card
        expect(page.locator(".demo-limit")).to_contain_text("up to 8 MB each")

        upload(page, str(bundled_photos()[0]))  # a real photo: matplotlib's grace_hopper.jpg
        cards = page.locator(".demo-app .demo-cards")
        caption = cards.locator(".demo-card-ok .demo-caption")
        expect(caption).to_have_count(1, timeout=CAPTION_TIMEOUT_MS)
        assert len(caption.inner_text().split()) >= 2, caption.inner_text()
        expect(cards.locator(".demo-top5 tr")).to_have_count(5)
        expect(page.locator(".demo-status")).to_contain_text("1 image captioned")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        cards.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT))
        browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
