"""Training callbacks that survive a killed run: the epoch log, the phase backup and the learning rate."""

from __future__ import annotations

import io
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from helpers import artifacts


def read_history(path: str | Path) -> pd.DataFrame:
    """history.csv as a DataFrame (empty when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["epoch", "phase"])
    return pd.read_csv(path)


class HistoryLog(keras.callbacks.Callback):
    """One CSV row per finished epoch: metrics, phase, learning rate, seconds and seconds per step.

    Rows are keyed by the absolute epoch and the file is rewritten atomically, so an epoch that is
    re-run after a kill replaces its row: every epoch appears exactly once. Placed before
    BackupAndRestore in the callback list, the row is on disk before the backup says the epoch is done.
    """

    def __init__(self, path: str | Path, phase: str, first_epoch_builds: bool = True):
        super().__init__()
        self.path, self.phase = Path(path), phase
        self._start, self._first = 0.0, first_epoch_builds
        self._steps: list[float] = []  # seconds of each training step this epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start, self._steps = time.perf_counter(), []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps.append(time.perf_counter() - self._step_start)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch, "phase": self.phase, "lr": current_lr(self.model)}
        row.update({k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"})
        row["seconds"] = time.perf_counter() - self._start
        # A steady step: the median, without the first step of an epoch that builds the train graph.
        steady = self._steps[1:] if self._first and len(self._steps) > 1 else self._steps
        row["step_seconds"] = float(np.median(steady)) if steady else float("nan")
        # The first epoch after a compile also traces the train graph (13-40 s on CPU): not a steady epoch.
        row["includes_graph_build"], self._first = self._first, False
        old = read_history(self.path)
        new = pd.concat([old[old["epoch"] != epoch], pd.DataFrame([row])], ignore_index=True)
        buf = io.StringIO()
        new.sort_values("epoch").to_csv(buf, index=False)
        artifacts.write_text(self.path, buf.getvalue())


class PhaseBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that keeps one backup, replaced atomically at each epoch's end.

    Keras' own writer overwrites the weights file in place, hence its `double_checkpoint` (a second full
    copy); a rename gives the same safety at half the disk. `supersedes` is an earlier phase's backup
    folder, deleted once this phase has written its own (a rerun then skips that phase).
    """

    def __init__(self, backup_dir: str | Path, supersedes: str | Path | None = None):
        super().__init__(str(backup_dir), delete_checkpoint=False)
        self.supersedes = Path(supersedes) if supersedes else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Replaces Keras' in-place save (the only place it saves with the default save_freq="epoch")."""
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".latest.tmp.weights.h5"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(tmp)
        os.replace(tmp, self._weights_path)
        # The epoch marker goes last: a kill before it redoes this epoch (weights then one epoch ahead).
        artifacts.write_json(self._training_metadata_path, {"epoch": epoch + 1, "batch": 0})
        if self.supersedes is not None:
            shutil.rmtree(self.supersedes, ignore_errors=True)


def current_lr(model: keras.Model) -> float:
    """The optimizer's learning rate now (a plain float)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def cosine_schedule(lr: float, start: int, epochs: int) -> Callable[[int, float], float]:
    """Per-epoch cosine decay from `lr` over a phase's `epochs` epochs that begins at absolute epoch `start`.

    A pure function of the epoch number, so a resumed run picks up exactly where it left off.
    """

    def schedule(epoch: int, _current: float) -> float:
        k = min(max(epoch - start, 0), max(epochs, 1))
        return lr * 0.5 * (1.0 + math.cos(math.pi * k / max(epochs, 1)))

    return schedule
