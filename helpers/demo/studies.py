"""Notebook 07's measurements of the card actions: does a narrative single out its image better than a
caption (specificity), and do the saliency maps point at what the models use (a deletion test)?

Specificity: every test image is ranked by the captioner's log-likelihood of a text (a narrative's
sentences scored one by one and added up); recall@1 is the share of texts whose own image ranks first.
Deletion: greying out the k top-ranked cells of a map should lower the score (the classifier's top-1
probability, the caption's log-likelihood) more than greying out k random cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers import saliency
from helpers.caption import likelihood
from helpers.caption.narrative import distinct_ngrams
from helpers.caption.storyteller import Storyteller


def specificity_study(
    teller: Storyteller, images: Sequence[np.ndarray], sentences: int = 3, seed: int = 0
) -> dict[str, Any]:
    """Recall@1 of the short caption, the detailed caption and a `sentences`-sentence narrative."""
    captioner = teller.captioner
    features = captioner.encode(list(images))
    short = captioner.caption_images(list(images), detail="short")
    detailed = captioner.caption_images(list(images), detail="detailed")
    stories = teller.narrate_features(features, sentences, seed, captions=short)
    texts = {"short": [[t] for t in short], "detailed": [[t] for t in detailed]}
    texts["narrative"] = [s.texts for s in stories]
    model, tok = captioner.model, captioner.tokenizer
    recall = {
        k: likelihood.recall_at_1(likelihood.text_by_image(model, tok, features, v)) for k, v in texts.items()
    }
    return {
        "images": len(images),
        "sentences": sentences,
        "recall_at_1": recall,
        "chance": 1 / len(images),
        "mean_sentences": float(np.mean([len(s.sentences) for s in stories])),
        "distinct_4grams": float(np.mean([distinct_ngrams(s.texts) for s in stories])),
        "narratives": [[x.display() for x in s.sentences] for s in stories],
    }


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    top = np.array([r["top"] for r in rows])
    rand = np.array([r["random"] for r in rows])
    return {
        "images": len(rows),
        "top_drop": float(top.mean()),
        "random_drop": float(rand.mean()),
        "top_beats_random": float(np.mean(top > rand)),
    }


def caption_deletion(
    captioner: Any, images: Sequence[np.ndarray], grid: int = 4, k: int = 4
) -> dict[str, float]:
    """Deletion test of occlusion maps: the caption's log-likelihood drop (nats), top cells vs random."""
    rows = []
    captions = captioner.caption_images(list(images))
    for image, caption in zip(images, captions, strict=True):
        score = saliency.caption_score(captioner, caption)
        drops = saliency.occlusion_map(score, image, grid)
        rows.append(saliency.deletion_test(score, image, drops, k))
    return {**_summary(rows), "grid": grid, "k": k, "score": "caption log-likelihood", "unit": " nats"}


def classifier_deletion(
    model: Any, config: dict[str, Any], images: Sequence[np.ndarray], grid: int = 4, k: int = 4
) -> dict[str, Any]:
    """Deletion test of LayerCAM: the top-1 probability's drop, top cells vs random."""
    rows, layers = [], set()
    for image in images:
        heat, top1, layer = saliency.classifier_cam(model, config, image)
        layers.add(layer)
        cells = saliency.cell_means(heat, image.shape[0], image.shape[1], grid)
        rows.append(saliency.deletion_test(saliency.classifier_score(model, config, top1), image, cells, k))
    return {
        **_summary(rows),
        "grid": grid,
        "k": k,
        "score": "top-1 probability",
        "unit": "",
        "layers": sorted(layers),
    }


def walkthrough(explainer: Any, image: np.ndarray, caption: str, seed: int = 0) -> dict[str, Any]:
    """A card's three steps on one picture (Tell me more twice, then Look here at the top left) and both
    maps: what notebook 07 shows for each example."""
    from helpers.caption.narrative import Narrative

    story = Narrative.start(caption, seed)
    steps = []
    for _ in range(2):
        story, _picked = explainer.more(image, story)
        steps.append(story.display())
    story = explainer.look_here(image, story, 0, 0)
    steps.append(story.display())
    cam, label = explainer.classifier_map(image)
    occlusion = explainer.caption_map(image, caption)
    return {
        "sentences": [s.display() for s in story.sentences],
        "steps": steps,
        "distinct_4grams": distinct_ngrams(story.texts),
        "top1": label,
        "layer_cam": cam,
        "occlusion": occlusion,
    }


def overlay_figure(names: Sequence[str], images: Sequence[np.ndarray], walks: Sequence[dict[str, Any]]):
    """One row per example: the picture, the classifier's LayerCAM, the caption's occlusion map."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row, (name, image, walk) in enumerate(zip(names, images, walks, strict=True)):
        panels = [
            (image, name),
            (saliency.overlay(image, walk["layer_cam"]), f"LayerCAM: {walk['top1']}"),
            (saliency.overlay(image, walk["occlusion"]), "occlusion: caption"),
        ]
        for ax, (picture, title) in zip(axes[row], panels, strict=True):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return fig


#: Test pictures in notebook 07's specificity and deletion studies per preset (`study_images = None`).
#: smoke: 12 keep both studies far from chance (a smoke run, 2026-11-29: narrative recall@1 0.92 against
#: chance 0.08; the top cells' deletion drop 3.7x the random cells' for the captioner, 5.5x for the
#: classifier, VGG16 with LayerCAM) at half the time of 24.
STUDY_IMAGES = {"smoke": 12, "sample": 24, "full": 24}


def study_count(preset: str, study_images: int | None) -> int:
    """The studies' picture count: `study_images`, or the preset's default when it is None."""
    count = STUDY_IMAGES[preset] if study_images is None else study_images
    if count < 0:
        raise ValueError(f"study_images must be 0 (skip the studies) or more, got {count}")
    return count


def study_pictures(paths: Any, count: int) -> dict[str, list]:
    """Test pictures for the studies: the test split of the caption dataset 06 trained on (as its
    metrics.json records it: Flickr8k, a Karpathy split or your own folder) under "flickr", and CIFAR-100's
    under run_dir/data (01's); a kind is left empty when that notebook has not run in this run folder."""
    from helpers.caption.config import recorded_dataset
    from helpers.data import decode_image, load_prepared

    out: dict[str, list] = {"flickr": [], "cifar": []}
    dataset = recorded_dataset(paths) if count else None
    if dataset is not None:
        out["flickr"] = [decode_image(dataset.image_path(n)) for n in dataset.splits["test"][:count]]
    if count and (paths.data / "manifest.json").is_file():
        out["cifar"] = list(load_prepared(paths.data).test.images[:count])
    return out


def write_narratives(
    folder: Any, config: dict[str, Any], results: Sequence[Any], walks: Sequence[dict], study: dict
) -> None:
    """narratives.json (the examples' narratives and the studies) and metrics.json (the studies' numbers)."""
    from pathlib import Path

    from helpers import artifacts
    from helpers.runtime import device_summary, versions

    examples = [
        {
            "name": r.name,
            "caption": r.caption,
            **{k: w[k] for k in ("sentences", "steps", "distinct_4grams", "top1")},
        }
        for r, w in zip(results, walks, strict=True)
    ]
    numbers = {"specificity": _without(study["specificity"], "narratives"), "deletion": study["deletion"]}
    stamp = {"config": config, "versions": versions(), "device": device_summary()}
    artifacts.write_json(Path(folder) / "narratives.json", {**stamp, "examples": examples, **study})
    artifacts.write_json(Path(folder) / "metrics.json", {**stamp, **numbers})


def _without(doc: dict | None, key: str) -> dict | None:
    return None if doc is None else {k: v for k, v in doc.items() if k != key}


def conclusion(study: dict[str, Any]) -> str:
    """The studies in a few generated sentences."""
    spec, parts = study["specificity"], []
    if spec is None:
        parts.append("The studies did not run (`study_images = 0`, or no test pictures in this run folder).")
    else:
        r = spec["recall_at_1"]
        verdict = "at least as often as" if r["narrative"] >= r["short"] else "less often than"
        parts.append(
            f"Over {spec['images']} test pictures (chance {spec['chance']:.1%}), recall@1 is "
            f"**{r['short']:.1%}** for the short caption, **{r['detailed']:.1%}** for the detailed one and "
            f"**{r['narrative']:.1%}** for the {spec['sentences']}-sentence narrative: the narrative singles "
            f"out its picture {verdict} the caption. {spec['distinct_4grams']:.0%} of the narratives repeat "
            f"no 4 words of one sentence in another (mean {spec['mean_sentences']:.1f} sentences)."
        )
    for kind, d in study["deletion"].items():
        better = "more" if d["top_drop"] > d["random_drop"] else "no more"
        parts.append(
            f"Deleting the top {d['k']} of {d['grid'] ** 2} cells of the {kind}'s map lowers the "
            f"{d['score']} by {d['top_drop']:.3g}{d['unit']} on average, random cells by "
            f"{d['random_drop']:.3g}{d['unit']}: "
            f"the map points at what the {kind} uses {better} than chance ({d['top_beats_random']:.0%} of "
            f"{d['images']} pictures)."
        )
    return "\n\n".join(parts)
