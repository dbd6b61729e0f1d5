"""Caption statistics of a Flickr8k-format dataset: per split sizes, lengths and vocabulary."""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd


def caption_stats(flickr) -> tuple[pd.DataFrame, collections.Counter]:
    """Per split: images, captions, words per caption (mean, min, max), vocabulary; and word counts."""
    rows, words = [], collections.Counter()
    for split, names in flickr.splits.items():
        caps = [c for n in names for c in flickr.normalized[n]]
        lengths = np.array([len(c.split()) for c in caps]) if caps else np.zeros(1)
        vocab = collections.Counter(w for c in caps for w in c.split())
        words.update(vocab if split == "train" else {})
        rows.append(
            {
                "split": split,
                "images": len(names),
                "captions": len(caps),
                "mean_words": lengths.mean(),
                "min_words": int(lengths.min()),
                "max_words": int(lengths.max()),
                "vocabulary": len(vocab),
            }
        )
    return pd.DataFrame(rows).set_index("split"), words
