"""``python -m helpers.gpu_probe``: TensorFlow and torch each run a matmul on the GPU, in one process.

lifecycle-config.sh runs it after installing the CUDA libraries and writes env-ready only when it exits 0.
Both frameworks share the process as they do in the notebooks: TensorFlow's memory growth is set before
TensorFlow touches a device, so torch still finds GPU memory.
"""

from __future__ import annotations

import os
import sys

import numpy as np

#: Side of the square test matrices: big enough to launch real GEMM kernels, small enough for any GPU.
SIZE = 256


def _tensorflow() -> tuple[str, str | None]:
    """TensorFlow's version line, and a problem (or None) after a matmul on its first GPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)  # before any op: leave memory for torch
    build = tf.sysconfig.get_build_info()
    line = f"tensorflow {tf.__version__} (CUDA {build.get('cuda_version', 'none')}): {len(gpus)} GPU(s)"
    if not gpus:
        return line, "TensorFlow sees no GPU"
    a = np.random.default_rng(0).standard_normal((SIZE, SIZE)).astype(np.float32)
    with tf.device("/GPU:0"):
        got = tf.linalg.matmul(tf.constant(a), tf.constant(a)).numpy()
    return line, _compare("TensorFlow", got, a @ a)


def _torch() -> tuple[str, str | None]:
    """torch's version line, and a problem (or None) after a matmul on cuda:0."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))
    cuda = torch.version.cuda or "none"
    line = f"torch {torch.__version__} (CUDA {cuda}): {count} GPU(s) {names}".rstrip()
    if not count:
        return line, f"torch {torch.__version__} sees no GPU (CUDA build: {cuda})"
    a = np.random.default_rng(1).standard_normal((SIZE, SIZE)).astype(np.float32)
    x = torch.from_numpy(a).cuda()
    got = (x @ x).cpu().numpy()
    return line, _compare("torch", got, a @ a)


def _compare(framework: str, got: np.ndarray, expected: np.ndarray) -> str | None:
    """None when the GPU result matches NumPy's (fp32 accumulation, so 1e-3 relative is generous)."""
    if np.allclose(got, expected, rtol=1e-3, atol=1e-2):
        return None
    return f"{framework}'s GPU matmul differs from NumPy's (max error {np.abs(got - expected).max():.3g})"


def main() -> int:
    """Print both frameworks' versions and GPUs; exit 1 with the problems when either cannot use a GPU."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides the result
    results = [_tensorflow(), _torch()]  # TensorFlow first: its memory growth must precede any GPU use
    for line, _ in results:
        print(line, flush=True)
    problems = [problem for _, problem in results if problem]
    if problems:
        print(f"GPU probe FAILED: {'; '.join(problems)}", flush=True)
        return 1
    print("GPU probe passed: TensorFlow and torch both ran a matmul on the GPU", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
