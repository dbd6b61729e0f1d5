"""The runner's kernel manager: an encrypted kernel transport, and start-up noise kept off the terminal.

A kernel's stderr reaches the terminal of whoever runs the series. TensorFlow 2.21 writes a few lines there
that `TF_CPP_MIN_LOG_LEVEL` cannot stop (absl's messages before its log set-up, and a failed `cuInit`
logged as an ERROR on every machine without a GPU); pycocoevalcap's Java PTB tokenizer, whose stderr is the
kernel's own, reports its speed after every scoring call; ipykernel warns about plain TCP unless the kernel
manager hands it CurveZMQ keys. The keys are handed over where the kernel spec supports them, and exactly
the lines below are dropped; every other line the kernel writes passes through.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from typing import IO, Any

import zmq
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

#: absl's log line prefix: severity, date, time, thread id, source file and line.
_ABSL = r"[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "
#: TensorFlow's lines on every start on a CPU-only machine, and the PTB tokenizer's speed report (Stanford
#: CoreNLP 3.4.1, one line per tokenizer run); none of them asks anything of the user.
NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rf"|{_ABSL}oneDNN custom operations are on\."
    rf"|{_ABSL}Could not find cuda drivers on your machine, GPU will not be used\.$"
    rf"|{_ABSL}failed call to cuInit: .*\(303\)$"
    r"|PTBTokenizer tokenized \d+ tokens at [\d.,]+ tokens per second\.$"
)


def is_noise(line: str) -> bool:
    """True for exactly the start-up lines in NOISE."""
    return NOISE.match(line.rstrip("\r\n")) is not None


def forward(source: IO[bytes], sink: IO[str]) -> None:
    """Copy `source` to `sink` line by line until EOF, leaving out noise."""
    for raw in iter(source.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        if not is_noise(line):
            sink.write(line)
            sink.flush()
    source.close()


class QuietKernelManager(AsyncKernelManager):
    """Starts kernels with CurveZMQ keys (where the kernel spec declares support) and stderr filtered."""

    @default("transport_encryption")
    def _transport_encryption_default(self) -> str:
        return "auto" if zmq.has("curve") else "disabled"  # "auto" is refused by a pyzmq without CurveZMQ

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        kw["stderr"] = subprocess.PIPE
        await super()._async_launch_kernel(kernel_cmd, **kw)
        pipe = self.provisioner.process.stderr  # type: ignore[union-attr]  (set by the launch above)
        threading.Thread(target=forward, args=(pipe, sys.stderr), daemon=True).start()
