"""SageMaker's PyTorch inference stack on this machine: the image's own serve program on a model.tar.gz.

What the inference image runs when SageMaker starts it with ``serve`` is
``sagemaker_pytorch_serving_container.serving.main()`` (sagemaker-pytorch-inference): it writes TorchServe's
config, ``pip install -r /opt/ml/model/code/requirements.txt``, then starts TorchServe with
``--models model=/opt/ml/model``, whose worker imports ``code/inference.py``. `start` runs that same
program from the virtual environment `make serve-venv` builds (serving/requirements-image.txt: the
toolkit, TorchServe and torch), on an unpacked archive, on 127.0.0.1. What differs from the image, and why:

- the model folder is ``<base>/model`` instead of ``/opt/ml/model`` (the toolkit's own SAGEMAKER_BASE_DIR),
  and the generated config goes to ``<base>/sagemaker-ts.properties`` instead of ``/etc`` (one assignment
  before ``serving.main()``; nothing else in the toolkit is touched);
- TorchServe listens on 127.0.0.1 at free ports (its TS_*_ADDRESS variables, honoured because the toolkit's
  config sets ``enable_envvars_config=true``) instead of 0.0.0.0:8080;
- Python 3.11 and torch 2.13 CPU instead of the image's 3.12 and 2.6 (see serving/requirements-image.txt),
  so the archive's wheelhouse is built for 3.11 here and for 3.12 for a real endpoint.

The container environment is `helpers.aws.endpoint.CONTAINER_ENV`, the same dict `deploy` gives the model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers.config import project_root

#: The image's entry point for ``serve`` (the DLC's torchserve-entrypoint.py), with the config path moved.
LAUNCHER = """\
import sys

from sagemaker_pytorch_serving_container import serving, torchserve

torchserve.TS_CONFIG_FILE = sys.argv[1]  # the image writes /etc/sagemaker-ts.properties
serving.main()
"""


def serve_venv() -> Path:
    """The virtual environment `make serve-venv` builds (.venv-serve beside the checkout)."""
    root = project_root()
    if root is None:
        raise FileNotFoundError("the local model server needs the checkout: install with `pip install -e .`")
    return root / ".venv-serve"


def _venv_python(venv: str | os.PathLike | None) -> Path:
    """The serving environment's python (`venv`, else .venv-serve); a clear error if it is not built."""
    python = Path(venv or serve_venv()) / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} not found: build the serving environment with `make serve-venv`")
    return python


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            out[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def _rss(pid: int) -> int:
    """Resident set size of `pid` in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports on 127.0.0.1 (all held open at once while chosen, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def unpack(archive: str | os.PathLike, base: str | os.PathLike) -> Path:
    """Extract model.tar.gz into ``<base>/model``, as SageMaker does into /opt/ml/model."""
    model = Path(base) / "model"
    model.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(model, filter="data")
    return model


@dataclass
class LocalServer:
    """A running model server; `stop` ends TorchServe's Java process and its workers with it."""

    base: Path
    port: int
    process: subprocess.Popen
    started_at: float  # time.monotonic() when the serve program was started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.base / "serve.log"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def request(
        self, path: str, body: bytes | None = None, content_type: str | None = None, timeout: float = 120
    ) -> tuple[int, bytes, str]:
        """(status, body, content type) of one HTTP request; error statuses are returned, not raised."""
        req = urllib.request.Request(self.url + path, data=body, method="POST" if body is not None else "GET")
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            return err.code, err.read(), err.headers.get("Content-Type", "")

    def invoke(self, body: bytes, content_type: str, timeout: float = 120) -> tuple[int, dict]:
        """POST /invocations; the JSON document of the answer (errors included)."""
        status, raw, _ = self.request("/invocations", body, content_type, timeout)
        try:
            return status, json.loads(raw)
        except json.JSONDecodeError:
            raise RuntimeError(f"{status} with a body that is not JSON: {raw[:500]!r}") from None

    def ping(self, timeout: float = 5) -> int:
        try:
            return self.request("/ping", timeout=timeout)[0]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0

    def wait_healthy(self, timeout_s: float) -> float:
        """Seconds from start to the first /ping 200; raises with the log's tail if it never comes."""
        deadline = self.started_at + timeout_s
        while time.monotonic() < deadline:
            if self.ping() == 200:
                return time.monotonic() - self.started_at
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the serve program exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            time.sleep(0.5)
        raise TimeoutError(f"no /ping 200 within {timeout_s:.0f} s:\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        """Resident memory of the server: TorchServe's JVM, its Python workers and the serve program."""
        parents = _parents()
        pids, grown = {self.process.pid, *self._java_pids()}, True
        while grown:  # add descendants until none is left out
            more = {pid for pid, ppid in parents.items() if ppid in pids} - pids
            pids, grown = pids | more, bool(more)
        return sum(_rss(pid) for pid in pids)

    def _java_pids(self) -> list[int]:
        """TorchServe's JVM: started by `torchserve --start`, which exits, so it is not our child."""
        marker, out = str(self.base), []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmd = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if "org.pytorch.serve.ModelServer" in cmd and any(marker in part for part in cmd):
                out.append(int(proc.name))
        return out

    def stop(self) -> None:
        """End the serve program's session (TorchServe and its workers belong to it)."""
        for pid in self._java_pids():
            _signal(pid, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        for pid in self._java_pids():
            _signal(pid, signal.SIGKILL)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(
    model_dir: str | os.PathLike,
    port: int | None = None,
    venv: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
) -> LocalServer:
    """Start the image's serve program on ``model_dir`` (an unpacked archive named ``<base>/model``).

    Returns at once; `LocalServer.wait_healthy` waits for /ping. `env` adds to the container environment.
    """
    from helpers.aws.endpoint import CONTAINER_ENV

    model = Path(model_dir).resolve()
    if model.name != "model":
        raise ValueError(f"{model} must be named 'model' (the toolkit reads <SAGEMAKER_BASE_DIR>/model)")
    base = model.parent
    python = _venv_python(venv)
    ports = free_ports(5)  # inference (unless given), management, metrics and the two gRPC ports
    port = port or ports[0]
    others = [p for p in ports if p != port][:4]
    (base / "launcher.py").write_text(LAUNCHER)
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "TS_", "VIRTUAL_ENV"))},
        **CONTAINER_ENV,
        "SAGEMAKER_SUBMIT_DIRECTORY": str(model / "code"),
        "SAGEMAKER_BASE_DIR": str(base),
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "TS_INFERENCE_ADDRESS": f"http://127.0.0.1:{port}",
        "TS_MANAGEMENT_ADDRESS": f"http://127.0.0.1:{others[0]}",
        "TS_METRICS_ADDRESS": f"http://127.0.0.1:{others[1]}",
        "TS_GRPC_INFERENCE_PORT": str(others[2]),
        "TS_GRPC_MANAGEMENT_PORT": str(others[3]),
        "PATH": f"{python.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    full_env.pop("PYTHONPATH", None)
    log = open(base / "serve.log", "ab")  # noqa: SIM115 (the child owns it)
    process = subprocess.Popen(
        [str(python), str(base / "launcher.py"), str(base / "sagemaker-ts.properties")],
        cwd=base,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return LocalServer(base=base, port=port, process=process, started_at=time.monotonic())


def venv_python_version(venv: str | os.PathLike | None = None) -> str:
    """The serving environment's Python as pip's --python-version ("3.11"): what its wheels are built for."""
    out = subprocess.run(
        [str(_venv_python(venv)), "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def prepare(
    run_dir: str | os.PathLike,
    base: str | os.PathLike,
    classifier: str | None = "best",
    venv: str | os.PathLike | None = None,
) -> Path:
    """Package `run_dir` as an endpoint would get it, with wheels for the serving environment's Python, and
    unpack it into ``<base>/model`` (replacing an earlier one); returns that folder."""
    from helpers.aws.package import package_model
    from helpers.aws.wheelhouse import serving_wheelhouse

    base = Path(base)
    wheels = serving_wheelhouse(python_version=venv_python_version(venv))
    archive = package_model(run_dir, base / "model.tar.gz", classifier, wheels=wheels)
    shutil.rmtree(base / "model", ignore_errors=True)
    return unpack(archive, base)


def main(argv: list[str] | None = None) -> int:
    """``make serve-local``: a run's models in the image's model server on 127.0.0.1 until Ctrl-C."""
    p = argparse.ArgumentParser(prog="python -m helpers.aws.local_server", description=main.__doc__)
    p.add_argument("--run-dir", required=True, help="a run folder with captions/model (notebook 06)")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080, as in the image)")
    p.add_argument("--no-classifier", action="store_true", help="captions only")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the first /ping 200")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    try:
        model = prepare(run_dir, run_dir / "serve-local", None if args.no_classifier else "best")
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    server = start(model, port=args.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill`, too, stops TorchServe (finally below)
    try:
        print(f"starting the model server on {model} (log: {server.log}) ...", flush=True)
        print(f"ready after {server.wait_healthy(args.timeout):.1f} s: {server.url}", flush=True)
        print(
            f"  curl {server.url}/ping\n"
            f"  curl -H 'Content-Type: image/jpeg' --data-binary @photo.jpg {server.url}/invocations\n"
            "Ctrl-C stops it.",
            flush=True,
        )
        server.process.wait()
        print(
            f"the serve program exited ({server.process.returncode}):\n{server.log_tail()}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
