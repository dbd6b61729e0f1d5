"""Captioning CIFAR-100 test images from run_dir/data, with the best classifier's top-1 beside each."""

from __future__ import annotations

from typing import Any

import numpy as np


def caption_cifar(captioner, paths, count: int = 12, seed: int = 0) -> dict[str, Any] | None:
    """Caption `count` CIFAR-100 test images from run_dir/data (None when 01 has not run), with the top-1
    of the classifier 05-compare picked beside each when it has run."""
    from helpers.data import load_prepared

    if not (paths.data / "manifest.json").is_file():
        return None
    prepared = load_prepared(paths.data)
    pick = np.sort(
        np.random.default_rng(seed).choice(
            len(prepared.test.labels), size=min(count, len(prepared.test.labels)), replace=False
        )
    )
    images = prepared.test.images[pick]
    out = {
        "images": images,
        "captions": captioner.caption_images(list(images)),
        "truth": [prepared.label_names[i] for i in prepared.test.labels[pick]],
        "top1": None,
        "classifier": None,
    }
    folder = paths.best_classifier()
    if folder is not None and (folder / "model.keras").is_file():
        from helpers.classify import load_classifier, predict_topk

        model, config = load_classifier(folder)
        idx, _ = predict_topk(model, config, images, k=1)
        names = config.get("label_names", prepared.label_names)
        out.update(top1=[names[i] for i in idx[:, 0]], classifier=str(folder))
    return out
