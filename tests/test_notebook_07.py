"""07-caption-demo through papermill on the smoke run, and the demo's captions checked against 06's."""

from __future__ import annotations

import pytest
from PIL import Image

from helpers import artifacts

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
    assert tuple(headline[k] for k in settings) == ("beam", 3, 1.0, 0), headline
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
