"""What the browser tests share: Chromium and its flags, local servers on free ports, notebook 07's copy,
and the FileUpload widget driven through the file chooser."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "07-caption-demo.ipynb"
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


def require_chromium() -> Path:
    """Debian's Chromium (skip locally naming how to install it; fail under CI=true)."""
    from prerequisites import require

    require(
        CHROMIUM.is_file(),
        f"Chromium not found at {CHROMIUM}",
        "run tests/browser_setup.sh (or set CHROMIUM_PATH)",
    )
    return CHROMIUM


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0, name: str = "voila") -> None:
    """Poll with plain TCP connects (an HTTP GET would make Voila start a kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM (a Jupyter server then shuts its kernels down), SIGKILL after `grace` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parameterized_copy(run_dir: Path, folder: Path, **extra: object) -> Path:
    """Notebook 07 with `run_dir` set (and one example, not four, and any `extra` parameters) in a cell
    after its parameters cell, as papermill injects parameters."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    [index] = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    values = {"run_dir": str(run_dir), "num_examples": 1, **extra}
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


def local_only(page) -> None:
    """Abort every request that leaves localhost (pages ask CDNs for fonts; this machine may be offline)."""
    page.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort())


def upload(page, files) -> None:
    """Choose files through the FileUpload button (its <input type=file> never enters the DOM)."""
    with page.expect_file_chooser() as chooser:
        page.click("button.widget-upload")
    chooser.value.set_files(files)
