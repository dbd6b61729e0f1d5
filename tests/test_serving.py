"""The endpoint's request handler, in process: real image bytes, JSON with base64, and every bad input."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

import demo_inputs as di
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

from helpers import serving
from helpers.caption.narrative import distinct_ngrams
from helpers.choices import MODEL_MAX_SIDE
from helpers.serving import Limits, handle


class FakePredictor:
    """Describes what it was given, so a test can tell the decoded pixels reached the model."""

    def __init__(self, with_classifier: bool = True):
        self.with_classifier = with_classifier
        self.calls: list[tuple[str, str, list[tuple[int, ...]]]] = []

    def caption(self, images: list[np.ndarray], decoding: str, detail: str) -> list[str]:
        self.calls.append((decoding, detail, [im.shape for im in images]))
        return [f"{decoding} {detail} {dominant(im)} {im.shape[0]}x{im.shape[1]}" for im in images]

    def narrate(self, images: list[np.ndarray], captions: list[str], sentences: int) -> list[list[str]]:
        self.calls.append(("narrate", str(sentences), [im.shape for im in images]))
        return [
            [c, *(f"more {i} about {dominant(im)}" for i in range(1, sentences))]
            for im, c in zip(images, captions, strict=True)
        ]

    def top_k(self, images: list[np.ndarray], k: int) -> list[list[tuple[str, float]]] | None:
        if not self.with_classifier:
            return None
        return [[(dominant(im), 0.9)] + [(f"other{i}", 0.1 / k) for i in range(k - 1)] for im in images]


def dominant(image: np.ndarray) -> str:
    """The colour channel with the highest mean: 'red', 'green' or 'blue'."""
    return ("red", "green", "blue")[int(image.reshape(-1, 3).mean(0).argmax())]


def solid(color: tuple[int, int, int], fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    return di.encode(Image.new("RGB", size, color), fmt)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok(body, content_type, predictor=None, limits: Limits | None = None) -> dict:
    status, doc = handle(body, content_type, predictor or FakePredictor(), limits or Limits())
    assert status == 200, doc
    return doc


def error(body, content_type, limits: Limits | None = None) -> tuple[int, str, str]:
    predictor = FakePredictor()
    status, doc = handle(body, content_type, predictor, limits or Limits())
    assert set(doc) == {"error"}, doc
    assert doc["error"]["status"] == status
    assert predictor.calls == [], "the model must not run on a rejected request"
    json.dumps(doc)  # the error document is plain JSON
    return status, doc["error"]["code"], doc["error"]["message"]


def test_real_photo_jpeg_bytes():
    data = cbook.get_sample_data("grace_hopper.jpg").read()
    doc = ok(data, "image/jpeg")
    (pred,) = doc["predictions"]
    assert pred["caption"].startswith("beam short") and pred["caption"].endswith("600x512")
    assert len(pred["top_k"]) == 5 and pred["top_k"][0]["probability"] == 0.9
    assert "alternatives" not in pred


@pytest.mark.parametrize(("color", "name"), [((230, 20, 20), "red"), ((20, 20, 230), "blue")])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_png_and_jpeg_reach_the_model_decoded(color, name, fmt):
    for content_type in ("image/png", "application/x-image", "application/octet-stream"):
        doc = ok(solid(color, fmt), content_type)
        assert doc["predictions"][0]["caption"] == f"beam short {name} 30x40"
        assert doc["predictions"][0]["top_k"][0]["label"] == name


def test_exif_orientation_is_applied_before_the_model():
    doc = ok(di.exif_rotated_jpeg(), "image/jpeg; charset=binary")
    assert doc["predictions"][0]["caption"].endswith("64x32")  # upright: taller than wide


def test_json_batch_with_options_and_alternatives():
    predictor = FakePredictor()
    body = json.dumps(
        {
            "images": [
                b64(solid((230, 20, 20), "PNG")),
                "data:image/jpeg;base64," + b64(solid((20, 20, 230), "JPEG")),
            ],
            "decoding": "greedy",
            "alternatives": True,
            "top_k": 3,
        }
    )
    doc = ok(body, "application/json", predictor)
    assert doc["decoding"] == "greedy"
    red, blue = doc["predictions"]
    assert red["caption"] == "greedy short red 30x40" and blue["caption"] == "greedy short blue 30x40"
    assert [(a["decoding"], a["detail"]) for a in red["alternatives"]] == [
        ("greedy", "detailed"),
        ("beam", "short"),
        ("beam", "detailed"),
    ]
    assert blue["alternatives"][-1]["caption"] == "beam detailed blue 30x40"
    assert [len(p["top_k"]) for p in (red, blue)] == [3, 3]
    assert len(predictor.calls) == 4  # one call per (decoding, detail), batched over both images


def test_json_as_text_with_wrapped_base64_and_no_classifier():
    wrapped = base64.encodebytes(solid((20, 220, 20), "PNG")).decode()  # 76-column lines, like `base64`
    doc = ok(json.dumps({"image": wrapped, "top_k": 0}), "application/json", FakePredictor(False))
    assert doc["predictions"] == [{"caption": "beam short green 30x40"}]
    doc = ok(json.dumps({"image": wrapped}), "application/json", FakePredictor(with_classifier=False))
    assert "top_k" not in doc["predictions"][0]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_formats_the_demo_accepts_are_captioned(fmt):
    """The endpoint decodes with the demo's decoder: every format an upload may have, raw or in JSON."""
    body = di.encode(di.two_tone(), fmt)
    doc = ok(body, f"image/{fmt.lower()}")
    assert doc["predictions"][0]["caption"].endswith("64x32")
    doc = ok(json.dumps({"image": b64(body)}), "application/json")
    assert doc["predictions"][0]["caption"].endswith("64x32")
    animated = ok(di.animated_gif(), "image/gif")  # first frame, as in the demo
    assert len(animated["predictions"]) == 1


def test_large_photo_is_shrunk_before_the_model():
    doc = ok(solid((230, 20, 20), "PNG", size=(3000, 1500)), "image/png")
    assert doc["predictions"][0]["caption"].endswith(f"{MODEL_MAX_SIDE // 2}x{MODEL_MAX_SIDE}")


BAD_BYTES = {
    "empty": (b"", "image/jpeg", 400, "empty_body"),
    "truncated jpeg": (di.truncated_jpeg(), "image/jpeg", 400, "invalid_image"),
    "html named .jpg": (di.HTML, "image/jpeg", 400, "invalid_image"),
    "svg": (di.SVG, "image/png", 400, "invalid_image"),
    "pdf": (di.pdf_document(), "application/octet-stream", 400, "invalid_image"),
    "plain text": (di.TEXT, "image/jpeg", 400, "invalid_image"),
    "pixel bomb": (di.png_bomb(), "image/png", 400, "invalid_image"),
    "wrong content type": (solid((1, 2, 3), "PNG"), "text/plain", 415, "unsupported_content_type"),
    "no content type": (solid((1, 2, 3), "PNG"), None, 415, "unsupported_content_type"),
    "image sent as text": ("not bytes", "image/png", 400, "invalid_image"),
}


@pytest.mark.parametrize("case", list(BAD_BYTES))
def test_bad_raw_bodies_get_a_clear_4xx(case):
    body, content_type, want_status, want_code = BAD_BYTES[case]
    status, code, message = error(body, content_type)
    assert (status, code) == (want_status, want_code), message
    assert len(message) > 10 and "Traceback" not in message


def test_messages_say_what_is_wrong():
    assert "HTML" in error(di.HTML, "image/jpeg")[2]
    assert "SVG" in error(di.SVG, "image/png")[2]
    assert "PDF" in error(di.pdf_document(), "image/png")[2]
    assert "truncated" in error(di.truncated_jpeg(), "image/jpeg")[2]
    assert re.search("megapixel|decompression bomb", error(di.png_bomb(), "image/png")[2])
    too_big = error(solid((1, 2, 3), "PNG"), "image/png", Limits(max_pixels=1000))  # 40x30 = 1200 pixels
    assert too_big[:2] == (400, "invalid_image") and "megapixel limit" in too_big[2]
    assert "image/jpeg" in error(b"x", "text/html")[2]  # lists what is accepted


def test_oversized_body_is_413_before_decoding():
    status, code, message = error(di.noise_png(300), "image/png", Limits(max_request_bytes=100_000))
    assert (status, code) == (413, "too_large") and "0.1 MB" in message


BAD_JSON = {
    "not json": ("{'image': 1", 400, "invalid_json"),
    "not an object": ("[1, 2]", 400, "invalid_json"),
    "not utf-8": (b'{"image": "\xff"}', 400, "invalid_json"),
    "bad base64": ('{"image": "abc$%^"}', 400, "invalid_base64"),
    "base64 of html": (json.dumps({"image": b64(di.HTML)}), 400, "invalid_image"),
    "base64 of nothing": ('{"image": ""}', 400, "empty_image"),
    "image not a string": ('{"image": 12}', 400, "invalid_field"),
    "no image": ('{"decoding": "beam"}', 400, "missing_image"),
    "both image and images": (json.dumps({"image": "a", "images": ["a"]}), 400, "missing_image"),
    "empty list": ('{"images": []}', 400, "missing_image"),
    "unknown field": (json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "beams": 3}), 400, "unknown_field"),
    "bad decoding": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "decoding": "nucleus"}),
        400,
        "invalid_field",
    ),
    "bad top_k": (json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "top_k": 50}), 400, "invalid_field"),
    "bool top_k": (json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "top_k": True}), 400, "invalid_field"),
    "bad alternatives": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "alternatives": "yes"}),
        400,
        "invalid_field",
    ),
    "sentences zero": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "sentences": 0}),
        400,
        "invalid_field",
    ),
    "sentences six": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "sentences": 6}),
        400,
        "invalid_field",
    ),
    "sentences text": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "sentences": "3"}),
        400,
        "invalid_field",
    ),
    "sentences bool": (
        json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "sentences": True}),
        400,
        "invalid_field",
    ),
    "too many images": (json.dumps({"images": [b64(solid((1, 2, 3), "PNG"))] * 9}), 413, "too_many_images"),
    "narrative too long for one request": (
        json.dumps({"images": [b64(solid((1, 2, 3), "PNG"))] * 2, "sentences": 4}),  # 6 past the first
        413,
        "too_much_work",
    ),
}


def test_the_longest_narrative_request_allowed_is_answered():
    """Limits.max_extra_sentences: one image with 5 sentences, or two with 3, pass; the message says how."""
    limits = Limits()
    img = b64(solid((200, 10, 10), "PNG"))
    for images, sentences in ((1, limits.max_sentences), (2, 3), (4, 2)):
        doc = {"images": [img] * images, "sentences": sentences}
        status, answer = handle(json.dumps(doc), "application/json", FakePredictor())
        assert status == 200 and len(answer["predictions"]) == images, answer
    status, code, message = error(json.dumps({"images": [img] * 8, "sentences": 5}), "application/json")
    assert (status, code) == (413, "too_much_work") and "separate requests" in message


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_json_requests_get_a_clear_4xx(case):
    body, want_status, want_code = BAD_JSON[case]
    status, code, message = error(body, "application/json")
    assert (status, code) == (want_status, want_code), message


def test_sentences_returns_a_narrative_per_image():
    predictor = FakePredictor()
    pictures = [b64(solid((230, 20, 20), "PNG")), b64(solid((20, 20, 230), "JPEG"))]
    doc = ok(
        json.dumps({"images": pictures, "sentences": 3, "decoding": "greedy"}), "application/json", predictor
    )
    red, blue = doc["predictions"]
    assert red["narrative"] == [red["caption"], "more 1 about red", "more 2 about red"]
    assert blue["narrative"][0] == blue["caption"] and len(blue["narrative"]) == 3
    assert predictor.calls[-1] == ("narrate", "3", [(30, 40, 3), (30, 40, 3)])
    single = ok(json.dumps({"image": pictures[0], "sentences": 1}), "application/json")
    assert "narrative" not in single["predictions"][0]  # one sentence is the caption itself


def test_sentences_out_of_range_says_the_range():
    body = json.dumps({"image": b64(solid((1, 2, 3), "PNG")), "sentences": 9})
    status, code, message = error(body, "application/json")
    assert (status, code, message) == (400, "invalid_field", "sentences must be an integer 1..5, got 9")


def test_second_bad_image_is_named():
    body = json.dumps({"images": [b64(solid((1, 2, 3), "PNG")), b64(di.truncated_jpeg())]})
    assert error(body, "application/json")[2].startswith("images[1]:")


def test_transform_fn_sets_the_status_and_answers_json():
    """The packaged entry point: bad input is a 4xx on the toolkit's context and a JSON body, no traceback."""

    class Context:  # the method the toolkit's context (TorchServe's) offers
        status = None

        def set_response_status(self, code, phrase, idx=0):
            self.status = (code, phrase)

    ok = Context()
    text, content_type = serving.transform_fn(
        FakePredictor(), solid((230, 20, 20), "JPEG"), "image/jpeg", None, ok
    )
    assert ok.status is None and content_type == "application/json"
    assert json.loads(text)["predictions"][0]["caption"] == "beam short red 30x40"
    bad = Context()
    text, content_type = serving.transform_fn(FakePredictor(), di.HTML, "image/jpeg", "*/*", bad)
    assert bad.status == (400, "Bad Request") and content_type == "application/json"
    assert json.loads(text)["error"]["code"] == "invalid_image"


def requirement_closure(roots: list[str]) -> set[str]:
    """Canonical names of `roots` and of everything they require (extras left out), as installed here."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name as canonical

    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:  # a platform-specific dependency not installed here
            continue
        seen.add(name)
        todo += [
            Requirement(r).name
            for r in requires
            if Requirement(r).marker is None or Requirement(r).marker.evaluate({"extra": ""})
        ]
    return seen


def endpoint_site_packages(dest: Path) -> Path:
    """A site-packages holding only what the endpoint installs (code/requirements.txt + torch), as links."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name as canonical

    from helpers.aws.package import SERVING_PACKAGES

    dists = requirement_closure([*SERVING_PACKAGES, "torch"])
    modules = {
        m for m, names in packages_distributions().items() if any(canonical(d) in dists for d in names)
    }
    site = Path(np.__file__).parents[1]
    dest.mkdir()
    for entry in site.iterdir():
        if entry.name.endswith(".dist-info"):
            keep = canonical(entry.name.split("-")[0]) in dists
        else:
            keep = entry.suffix != ".pth" and entry.name.split(".")[0] in modules
        if keep:
            (dest / entry.name).symlink_to(entry)
    return dest


def test_the_endpoint_code_imports_with_only_the_endpoints_packages(tmp_path):
    """helpers.serving and the model code it loads need nothing beyond code/requirements.txt and torch."""
    import subprocess

    from helpers.config import project_root

    site = endpoint_site_packages(tmp_path / "site-packages")
    assert not (site / "pandas").exists() and (site / "transformers").exists()
    assert not (site / "tensorflow").exists()  # the classifier runs on Keras' torch backend
    env = {**os.environ, "PYTHONPATH": f"{site}:{project_root()}", "PYTHONNOUSERSITE": "1"}
    env["KERAS_BACKEND"] = "torch"
    probe = "import helpers.serving, helpers.serving_classifier, helpers.caption.captioner, keras; "
    probe += "print(helpers.__file__)"
    result = subprocess.run([sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == str(project_root() / "helpers/__init__.py")


def test_a_keras_encoder_gives_the_same_features_on_the_endpoint_packages(tmp_path):
    """A captioner with a Keras image encoder (06's resnet50 option, or a classifier's features) needs
    TensorFlow nowhere on the endpoint: on Keras' torch backend, without TensorFlow installed, it gives the
    features TensorFlow gives here (images of different sizes, so the resize is exercised)."""
    import dataclasses
    import subprocess

    from helpers.caption.features import EncoderConfig, ImageEncoder
    from helpers.config import project_root

    cfg = EncoderConfig(backbone="vgg16", weights=None, input_size=32, seed=0)
    encoder = ImageEncoder.build(cfg)
    encoder.save(tmp_path / "encoder")
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((32, 32, 3), (40, 56, 3), (90, 64, 3))
    ]
    np.savez(tmp_path / "images.npz", *images)
    want = encoder.encode(images)

    site = endpoint_site_packages(tmp_path / "site-packages")
    env = {**os.environ, "PYTHONPATH": f"{site}:{project_root()}", "PYTHONNOUSERSITE": "1"}
    env["KERAS_BACKEND"] = "torch"
    probe = (
        "import json, sys, numpy as np\n"
        "from helpers.caption.features import EncoderConfig, KerasEncoder\n"
        f"cfg = EncoderConfig(**json.loads({json.dumps(json.dumps(dataclasses.asdict(cfg)))}))\n"
        f"enc = KerasEncoder.load(cfg, {str(tmp_path / 'encoder')!r})\n"
        f"imgs = np.load({str(tmp_path / 'images.npz')!r})\n"
        "out = enc.encode([imgs[k] for k in sorted(imgs.files, key=lambda k: int(k.split('_')[1]))])\n"
        f"np.save({str(tmp_path / 'torch.npy')!r}, out)\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(tmp_path / "torch.npy")
    assert got.shape == want.shape == (3, encoder.feature_dim)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


@pytest.mark.notebook
def test_real_smoke_models_behind_the_handler(smoke_run, tmp_path):
    """The packaged smoke-run captioner and classifier, loaded by model_fn, answer a real photo."""
    import tarfile

    from helpers.aws import package_model

    run_dir = smoke_run.ensure("01", "02", "05", "06")
    with tarfile.open(package_model(run_dir, tmp_path / "model.tar.gz")) as tar:
        tar.extractall(tmp_path / "model", filter="data")
    predictor = serving.model_fn(str(tmp_path / "model"))
    labels = set(predictor.label_names)

    status, doc = handle(cbook.get_sample_data("grace_hopper.jpg").read(), "image/jpeg", predictor)
    assert status == 200, doc
    (pred,) = doc["predictions"]
    assert isinstance(pred["caption"], str) and pred["caption"].strip()
    assert len(pred["top_k"]) == 5 and {t["label"] for t in pred["top_k"]} <= labels
    probs = [t["probability"] for t in pred["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001

    body = json.dumps(
        {"image": b64(di.encode(di.two_tone(), "PNG")), "alternatives": True, "decoding": "greedy"}
    )
    status, doc = handle(body, "application/json", predictor)
    assert status == 200 and len(doc["predictions"][0]["alternatives"]) == 3

    body = json.dumps({"image": b64(cbook.get_sample_data("grace_hopper.jpg").read()), "sentences": 3})
    status, doc = handle(body, "application/json", predictor)
    (pred,) = doc["predictions"]
    story = pred["narrative"]
    assert status == 200 and 2 <= len(story) <= 3 and story[0].rstrip(".").lower() == pred["caption"].lower()
    assert distinct_ngrams(story), story  # the sentences never repeat 4 words in a row of one another
    assert handle(di.HTML, "image/jpeg", predictor)[0] == 400
