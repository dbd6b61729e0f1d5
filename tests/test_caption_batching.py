"""The captioner's batches and loss: length-bucketed epochs hold every pair once, ranks split each global
batch without loss or overlap, and the loss computed from hidden states gathered at the caption positions
equals the loss over the full vocabulary projection at every position, masked afterwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.caption.batching import epoch_batches, rank_share
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
from helpers.caption.train import CaptionPairs, batches

TINY_GPT2 = {"n_layer": 2, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 50257}
TINY_GPT2 |= {"bos_token_id": EOS_ID, "eos_token_id": EOS_ID}


def caption_lengths(pairs: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, 30, pairs)


@pytest.mark.parametrize("pairs, batch", [(1000, 40), (997, 32), (7, 4), (5000, 40)])
def test_bucketed_epochs_hold_every_pair_once_with_less_padding(pairs, batch):
    lengths = caption_lengths(pairs)
    for epoch in (1, 2):
        bucketed = epoch_batches(lengths, batch, seed=3, epoch=epoch, bucket=True)
        plain = epoch_batches(lengths, batch, seed=3, epoch=epoch, bucket=False)
        for cut in (bucketed, plain):
            assert sorted(np.concatenate(cut).tolist()) == list(range(pairs))
            assert all(len(b) <= batch for b in cut) and len(cut) == -(-pairs // batch)
        padded = [sum(len(b) * lengths[b].max() for b in cut) for cut in (bucketed, plain)]
        if pairs > 100:
            assert padded[0] < 0.75 * padded[1]  # much closer to the sum of the lengths
    one, two = (epoch_batches(lengths, batch, 3, e, True) for e in (1, 2))
    again = epoch_batches(lengths, batch, 3, 1, True)
    assert all(np.array_equal(a, b) for a, b in zip(one, again, strict=True))  # seeded
    if pairs > 100:  # 7 pairs sort into the same two batches every epoch
        assert not all(np.array_equal(a, b) for a, b in zip(one, two, strict=True))  # reshuffled


def test_plain_order_is_the_old_single_permutation_and_steps_cap_it():
    lengths = caption_lengths(100)
    old = np.random.default_rng([0, 4]).permutation(100)[: 3 * 8]
    new = epoch_batches(lengths, 8, seed=0, epoch=4, bucket=False, steps=3)
    assert np.array_equal(np.concatenate(new), old)


@pytest.mark.parametrize("size, world", [(40, 2), (41, 4), (3, 4), (1, 2)])
def test_ranks_split_a_global_batch_without_gaps_or_overlap(size, world):
    batch = np.arange(100, 100 + size)
    shares = [rank_share(batch, r, world) for r in range(world)]
    assert np.array_equal(np.concatenate(shares), batch)


@pytest.mark.parametrize("mapper", ["mlp", "transformer"])
def test_loss_from_gathered_positions_equals_loss_over_all_positions(mapper):
    model = build_captioner(PrefixConfig(feature_dim=6, prefix_length=4, gpt2=TINY_GPT2, mapper=mapper), 1)
    model.eval()
    rng = np.random.default_rng(0)
    tokens = [rng.integers(0, 50000, n).tolist() + [EOS_ID] for n in (3, 9, 1, 14, 6)]
    pairs = CaptionPairs(rng.normal(size=(5, 6)).astype(np.float32), np.arange(5), tokens)
    feats, ids, mask = next(batches(pairs, [np.arange(5)], torch.device("cpu")))
    with torch.no_grad():
        gathered = model(feats, ids, mask)
        prefix = model.prefix(feats)
        embeds = torch.cat([prefix, model.gpt.get_input_embeddings()(ids)], dim=1)
        full_mask = torch.cat([torch.ones(prefix.shape[:2], dtype=mask.dtype), mask], dim=1)
        logits = model.gpt(inputs_embeds=embeds, attention_mask=full_mask).logits  # every position
        per_position = torch.nn.functional.cross_entropy(
            logits[:, 3:-1].transpose(1, 2), ids, reduction="none"
        )
        full = (per_position * mask).sum() / mask.sum()
    assert abs(float(gathered) - float(full)) < 1e-5


def test_bucketing_is_a_knob_of_06_and_the_job_off_by_default(tmp_path):
    """Off in every preset (the smoke bars fail with it); 06's knob reaches training and the job."""
    from helpers.aws.training import job_hyperparameters
    from helpers.caption import job
    from helpers.caption.config import CaptionConfig

    for preset in ("smoke", "full"):
        assert not CaptionConfig.for_preset(preset, tmp_path).train.bucket_by_length
    assert CaptionConfig.for_preset("smoke", tmp_path, bucket_by_length=True).train.bucket_by_length
    hps = job_hyperparameters("smoke", {"bucket_by_length": True, "epochs": None}, blind=False)
    assert hps == {"preset": "smoke", "bucket_by_length": True, "blind": False}
    assert job.parse_args(["--preset", "smoke", "--bucket_by_length", "true"]).bucket_by_length is True


def test_t4_estimate_counts_the_padding_of_the_batches_trained(tmp_path):
    """The rehearsal's FLOP count follows the knob: bucketed batches pad less, so a step costs less."""
    from helpers.caption.config import CaptionConfig
    from rehearsal import estimate
    from rehearsal.report import caption_shape

    tokens = tmp_path / "captions.txt"
    rng = np.random.default_rng(0)
    words = ["a dog runs", "a black dog is running after a white dog in the snow", "two children play"]
    lines = [f"{i:04d}.jpg#0\t{words[rng.integers(3)]} {'far ' * int(rng.integers(8))}" for i in range(800)]
    tokens.write_text("\n".join(lines), encoding="utf-8")
    plain, bucketed = (caption_shape(tokens, 40, 40, bucket) for bucket in (False, True))
    assert plain["mean_tokens"] == bucketed["mean_tokens"] and bucketed["padded"] < plain["padded"]
    cfgs = [CaptionConfig.for_preset("full", tmp_path, bucket_by_length=b) for b in (False, True)]
    a, b = (
        estimate.captioner_estimate(cfg, shape) for cfg, shape in zip(cfgs, (plain, bucketed), strict=True)
    )
    assert b.tflop < a.tflop and "length-bucketed" in b.note and "length-bucketed" not in a.note


def test_t4_estimate_counts_the_captions_06_trains_on(tmp_path):
    """The FLOP count reads captions as 06 does: normalized (case, punctuation) and of the training list."""
    from rehearsal.report import caption_shape

    messy, clean = tmp_path / "messy", tmp_path / "clean"
    for folder, text in (
        (messy, "A Dog , RUNS fast !!!  on the   grass ."),
        (clean, "a dog runs fast on the grass"),
    ):
        folder.mkdir()
        lines = [f"{i:04d}.jpg#{k}\t{text}" for i in range(60) for k in range(5)]
        (folder / "Flickr8k.token.txt").write_text("\n".join(lines), encoding="utf-8")
    shapes = [caption_shape(f / "Flickr8k.token.txt", 8, 40) for f in (messy, clean)]
    assert shapes[0] == shapes[1] and shapes[0]["captions"] == 300
    # With the official lists beside the file, only the training images' captions count.
    for name, ids in (
        ("trainImages", range(20)),
        ("devImages", range(20, 40)),
        ("testImages", range(40, 60)),
    ):
        (clean / f"Flickr_8k.{name}.txt").write_text("".join(f"{i:04d}.jpg\n" for i in ids))
    caption_shape.cache_clear()
    assert caption_shape(clean / "Flickr8k.token.txt", 8, 40)["captions"] == 100
