"""Which pairs form each training batch: seeded shuffles, optionally in buckets of similar caption length,
and each global batch's share for one rank of a distributed run.

Length bucketing: the epoch's shuffled order is cut into windows of `BUCKET_BATCHES` batches; each window
is sorted by caption length and cut into batches, and the batches of the whole epoch are shuffled again.
Every pair is still in exactly one batch per epoch; a batch is padded only to its own longest caption,
which is now close to its shortest. The order depends only on (seed, epoch), so a resumed run and every
rank of a distributed run compute the same global batches.

Distributed runs do not use torch's DistributedSampler: it deals out single pairs, which would break the
length buckets and give each rank a batch drawn from a different order than one process would see.
Instead every rank builds the same global batches (the (seed, epoch) seed plays the role of
`DistributedSampler.set_epoch`) and takes a contiguous slice of each (`rank_share`), so the global batch
of a run on N ranks is exactly the batch one process trains on.
"""

from __future__ import annotations

import numpy as np

#: Batches sorted together: large enough that a window holds many lengths, small enough that the
#: batches of one window still differ from epoch to epoch.
BUCKET_BATCHES = 50


def epoch_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, bucket: bool, steps: int | None = None
) -> list[np.ndarray]:
    """The epoch's batches (pair indices); `steps`: keep only the first that many batches."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if not bucket:
        cut = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return cut[:steps]
    window = batch_size * BUCKET_BATCHES
    out: list[np.ndarray] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    # Only the last window can end in a short batch; shuffling keeps it from always coming last.
    return [out[i] for i in rng.permutation(len(out))][:steps]


def rank_share(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's contiguous slice of a global batch (the first ranks take one more when it is uneven)."""
    return np.array_split(batch, world)[rank]
