"""07-caption-demo through papermill on the smoke run, and the demo's captions checked against 06's."""

from __future__ import annotations

import pytest
from notebook_support import markdown_outputs
from PIL import Image

from helpers import artifacts
from helpers.demo import studies

pytestmark = pytest.mark.notebook


def test_smoke_demo_captions_the_examples(smoke_run):
    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06", "07")
    saved = artifacts.read_json(run_dir / "demo" / "captions.json")
    assert saved["config"]["preset"] == "smoke" and saved["config"]["decoding"] == "greedy"
    assert saved["captioned"] == saved["config"]["num_examples"] == 4 and saved["failed"] == 0
    best = artifacts.read_json(run_dir / "compare" / "best.json")
    labels = set(artifacts.read_json(run_dir / best["model_dir"] / "config.json")["label_names"])
    for r in saved["results"]:
        with Image.open(run_dir / "sources" / "flickr8k" / "Images" / r["name"]) as picture:
            assert r["error"] is None and r["size"] == [picture.height, picture.width]
        assert len(r["caption"].split()) >= 2
        probs = [t["prob"] for t in r["top5"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        assert {t["label"] for t in r["top5"]} <= labels
    assert (run_dir / "notebooks" / "07-caption-demo.ipynb").is_file()


def test_demo_captions_match_notebook_06(smoke_run):
    """File bytes -> decode -> captioner gives the test-split captions 06 made from its feature cache."""
    from helpers import demo

    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06", "07")
    headline = artifacts.read_json(run_dir / "captions" / "model" / "captioner.json")["decoding"]
    # The demo's "beam" is beam search of width 3 with 06's other settings: the same as 06's headline.
    settings = ("strategy", "num_beams", "length_penalty", "no_repeat_ngram_size")
    assert tuple(headline[k] for k in settings) == ("beam", 3, 1.0, 4), headline
    reference = artifacts.read_json(run_dir / "captions" / "test_captions.json")
    cfg = demo.DemoConfig.for_preset("smoke", str(run_dir))
    files = demo.read_files(demo.example_images(cfg))
    results = demo.process_upload(files, demo.load_models(run_dir), decoding="beam")
    assert [r.caption for r in results] == [reference[name]["model"] for name, _ in files]


def test_deploy_cells_in_a_dry_run_build_every_request_and_send_none(smoke_run):
    """The series runs 07 with deploy=True, deploy_dry_run=True and AWS pointed at a closed port (conftest's
    SERIES_EXTRA / NO_AWS): the real packaging and SDK path ran, and a request that escaped the dry run
    would have failed the notebook."""
    from notebook_support import displayed_text

    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06", "07")
    text = displayed_text(run_dir / "notebooks" / "07-caption-demo.ipynb")
    requests = [line.split()[2] for line in text.splitlines() if line.startswith("[dry run] ")]
    order = [
        "s3.PutObject",
        "sagemaker.CreateModel",
        "sagemaker.CreateEndpointConfig",
        "sagemaker.CreateEndpoint",
        "sagemaker-runtime.InvokeEndpoint",
        "sagemaker.DeleteEndpoint",
        "sagemaker.DeleteModel",
    ]
    positions = [requests.index(op) for op in order]
    assert positions == sorted(positions) and requests[-1] == "s3.DeleteObject", requests
    config = next(line for line in text.splitlines() if "sagemaker.CreateEndpointConfig" in line)
    assert '"InstanceType": "ml.g4dn.xlarge"' in config
    assert "'dry_run': True" in text and "answered for" in text


def test_narratives_single_out_their_pictures_and_the_maps_are_faithful(smoke_run):
    """07's studies on the smoke run: a 3-sentence narrative singles out its test picture at least as often
    as the short caption (and far above chance), its sentences share no 4-gram, and deleting the top cells
    of either map hurts more than deleting random cells."""
    from helpers.caption.narrative import distinct_ngrams

    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06", "07")
    saved = artifacts.read_json(run_dir / "demo" / "narratives.json")
    metrics = artifacts.read_json(run_dir / "demo" / "metrics.json")
    n = studies.STUDY_IMAGES["smoke"]
    assert metrics["config"]["study_images"] == saved["specificity"]["images"] == n
    spec = metrics["specificity"]
    recall = spec["recall_at_1"]
    assert recall["narrative"] >= recall["short"] and recall["narrative"] >= 3 * spec["chance"], recall
    assert spec["distinct_4grams"] == 1.0 and spec["mean_sentences"] > 2.5, spec
    for story in saved["specificity"]["narratives"]:
        assert distinct_ngrams([s.rstrip(".") for s in story]), story
    for kind in ("caption", "classifier"):
        deletion = metrics["deletion"][kind]
        assert deletion["images"] == n and deletion["top_drop"] > deletion["random_drop"], (kind, deletion)
    # the examples: three steps each (Tell me more twice, Look here), and both overlays drawn
    assert len(saved["examples"]) == 4
    for example in saved["examples"]:
        assert len(example["steps"]) == 3 and example["sentences"][-1].startswith("At the top left, ")
        assert example["sentences"][0].lower().startswith(example["caption"].lower()[:10])
    assert (run_dir / "figures" / "07-overlays.png").stat().st_size > 10_000
    text = markdown_outputs(run_dir / "notebooks" / "07-caption-demo.ipynb")
    assert f"**{recall['narrative']:.1%}** for the 3-sentence narrative" in text


def test_repetition_blocking_costs_no_score(smoke_run):
    """06 decodes its headline decoding with and without the default blocking (no repeated 4-gram, no
    word twice in a row): blocked captions are never degenerate and score as well."""
    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06")
    doc = artifacts.read_json(run_dir / "captions" / "no_repeat.json")
    blocked, unblocked = doc["blocked"], doc["unblocked"]
    assert blocked["config"]["no_repeat_ngram_size"] == 4 and unblocked["config"]["no_repeat_ngram_size"] == 0
    assert blocked["degenerate"] == 0, doc
    for metric in ("Bleu_4", "CIDEr"):
        assert blocked["scores"][metric] >= 0.98 * unblocked["scores"][metric], (metric, doc)


def test_every_backbones_class_map_is_faithful(classifier_run):
    """07 explains whichever classifier 05 picked, and which one wins changes from run to run: LayerCAM's
    top cells must hurt the top-1 probability more than random cells for all three backbones, on most
    pictures."""
    from helpers.classify import load_classifier
    from helpers.data import load_prepared

    run_dir = classifier_run.ensure("01", "02", "03", "04")
    pictures = list(load_prepared(run_dir / "data").test.images[: studies.STUDY_IMAGES["smoke"]])
    for name in ("vgg16", "resnet50", "mobilenet_v2"):
        deletion = studies.classifier_deletion(*load_classifier(run_dir / "models" / name), pictures)
        assert deletion["top_drop"] > 1.5 * deletion["random_drop"], (name, deletion)
        assert deletion["top_beats_random"] >= 0.6, (name, deletion)
