"""The GPU-only paths, run on CPU so they are not dead code: mixed precision, XLA, MirroredStrategy, and
TensorFlow beside PyTorch in one process with TensorFlow's GPU memory growth on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from classify_support import TINY, make_prepared, tiny_config

from helpers.classify import BACKBONES, predict_probs
from helpers.classify.backbones import backbone_layer
from helpers.classify.train import train_classifier
from helpers.data import load_prepared

# Runs in a fresh interpreter: logical devices must be configured before TensorFlow initialises.
MIRRORED = r"""
import json, sys
import helpers
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from classify_support import TINY, tiny_config
from helpers.classify import BACKBONES
from helpers.classify.train import choose_strategy, train_classifier
from helpers.data import load_prepared

BACKBONES["tiny"] = TINY
strategy = choose_strategy(["/cpu:0", "/cpu:1"])
cfg = tiny_config(sys.argv[3], head_epochs=1, finetune_epochs=1)
result = train_classifier(cfg, load_prepared(sys.argv[2]), strategy=strategy)
print("RESULT", json.dumps({
    "replicas": result.replicas,
    "strategy": type(strategy).__name__,
    "epochs": result.history["epoch"].tolist(),
    "loss": result.history["loss"].tolist(),
    "model_saved": (cfg.model_dir / "model.keras").is_file(),
    "recorded": json.loads((cfg.model_dir / "config.json").read_text()),
    "trained_with": [result.config.batch_size, result.config.lr, result.config.replicas],
}))
"""

# Runs in a fresh interpreter: what matters is the order in which a notebook kernel meets the frameworks.
TF_AND_TORCH = r"""
import json, os
import numpy as np
import helpers
growth = os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")
import torch
import tensorflow as tf
from tensorflow.python.eager import context

def initialised():
    # No public call tells without initialising; this flag flips when TensorFlow creates its devices.
    return bool(context.context()._initialized)

gpu = torch.cuda.is_available()
x = np.arange(16, dtype=np.float32).reshape(4, 4) / 16
t = torch.from_numpy(x).to("cuda" if gpu else "cpu")
torch_out = (t @ t).cpu().numpy()
before = initialised()
tf_out = tf.linalg.matmul(tf.constant(x), tf.constant(x)).numpy()
result = {
    "growth_at_import": growth, "tf_devices_initialised_before_first_op": before,
    "tf_devices_initialised_after": initialised(), "tf_gpus": len(tf.config.list_physical_devices("GPU")),
    "torch_ok": bool(np.allclose(torch_out, x @ x, atol=1e-3)), "tf_ok": bool(np.allclose(tf_out, x @ x)),
}
if gpu:  # TensorFlow grabs ~all GPU memory at its first op unless growth is on
    free, total = torch.cuda.mem_get_info()
    result["gpu_free_fraction_after_tf"] = free / total
print("RESULT", json.dumps(result))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_prepared(tmp_path_factory.mktemp("gpu-paths"))


class Inspect(keras.callbacks.Callback):
    """Notes the optimizer and the loss while fit() runs."""

    def __init__(self):
        super().__init__()
        self.seen: dict = {}  # per instance: a class-level dict would carry one run's notes into the next

    def on_train_batch_end(self, batch, logs=None):
        self.seen.update(
            optimizer=type(self.model.optimizer).__name__,
            loss=float(logs["loss"]),
            jit_compile=self.model.jit_compile,
        )


def test_mixed_float16_fit_keeps_softmax_in_float32(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TINY)  # MobileNetV2 works too, but float16 on this CPU is slow
    data = load_prepared(data_dir)
    cfg = tiny_config(tmp_path, head_epochs=1, finetune_epochs=1, mixed_precision=True)
    inspect = Inspect()
    result = train_classifier(cfg, data, callbacks=[inspect])
    assert result.policy == "mixed_float16"
    assert inspect.seen["optimizer"] == "LossScaleOptimizer" and np.isfinite(inspect.seen["loss"])
    conv = next(lay for lay in backbone_layer(result.model).layers if isinstance(lay, keras.layers.Conv2D))
    assert (conv.dtype_policy.compute_dtype, conv.dtype_policy.variable_dtype) == ("float16", "float32")
    assert result.model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    probs = predict_probs(result.model, data.test.images, "tiny", 32)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert keras.config.dtype_policy().name == "float32", "the global policy must be restored after training"


def test_mirrored_strategy_over_two_cpu_devices(data_dir, tmp_path):
    tests_dir = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(tests_dir), str(data_dir), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["strategy"] == "MirroredStrategy" and result["replicas"] == 2
    assert result["epochs"] == [0, 1] and all(np.isfinite(result["loss"]))
    assert result["model_saved"]
    # each device keeps the recipe's batch of 16: global 32, Adam's rate x sqrt(2); config.json says so
    assert result["trained_with"] == [32, pytest.approx(3e-3 * 2**0.5), 2]
    recorded = result["recorded"]
    assert (recorded["batch_size"], recorded["replicas"]) == (32, 2)
    assert recorded["lr"] == pytest.approx(3e-3 * 2**0.5)


def test_mixed_float16_under_xla_trains(data_dir, tmp_path, monkeypatch):
    """What Keras picks on a GPU (mixed_float16 and jit_compile), forced on the CPU: it runs and learns."""
    monkeypatch.setitem(BACKBONES, "tiny", TINY)
    data = load_prepared(data_dir)
    cfg = tiny_config(tmp_path, mixed_precision=True, jit_compile=True)
    inspect = Inspect()
    result = train_classifier(cfg, data, callbacks=[inspect])
    assert inspect.seen["jit_compile"] is True and inspect.seen["optimizer"] == "LossScaleOptimizer"
    assert result.policy == "mixed_float16"
    history = result.history
    assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert history["val_accuracy"].max() >= 0.6  # 4 balanced classes: chance is 0.25


def test_tensorflow_and_torch_share_one_process_with_memory_growth():
    proc = subprocess.run([sys.executable, "-c", TF_AND_TORCH], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["growth_at_import"] == "true"  # set by `import helpers`, before TensorFlow exists
    assert result["tf_devices_initialised_before_first_op"] is False  # so the setting is read at init
    assert result["tf_devices_initialised_after"] is True  # (the probe does see initialisation)
    assert result["torch_ok"] and result["tf_ok"]
    if "gpu_free_fraction_after_tf" in result:  # on a GPU machine: TensorFlow left the memory to torch
        assert result["tf_gpus"] >= 1 and result["gpu_free_fraction_after_tf"] > 0.5


def test_the_recipe_scales_to_several_devices(tmp_path, monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny", TINY)
    cfg = tiny_config(tmp_path, batch_size=64, lr=1e-3)
    assert cfg.on_replicas(1) is cfg
    four = cfg.on_replicas(4)
    assert (four.batch_size, four.replicas) == (256, 4) and four.lr == pytest.approx(2e-3)
    assert four.on_replicas(4) is four
    with pytest.raises(ValueError, match="already scaled"):
        four.on_replicas(8)
    linear = tiny_config(tmp_path, batch_size=64, lr=1e-3, lr_scaling="linear").on_replicas(4)
    assert linear.lr == pytest.approx(4e-3)
    assert tiny_config(tmp_path, lr=1e-3, lr_scaling="none").on_replicas(4).lr == cfg.lr
    with pytest.raises(ValueError, match="lr_scaling"):
        tiny_config(tmp_path, lr_scaling="cubic")
