"""helpers.caption.cpu_heap: in the block, large CPU buffers are reused instead of mapped (and page-faulted)
afresh; outside it glibc's defaults are back; the captioner's training steps run inside it.

Page faults are counted (getrusage's minor faults), not timed: a 64 MB buffer mapped afresh faults once per
4 KB page (16,384 times), one reused from the heap not at all.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch

from helpers.caption import cpu_heap

pytestmark = pytest.mark.skipif(cpu_heap._glibc() is None, reason="glibc's mallopt only")
#: Run in a fresh interpreter (the test process's heap holds whatever earlier tests left): minor page faults
#: per allocate-fill-free of a float32 buffer, as a share of its 4 KB pages (1.0: mapped afresh each time).
SCRIPT = """
import json, resource, sys
import torch
from helpers.caption.cpu_heap import reused_heap

def faults(elements, rounds=6):
    for _ in range(12):  # warm-up: the heap settles into reusing the buffer after a few rounds
        torch.empty(elements).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        torch.empty(elements).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds / (elements * 4 / 4096)

mb64, mb128 = 16 * 2**20, 32 * 2**20  # both over glibc's largest mmap threshold (32 MB)
out = {"default": faults(mb64)}
with reused_heap(sys.argv[1]) as active:
    out["active"] = active
    with reused_heap(sys.argv[1]):
        out["nested"] = faults(mb64)
    out["inner closed"] = faults(mb64)
# Bigger than any chunk the heap kept: mapped afresh again once glibc's defaults are back.
out["after"] = faults(mb128)
print(json.dumps(out))
"""


def page_faults(device: str) -> dict:
    run = subprocess.run([sys.executable, "-c", SCRIPT, device], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_large_buffers_are_reused_in_the_block_and_mapped_afresh_outside():
    out = page_faults("cpu")
    assert out["default"] > 0.9 and out["active"]  # glibc's default: every buffer a fresh mapping
    assert out["nested"] < 0.05 and out["inner closed"] < 0.05  # reused while any block is open
    assert out["after"] > 0.9  # the defaults are back when the last block ends


def test_nothing_changes_for_a_gpu_device():
    out = page_faults("cuda")
    assert not out["active"] and min(out["nested"], out["inner closed"]) > 0.9


def test_captioner_training_steps_run_in_the_block(tmp_path, monkeypatch):
    from test_caption_train import FAST, FEATURES, new_model, toy_pairs

    from helpers.caption import train as train_module

    reused = []
    monkeypatch.setattr(
        torch.optim.AdamW, "step", lambda self, *a, **k: reused.append(cpu_heap.in_effect()), raising=True
    )
    train, val = toy_pairs(FEATURES)
    train_module.train_captioner(
        new_model(), train, val, dataclasses.replace(FAST, epochs=1), tmp_path, progress=False
    )
    assert reused and all(reused)
    assert not cpu_heap.in_effect()  # and the setting is gone afterwards
