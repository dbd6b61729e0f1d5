"""The idle auto-stop that lifecycle-config.sh schedules: idleness from Jupyter's API, the stop via moto."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest
from aws_support import ROLE, aws_env, moto_server  # noqa: F401

from helpers.aws import autostop

pytestmark = pytest.mark.usefixtures("aws_env")  # fresh moto state and AWS variables per test
NOW = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)
BOOT = NOW - dt.timedelta(hours=3)


def kernel(minutes_ago: float, state: str = "idle") -> dict:
    stamp = (NOW - dt.timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"id": "k", "execution_state": state, "last_activity": stamp, "connections": 1}


def test_idle_rules(tmp_path):
    assert autostop.idle_reason([kernel(10)], NOW, 30, BOOT, []) is None
    assert "idle for 40 min" in autostop.idle_reason([kernel(40), kernel(55)], NOW, 30, BOOT, [])
    assert autostop.idle_reason([kernel(90, "busy")], NOW, 30, BOOT, []) is None  # a long cell is running
    assert "since boot" in autostop.idle_reason([], NOW, 30, BOOT, [])
    assert autostop.idle_reason([], NOW, 30, NOW - dt.timedelta(minutes=5), []) is None  # just booted
    running = tmp_path / "series.pid"
    script = tmp_path / "lifecycle-config.sh"
    script.write_text("sleep 60\nexit 0\n")
    with live(["bash", str(script)]) as ours, live(["sleep", "60"]) as stranger:
        running.write_text(f"{ours}\n")
        assert autostop.idle_reason([], NOW, 30, BOOT, [running]) is None  # the background series runs
        for stale in ("999999999", "not a pid", str(stranger)):  # a reused pid names a stranger
            running.write_text(stale)
            assert autostop.idle_reason([], NOW, 30, BOOT, [running, tmp_path / "missing.pid"]) is not None


@contextlib.contextmanager
def live(argv: list[str]):
    """A running process (its pid) whose command line is `argv`, killed on exit."""
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 10
        # right after fork the child's command line is empty or the parent's: wait until exec is done
        while Path(f"/proc/{proc.pid}/cmdline").read_bytes() != "\0".join([*argv, ""]).encode():
            assert time.monotonic() < deadline, f"{argv} never started"
            time.sleep(0.02)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


class FakeJupyter(BaseHTTPRequestHandler):
    kernels: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps(self.kernels if self.path == "/api/kernels" else []).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def jupyter():
    server = HTTPServer(("127.0.0.1", 0), FakeJupyter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_stops_the_notebook_instance_when_idle(jupyter, tmp_path, capsys):
    sm = boto3.client("sagemaker")
    sm.create_notebook_instance(NotebookInstanceName="caption-nb", InstanceType="ml.t3.medium", RoleArn=ROLE)
    metadata = tmp_path / "resource-metadata.json"
    metadata.write_text(json.dumps({"ResourceName": "caption-nb"}))
    args = ["--jupyter-url", jupyter, "--metadata", str(metadata)]

    FakeJupyter.kernels = [{"execution_state": "idle", "last_activity": dt.datetime.now(dt.UTC).isoformat()}]
    assert autostop.main(["--idle-minutes", "30", *args]) == 0
    assert "active: not stopping" in capsys.readouterr().out
    assert (
        sm.describe_notebook_instance(NotebookInstanceName="caption-nb")["NotebookInstanceStatus"]
        == "InService"
    )

    FakeJupyter.kernels = [{"execution_state": "idle", "last_activity": "2020-01-01T00:00:00.000000Z"}]
    assert autostop.main(["--idle-minutes", "30", "--dry-run", *args]) == 0
    assert "would stop" in capsys.readouterr().out
    assert autostop.main(["--idle-minutes", "30", *args]) == 0
    assert "stopping notebook instance caption-nb" in capsys.readouterr().out
    status = sm.describe_notebook_instance(NotebookInstanceName="caption-nb")["NotebookInstanceStatus"]
    assert status in ("Stopping", "Stopped")
