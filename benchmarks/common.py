"""What every benchmark needs: the machine, peak memory of a process, worker subprocesses, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The repository root: workers run as ``python -m benchmarks.<module>`` from here.
ROOT = Path(__file__).resolve().parents[1]
#: Marks the one line of a worker's stdout that carries its JSON result.
RESULT_PREFIX = "BENCHMARK-RESULT "
GIB = 1024**3


def _proc_field(path: str, key: str) -> str | None:
    """One `key: value` field of a /proc text file (Linux), or None when absent."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def machine() -> dict[str, Any]:
    """CPU model, cores usable by this process, total RAM (GiB), OS and the load average at call time."""
    ram_kib = _proc_field("/proc/meminfo", "MemTotal")
    ram = (
        int(ram_kib.split()[0]) * 1024
        if ram_kib
        else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "cores": cores,
        "ram_gib": round(ram / GIB, 1),
        "os": platform.platform(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children (and theirs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_rss_bytes() -> int:
    """This process's peak resident set size (bytes) since exec.

    Linux's VmHWM belongs to the process's own address space. `ru_maxrss` (the fallback elsewhere) can
    instead report the parent's peak, because a child started with vfork records the parent's memory
    high-water mark at exec.
    """
    hwm = _proc_field("/proc/self/status", "VmHWM")
    if hwm:
        return int(hwm.split()[0]) * 1024  # reported in kB
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def rss_bytes() -> int:
    """This process's current resident set size (bytes)."""
    rss = _proc_field("/proc/self/status", "VmRSS")
    if rss:
        return int(rss.split()[0]) * 1024
    import psutil

    return psutil.Process().memory_info().rss


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result as one JSON line for `run_worker` to pick up."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(module: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m <module> <args>`` in a fresh process and return the JSON it emitted."""
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or len(lines) != 1:
        status = str(proc.returncode)
        if proc.returncode < 0:  # killed by a signal: no traceback will say why
            import signal

            name = (
                signal.Signals(-proc.returncode).name if -proc.returncode in signal.valid_signals() else "?"
            )
            status += f" (killed by {name}{': out of memory?' if name == 'SIGKILL' else ''})"
        raise RuntimeError(
            f"worker `{' '.join(cmd[1:])}` exited {status} with {len(lines)} result lines;"
            f" stdout tail:\n{proc.stdout[-1000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
        )
    return json.loads(lines[0][len(RESULT_PREFIX) :])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, by the monotonic high-resolution clock."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def summarise(seconds: list[float]) -> dict[str, Any]:
    """Median, min and max of repeated timings (s), and how many there were."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": len(seconds),
        "all_s": [round(s, 4) for s in seconds],
    }


def memory_bandwidth(n_bytes: int = 256 * 1024**2, repeats: int = 5) -> dict[str, float]:
    """STREAM-style copy and triad in numpy on one thread (numpy's elementwise ops use one): bytes/s, best of
    `repeats`. Copy moves 2 arrays a pass; triad as numpy runs it (c*s into a, then a += b) moves 5."""
    import numpy as np

    n = n_bytes // 8
    a, b, c = np.ones(n), np.full(n, 2.0), np.full(n, 0.5)

    def triad() -> None:
        np.multiply(c, 3.0, out=a)
        np.add(a, b, out=a)

    best_copy = min(timed(lambda: np.copyto(a, b))[0] for _ in range(repeats))
    best_triad = min(timed(triad)[0] for _ in range(repeats))
    return {"copy_bytes_per_s": 2 * 8 * n / best_copy, "triad_bytes_per_s": 5 * 8 * n / best_triad}
