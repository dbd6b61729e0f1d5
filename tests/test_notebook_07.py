"""07-caption-demo through papermill on the smoke run, and the demo's captions checked against 06's."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from helpers import io


def test_smoke_demo_captions_the_examples(smoke_run):
    run_dir = smoke_run.ensure("01", "02", "03", "04", "05", "06", "07")
    saved = io.read_json(run_dir / "demo" / "captions.json")
    assert saved["config"]["preset"] == "smoke" and saved["config"]["decoding"] == "greedy"
    assert saved["captioned"] == saved["config"]["num_examples"] == 4 and saved["failed"] == 0
    best = io.read_json(run_dir / "compare" / "best.json")
    labels = set(io.read_json(Path(best["model_dir"]) / "config.json")["label_names"])
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
    headline = io.read_json(run_dir / "captions" / "model" / "captioner.json")["decoding"]
    # The demo's "beam" is beam search of width 3 with 06's other settings: the same as 06's headline.
    settings = ("strategy", "num_beams", "length_penalty", "no_repeat_ngram_size")
    assert tuple(headline[k] for k in settings) == ("beam", 3, 1.0, 0), headline
    reference = io.read_json(run_dir / "captions" / "test_captions.json")
    cfg = demo.DemoConfig.for_preset("smoke", str(run_dir))
    files = demo.read_files(demo.example_images(cfg))
    results = demo.process_upload(files, demo.load_models(run_dir), decoding="beam")
    assert [r.caption for r in results] == [reference[name]["model"] for name, _ in files]
