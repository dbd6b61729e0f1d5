"""Stub commands for running shell scripts in a sandbox: each records who ran it, where, and with what.

A stub appends ``user|cwd|command args...`` (arguments quoted with bash's ``%q``) to $STUB_LOG, then does
the least it must for the script to go on: `sudo` switches the recorded user (and HOME) and runs the
command, `nohup` runs it, `curl -o F` writes a fake Miniforge installer, that installer puts a stub
`conda` in place, and `conda env create/update --prefix P` gives P a stub `bin/python` and the
``NAME-VERSION.dist-info`` folders named in $STUB_ENV_DISTS. `nvidia-smi` prints $STUB_DRIVER as the
driver version, `getconf` prints $STUB_GLIBC, and the stub python exits with $STUB_PROBE_RC when it runs
the GPU probe; it also appends ``args|KERAS_HOME=..|HF_HOME=..`` to $STUB_LOG.env.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RECORD = """#!/bin/bash
{
    printf '%s|%s|%s' "${STUB_USER:-root}" "$PWD" "$0"
    if [[ $# -gt 0 ]]; then printf ' %q' "$@"; fi
    echo
} >>"$STUB_LOG"
"""

BEHAVIOUR = {
    "sudo": """user=root
while [[ $# -gt 0 ]]; do
    case "$1" in
    -u) user="$2"; shift 2 ;;
    -H) export HOME="$STUB_USER_HOME"; shift ;;
    --) shift; break ;;
    *) break ;;
    esac
done
STUB_USER="$user" exec "$@"
""",
    "nohup": 'exec "$@"\n',
    "curl": """while [[ $# -gt 0 ]]; do
    if [[ "$1" == -o ]]; then cp "$STUB_DIR/templates/miniforge-installer.sh" "$2"; fi
    shift
done
""",
    "nvidia-smi": 'echo "$STUB_DRIVER"\n',
    "getconf": 'echo "glibc $STUB_GLIBC"\n',
    "git": """if [[ "$1" == clone ]]; then
    mkdir -p "$3" && cp "$STUB_DIR/templates/environment.yml" "$3/"
fi
""",
}

TEMPLATES = {
    # the "installer": bash miniforge.sh -b -u -p DIR
    "miniforge-installer.sh": RECORD.replace('"$0"', '"miniforge-installer"')
    + 'mkdir -p "$4/bin" && cp "$STUB_DIR/templates/conda" "$4/bin/conda"\n',
    "conda": RECORD
    + """while [[ -e "${STUB_HOLD:-/nonexistent}" ]]; do sleep 0.05; done
if [[ "$1" == env ]]; then
    mkdir -p "$4/bin" && cp "$STUB_DIR/templates/python" "$4/bin/python"
    for dist in ${STUB_ENV_DISTS:-}; do mkdir -p "$4/lib/python3.11/site-packages/$dist.dist-info"; done
fi
""",
    "python": RECORD
    + """printf '%s|KERAS_HOME=%s|HF_HOME=%s\\n' "$*" "${KERAS_HOME:-}" "${HF_HOME:-}" >>"$STUB_LOG.env"
if [[ "$*" == *helpers.gpu_probe* ]]; then exit "${STUB_PROBE_RC:-0}"; fi
""",
}


@dataclass(frozen=True)
class Call:
    user: str
    cwd: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return Path(self.argv[0]).name


def install(stub_dir: Path, names: tuple[str, ...], extra: tuple[str, ...] = ()) -> Path:
    """Create stubs for `names` (+ record-only `extra`) in stub_dir/bin; returns the bin folder."""
    bin_dir, templates = stub_dir / "bin", stub_dir / "templates"
    bin_dir.mkdir(parents=True, exist_ok=True)
    templates.mkdir(exist_ok=True)
    for name in (*names, *extra):
        write_exec(bin_dir / name, RECORD + BEHAVIOUR.get(name, ""))
    for name, text in TEMPLATES.items():
        write_exec(templates / name, text)
    return bin_dir


def write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def read_calls(log: Path) -> list[Call]:
    """Every recorded call, in order."""
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        user, cwd, rest = line.split("|", 2)
        calls.append(Call(user, cwd, tuple(shlex.split(rest))))
    return calls


def wait_until(check: Callable[[], bool], timeout_s: float = 60, what: str = "condition") -> None:
    """Poll `check` every 50 ms; fail after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pid_done(pidfile: Path) -> bool:
    """The process named in pidfile has exited (a zombie counts as exited)."""
    if not pidfile.exists():
        return False
    status = Path(f"/proc/{pidfile.read_text().strip()}/status")
    return not status.exists() or "State:\tZ" in status.read_text()


def stub_env(stub_dir: Path, log: Path, user_home: Path, **extra: str) -> dict[str, str]:
    """The environment a sandboxed script runs with: stubs first on PATH."""
    return {
        **os.environ,
        "PATH": f"{stub_dir / 'bin'}:{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_DIR": str(stub_dir),
        "STUB_USER_HOME": str(user_home),
        **extra,
    }
