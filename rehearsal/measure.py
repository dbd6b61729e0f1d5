"""What the rehearsal measures: wall time, CPU time, peak memory and bytes written of a run; folder sizes.

Peak memory is the largest sum of resident set sizes over the runner and its kernel (sampled every 0.2 s),
which is what the instance's RAM must hold. Bytes written are the kernel's and runner's ``write_bytes``
from /proc (what reached the disk layer, temporary and overwritten files included); the net growth of the
run folder and the download cache is reported beside it.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_S = 0.2  # seconds between memory samples


@dataclass
class ProcessRun:
    """One measured command."""

    returncode: int
    seconds: float  # wall
    cpu_seconds: float  # user + system of every descendant
    peak_rss: int  # bytes, largest sum over the process tree
    written: int  # bytes written by the process tree (/proc write_bytes)
    output: str  # stdout and stderr, interleaved


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> ProcessRun:
    """Run `cmd`, sampling its process tree until it exits; its output goes to `log` as well."""
    cpu0, start = _children_cpu(), time.perf_counter()
    peak, written = 0, {}
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, _sample(root, written))
            time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - start
    return ProcessRun(
        proc.returncode, seconds, _children_cpu() - cpu0, peak, sum(written.values()), log.read_text()
    )


def _sample(root: psutil.Process, written: dict[int, int]) -> int:
    """Resident bytes of the whole tree now; records each process's bytes written so far."""
    total = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
            written[p.pid] = max(written.get(p.pid, 0), p.io_counters().write_bytes)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def folder_size(path: Path) -> int:
    """Bytes of the regular files under `path` (symbolic links not followed); 0 if it does not exist."""
    if not path.exists():
        return 0
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def folder_table(root: Path, depth: int = 2) -> dict[str, int]:
    """{relative folder: bytes} for every folder down to `depth` levels below `root`."""
    sizes = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() and len(rel.parts) <= depth:
            sizes[str(rel)] = folder_size(path)
    return sizes


def load_average() -> float:
    """The 1-minute load average (2 cores: above 2 means other work competed for them)."""
    return os.getloadavg()[0]
