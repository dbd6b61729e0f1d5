"""The runner's terminal: its own lines and real problems from a kernel, none of the start-up noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.quiet_kernel import is_noise

ROOT = Path(__file__).resolve().parents[1]

#: What a CPU-only machine printed for every notebook that imports TensorFlow (TF 2.21, ipykernel 7.4).
NOISE_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795944626.774975   11021 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results due to floating-point round-off errors from different computation "
    "orders. To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1795944626.777852   11021 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "E0000 00:00:1795944642.787647   11021 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)",
    # pycocoevalcap's Java PTB tokenizer, once per scoring call (notebooks 06-08).
    "PTBTokenizer tokenized 3920 tokens at 31861.95 tokens per second.",
    "PTBTokenizer tokenized 5 tokens at 47.63 tokens per second.",
]
#: Lines that look alike but say something a person must read.
REAL_LINES = [
    "E0000 00:00:1795944642.787647   11021 cuda_platform.cc:52] failed call to cuInit: CUDA_ERROR_NO_DEVICE "
    "(100)",
    "E0000 00:00:1795944642.787647   11021 bfc_allocator.cc:485] Allocator ran out of memory",
    "W0000 00:00:1795944626.774975   11021 op_kernel.cc:1857] OP_REQUIRES failed at save_restore.cc:2",
    "WARNING: something else entirely",
    "[IPKernelApp] ERROR | Failed to load connection file",
    'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
    "PTBTokenizer: unknown option -foo",
]
#: Written by the kernel at start-up (an IPython start-up file) the way notebooks 02-07 start: import
#: helpers, then TensorFlow, then look for a GPU; then one PTB tokenization as the caption scorer runs it
#: (where Java is installed); then two real problems on the kernel's stderr.
PROBE = """\
import os
import shutil
import helpers
import tensorflow as tf
tf.config.list_physical_devices("GPU")
if shutil.which("java"):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    PTBTokenizer().tokenize({1: [{"caption": "A dog runs."}]})
os.write(2, b"E0000 00:00:1.0 1 probe.cc:1] a real error from the kernel\\n")
os.write(2, b"a real warning from the kernel\\n")
"""


@pytest.mark.parametrize("line", NOISE_LINES)
def test_start_up_noise_is_recognised(line):
    assert is_noise(line) and is_noise(line + "\n")


@pytest.mark.parametrize("line", REAL_LINES)
def test_real_lines_are_kept(line):
    assert not is_noise(line)


def test_runner_prints_its_own_lines_and_real_problems_but_no_noise(tmp_path):
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-probe.py").write_text(PROBE)
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / "ipython"))
    cmd = [sys.executable, "-m", "helpers", "run", "--preset", "smoke", "--only", "01"]
    cmd += ["--run-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    for own in ("run folder:", "[1/1] 01-preprocess", "done in", "all 1 notebooks done in"):
        assert own in done.stdout, output
    assert "a real error from the kernel" in done.stderr, output
    assert "a real warning from the kernel" in done.stderr, output
    noise = ["Kernel is running over TCP", "absl::InitializeLog", "oneDNN custom", "cuda drivers", "cuInit"]
    noise.append("tokens per second")
    assert not [n for n in noise if n in output], output
