"""helpers.caption.narrative (pure text and geometry), helpers.caption.likelihood and the Storyteller on a
tiny random captioner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.caption import likelihood
from helpers.caption.decode import DecodeConfig
from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
from helpers.caption.narrative import (
    Narrative,
    Sentence,
    cell_at,
    crop,
    distinct_ngrams,
    grid_cells,
    position_phrase,
    rank_candidates,
    region_sentence,
    repeats_itself,
    repetition,
)
from helpers.caption.storyteller import StoryConfig, Storyteller
from helpers.caption.tokenizer import gpt2_tokenizer

SAID = ["a red circle to the left of a blue circle"]


def test_ranking_prefers_specific_sentences_that_say_something_new():
    candidates = [
        "a blue circle to the right of a red circle",  # same content words, only "right" is new
        "a green circle at the bottom",  # new words, less specific
        "the picture shows a yellow square",  # new words, most specific
    ]
    ranked = rank_candidates(candidates, [7.0, 3.0, 5.0], SAID, penalty=4.0)
    assert [r.text for r in ranked] == [candidates[2], candidates[0], candidates[1]]
    assert ranked[1].repetition == pytest.approx(3 / 4)  # blue, circle, red of {blue, circle, right, red}
    assert ranked[1].score == pytest.approx(7.0 - 4.0 * 0.75)
    # a heavier penalty puts the repetitive one last
    heavy = rank_candidates(candidates, [7.0, 3.0, 5.0], SAID, penalty=10.0)
    assert heavy[-1].text == candidates[0]


def test_ranking_drops_repeats_degenerate_and_shared_four_grams():
    candidates = [
        "a red circle to the left of a green circle",  # shares "a red circle to" with SAID
        "a a a a a a",  # degenerate
        "A red circle to the left of a blue circle.",  # already said (case and punctuation aside)
        "circle",  # too short to be a sentence
        "a green square above a red circle",
        "a green square above a red circle",  # duplicate candidate
    ]
    ranked = rank_candidates(candidates, [10.0, 10.0, 10.0, 10.0, 1.0, 1.0], SAID)
    assert [r.text for r in ranked] == ["a green square above a red circle"]
    with pytest.raises(ValueError, match="one specificity per candidate"):
        rank_candidates(candidates, [1.0], SAID)


def test_ties_keep_candidate_order():
    candidates = ["a green square", "a yellow square", "a pink square"]
    assert [r.text for r in rank_candidates(candidates, [1.0, 1.0, 1.0], [])] == candidates


def test_repetition_and_degenerate_sentences():
    assert repetition("a red circle", SAID) == 1.0
    assert repetition("a green square", SAID) == 0.0
    assert repetition("a the of", SAID) == 1.0  # nothing but stop words says nothing new
    assert repeats_itself("a a a a") and repeats_itself("a dog runs and a dog runs and a dog runs")
    # "circle at the" twice is a fine template; only a 4-gram repeated within the sentence is degenerate
    assert not repeats_itself("a red circle at the top and a blue circle at the bottom")
    assert distinct_ngrams(["a red circle at the top", "a blue circle at the bottom"])
    assert not distinct_ngrams(["a red circle at the top", "the red circle at the top"])


def test_grid_cells_tile_the_image_and_crops_have_their_size():
    cells = grid_cells(90, 121, 3, 3)
    assert len(cells) == 9 and cells[0].top == 0 and cells[-1].bottom == 90 and cells[-1].right == 121
    assert sum((c.bottom - c.top) * (c.right - c.left) for c in cells) == 90 * 121
    image = np.arange(90 * 121 * 3, dtype=np.int64).reshape(90, 121, 3)
    top_left = crop(image, cells[0])
    assert top_left.shape == (30, 40, 3) and (top_left == image[:30, :40]).all()
    grown = crop(image, cells[4], margin=0.5)  # the centre cell (30x41) grows by half its size each side
    assert grown.shape == (60, 81, 3)
    assert crop(image, cells[0], margin=0.5).shape == (45, 60, 3)  # clipped at the image's edge
    with pytest.raises(ValueError, match="outside a 3x3 grid"):
        cell_at(90, 121, 3, 0)
    with pytest.raises(ValueError, match="cannot lay a 3x3 grid over a 2x2 image"):
        grid_cells(2, 2)


def test_position_phrases():
    phrases = [position_phrase(c) for c in grid_cells(30, 30, 3, 3)]
    assert phrases == [
        "At the top left",
        "At the top",
        "At the top right",
        "On the left",
        "In the centre",
        "On the right",
        "At the bottom left",
        "At the bottom",
        "At the bottom right",
    ]
    assert [position_phrase(c) for c in grid_cells(20, 20, 2, 2)] == [
        "At the top left",
        "At the top right",
        "At the bottom left",
        "At the bottom right",
    ]
    sentence = region_sentence(" a red circle ", cell_at(30, 30, 0, 0))
    assert sentence.display() == "At the top left, a red circle."


def test_narrative_grows_resets_and_seeds_each_step():
    story = Narrative.start("a red circle", seed=3)
    assert story.display() == "A red circle." and story.step_seed() == 3001
    grown = story.add(Sentence("a blue circle below it", "more")).add(
        region_sentence("a red circle", cell_at(30, 30, 0, 2))
    )
    assert grown.display() == "A red circle. A blue circle below it. At the top right, a red circle."
    assert grown.step_seed() == 3003 and story.texts == ["a red circle"]  # frozen: `add` made a new one
    assert grown.reset() == story
    with pytest.raises(ValueError, match="non-empty caption"):
        Narrative.start("  ")
    with pytest.raises(ValueError, match="kind must be one of"):
        Sentence("x", "poem")


# ---- the likelihood and the storyteller on a tiny random captioner ----

GPT2 = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 64, "vocab_size": 50257}
GPT2 |= {"bos_token_id": EOS_ID, "eos_token_id": EOS_ID}


@pytest.fixture(scope="module")
def tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiny():
    model = build_captioner(PrefixConfig(feature_dim=3, prefix_length=2, gpt2=GPT2), seed=0).eval()
    model.set_feature_stats(np.random.default_rng(0).uniform(0, 255, (50, 3)))
    return model


def test_log_likelihood_is_the_training_loss(tiny, tokenizer):
    """-log p(text | image) / tokens equals the model's own caption-only cross-entropy."""
    features = np.array([[10.0, 200.0, 30.0], [250.0, 5.0, 5.0]], dtype=np.float32)
    texts = ["a red circle", "two dogs run on the grass"]
    ll = likelihood.log_likelihoods(tiny, tokenizer, features, texts)
    for row, (feat, ids) in enumerate(zip(features, likelihood.tokenize(tokenizer, texts), strict=True)):
        tokens = torch.tensor([ids])
        with torch.no_grad():
            loss = tiny(torch.tensor(feat[None]), tokens, torch.ones_like(tokens))
        assert ll[row] == pytest.approx(-float(loss) * len(ids), rel=1e-4)
    matrix = likelihood.text_by_image(tiny, tokenizer, features, [[texts[0]], texts])
    one = likelihood.log_likelihoods(tiny, tokenizer, features[1:], texts[:1])[0]
    both = likelihood.log_likelihoods(tiny, tokenizer, features[[1, 1]], texts).sum()
    assert matrix[0, 1] == pytest.approx(one, rel=1e-5) and matrix[1, 1] == pytest.approx(both, rel=1e-5)


def test_recall_at_1_counts_strict_wins():
    scores = np.array([[5.0, 1.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 3.0]])
    assert likelihood.recall_at_1(scores) == pytest.approx(1 / 3)  # row 2 ties: a miss


class TinyCaptioner:
    """What the Storyteller needs of a Captioner: features are an image's mean colour."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.decoding = DecodeConfig(max_new_tokens=5)
        self.crops: list[np.ndarray] = []

    def encode(self, images):
        return np.stack([np.asarray(i, np.float32).reshape(-1, 3).mean(0) for i in images])

    def caption_images(self, images, decoding=None, detail="short"):
        self.crops += list(images)
        return [f"a picture of mean {int(i.mean())}" for i in images]


def test_storyteller_is_deterministic_and_never_repeats_four_grams(tiny, tokenizer):
    image = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    teller = Storyteller(TinyCaptioner(tiny, tokenizer), StoryConfig(samples=3))
    story = teller.narrate(image, sentences=3, seed=7, caption="a red circle")
    assert story.sentences[0].text == "a red circle" and len(story.sentences) >= 2
    assert distinct_ngrams(story.texts) and all(s.kind == "more" for s in story.sentences[1:])
    assert teller.narrate(image, sentences=3, seed=7, caption="a red circle") == story
    grown, picked = teller.more(image, story)
    assert picked is None or (grown.sentences[-1].text == picked.text and picked.text not in story.texts)


def test_look_here_captions_the_cell_with_its_place(tiny, tokenizer):
    captioner = TinyCaptioner(tiny, tokenizer)
    image = np.zeros((60, 90, 3), np.uint8)
    image[40:, 60:] = 255  # the bottom right cell is white
    teller = Storyteller(captioner, StoryConfig(grid=3, margin=0.0))
    story = teller.look_here(image, Narrative.start("a dark picture"), row=2, col=2)
    assert story.sentences[-1].display() == "At the bottom right, a picture of mean 255."
    assert captioner.crops[-1].shape == (20, 30, 3)
    with pytest.raises(ValueError, match="sentences must be at least 1"):
        teller.narrate(image, sentences=0)


@pytest.mark.parametrize("spec", ["greedy", "beam3"])
def test_decoding_blocks_stutter_and_repeated_four_grams_by_default(spec):
    """A head that ties every token would write token 0 forever; the default decoding never repeats a
    token right after itself nor any 4-gram (switched off, it stutters)."""
    from helpers.caption.decode import generate_ids

    model = build_captioner(PrefixConfig(feature_dim=3, prefix_length=2, gpt2=GPT2), seed=0).eval()
    with torch.no_grad():
        model.gpt.lm_head.weight.zero_()  # tied with the input embeddings: every logit is 0
    features = np.ones((1, 3), np.float32)
    [on] = generate_ids(model, features, DecodeConfig.parse(spec, max_new_tokens=12))
    [off] = generate_ids(
        model,
        features,
        DecodeConfig.parse(spec, max_new_tokens=12, no_repeat_ngram_size=0, block_stutter=False),
    )
    assert off[:8] == [0] * 8
    assert all(a != b for a, b in zip(on, on[1:], strict=False)), on
    grams = [tuple(on[i : i + 4]) for i in range(len(on) - 3)]
    assert len(grams) == len(set(grams)) and len(on) >= 8, on
