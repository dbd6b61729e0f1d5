"""The demo's callbacks and widget over every bad input a person might upload, with recording stand-in models.

The stand-ins record exactly which pixels reached the models, so the tests can check that a file was decoded
the right way up, in the right colours, and that a refused file never reached a model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import demo_inputs as gen
import numpy as np
import pytest

from helpers import artifacts
from helpers.config import RunPaths
from helpers.demo import (
    CaptionApp,
    DemoConfig,
    DemoModels,
    card_html,
    classifier_dir,
    example_images,
    process_upload,
    read_files,
    write_captions,
)
from helpers.demo.models import bundled_photos

PHOTO = bundled_photos()[0]  # matplotlib's grace_hopper.jpg: a real 512x600 JPEG photo
READ = "Could not read this file: "


class RecordingCaptioner:
    """Captions an image by its dominant colour and records every image and setting it was given."""

    def __init__(self, fail_on_blue: bool = False):
        self.images: list[np.ndarray] = []
        self.settings: list[tuple[str, str]] = []
        self.fail_on_blue = fail_on_blue

    def caption_images(self, images: list[np.ndarray], decoding: str, detail: str) -> list[str]:
        out = []
        for image in images:
            red, _, blue = image.reshape(-1, 3).mean(axis=0)
            if self.fail_on_blue and blue > red:
                raise RuntimeError("out of memory")
            self.images.append(image)
            self.settings.append((decoding, detail))
            out.append(f"a {'red' if red >= blue else 'blue'} picture ({decoding}, {detail})")
        return out


def classify(images: np.ndarray) -> list[list[tuple[str, float]]]:
    """Top-5 whose best label is the dominant colour channel."""
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
    names = ("red", "green", "blue")
    out = []
    for image in images:
        means = image.reshape(-1, 3).mean(axis=0)
        order = np.argsort(-means)
        out.append([(names[i], 0.3 - 0.1 * k) for k, i in enumerate(order)] + [("x", 0.02), ("y", 0.01)])
    return out


@pytest.fixture
def captioner() -> RecordingCaptioner:
    return RecordingCaptioner()


@pytest.fixture
def models(captioner) -> DemoModels:
    return DemoModels(
        captioner=captioner, classify=classify, captioner_dir="stand-in", classifier_name="colours"
    )


# Files that must be refused: (file name, bytes, the message on its card, or its start where PIL adds detail).
BAD = [
    ("empty.jpg", b"", READ + "file is empty"),
    (
        "truncated.jpg",
        gen.truncated_jpeg(),
        READ + "JPEG data is truncated or corrupt (image file is truncated",
    ),
    ("notes.jpg", gen.TEXT, READ + "not an image (looks like text)"),
    ("page.jpg", gen.HTML, READ + "not an image (looks like HTML)"),
    (
        "drawing.svg",
        gen.SVG,
        READ + "not an image (looks like an SVG drawing (vector images are not supported",
    ),
    ("paper.pdf", gen.pdf_document(), READ + "not an image (looks like a PDF document)"),
    (
        "bomb.png",
        gen.png_bomb(100_000),
        READ + "image is 10.0 gigapixels, over the 40 megapixel limit",
    ),
    (
        "huge.png",
        gen.png_bomb(7_000),
        READ + "image is 7000x7000 = 49.0 megapixels, over the 40 megapixel limit",
    ),
    ("big.png", gen.noise_png(300), READ + "file is 0.27 MB, over the 0.2 MB upload limit"),
]
MAX_BYTES = 200_000  # the stated limit in these tests; every other file is far below it


@pytest.mark.parametrize(("name", "data", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_file_gets_a_clear_message(models, captioner, name, data, message):
    [result] = process_upload([(name, data)], models, max_bytes=MAX_BYTES)
    assert result.name == name and result.error is not None
    assert result.error.startswith(message), result.error
    assert result.caption is None and result.top5 == [] and result.thumbnail is None
    assert captioner.images == []  # never reached a model


def test_size_limit_is_checked_before_decoding(models):
    """A valid image over the limit is refused; the same image under a larger limit is captioned."""
    data = gen.noise_png(300)
    [over] = process_upload([("a.png", data)], models, max_bytes=len(data) - 1)
    [under] = process_upload([("a.png", data)], models, max_bytes=len(data))
    assert (
        over.error
        == READ + f"file is {len(data) / 1e6:.2f} MB, over the {(len(data) - 1) / 1e6:g} MB upload limit"
    )
    assert under.ok and under.size == (300, 300)


def only_image(captioner: RecordingCaptioner, models: DemoModels, name: str, data: bytes) -> np.ndarray:
    """Process one file that must succeed and return the pixels the captioner saw."""
    [result] = process_upload([(name, data)], models)
    assert result.ok, result.error
    assert result.caption and len(result.top5) == 5 and result.seconds > 0
    assert result.thumbnail.startswith(b"\x89PNG")
    assert len(captioner.images) == 1
    image = captioner.images[0]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert result.size == image.shape[:2]
    return image


def test_exif_rotated_jpeg_reaches_the_model_upright(models, captioner):
    image = only_image(captioner, models, "phone.jpg", gen.exif_rotated_jpeg())
    assert image.shape == (64, 32, 3)  # stored 64 wide x 32 tall, shown 32 wide x 64 tall
    np.testing.assert_allclose(image[:20].reshape(-1, 3).mean(0), gen.RED, atol=12)  # red on top
    np.testing.assert_allclose(image[-20:].reshape(-1, 3).mean(0), gen.BLUE, atol=12)


def test_16bit_png_is_scaled_not_clipped(models, captioner):
    image = only_image(captioner, models, "scan.png", gen.png_16bit())
    assert image.min() == 0 and image.max() == 255
    assert 110 < image.mean() < 145  # a 0..65535 ramp maps to a 0..255 ramp, mean ~127


def test_cmyk_jpeg_becomes_rgb(models, captioner):
    image = only_image(captioner, models, "print.jpg", gen.cmyk_jpeg())
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), (0, 255, 255), atol=6)  # pure cyan


def test_rgba_png_is_composited_on_white(models, captioner):
    image = only_image(captioner, models, "logo.png", gen.rgba_png())
    np.testing.assert_allclose(image[:, :20].reshape(-1, 3).mean(0), gen.RED, atol=2)
    assert (image[:, 20:] == 255).all()  # the transparent half shows as white


def test_palette_gif(models, captioner):
    image = only_image(captioner, models, "two.gif", gen.palette_gif())
    np.testing.assert_allclose(image[0, 0], gen.RED, atol=12)
    np.testing.assert_allclose(image[-1, -1], gen.BLUE, atol=12)


def test_animated_gif_uses_the_first_frame(models, captioner):
    image = only_image(captioner, models, "anim.gif", gen.animated_gif())
    red, _, blue = image.reshape(-1, 3).mean(0)
    assert red > 150 and blue < 80  # frame 1 is red, frame 2 blue


def test_one_pixel_image(models, captioner):
    image = only_image(captioner, models, "dot.png", gen.one_pixel_png())
    assert image.shape == (1, 1, 3)


def test_real_photo_keeps_its_size_and_gets_five_labels(models, captioner):
    image = only_image(captioner, models, PHOTO.name, PHOTO.read_bytes())
    assert image.shape == (600, 512, 3)


GOOD = [
    ("photo.jpg", PHOTO.read_bytes()),
    ("phone.jpg", gen.exif_rotated_jpeg()),
    ("scan.png", gen.png_16bit()),
    ("print.jpg", gen.cmyk_jpeg()),
    ("logo.png", gen.rgba_png()),
    ("two.gif", gen.palette_gif()),
    ("anim.gif", gen.animated_gif()),
    ("dot.png", gen.one_pixel_png()),
]


def test_one_upload_with_every_bad_file_still_captions_the_good_ones(models, captioner):
    bad = [b[:2] for b in BAD]
    files = [bad[0], *[f for pair in zip(GOOD, bad[1:], strict=True) for f in pair]]  # alternating
    results = process_upload(files, models, decoding="beam", detail="detailed", max_bytes=MAX_BYTES)
    assert [r.name for r in results] == [name for name, _ in files]  # one result per file, in order
    good = {name for name, _ in GOOD}
    for r in results:
        assert r.ok == (r.name in good), (r.name, r.error)
        if r.ok:
            assert r.caption.endswith("(beam, detailed)") and r.top5[0][1] == pytest.approx(0.3)
    assert len(captioner.images) == len(GOOD)
    assert set(captioner.settings) == {("beam", "detailed")}


def test_a_failing_model_becomes_a_message_and_the_rest_go_on(captioner):
    failing = RecordingCaptioner(fail_on_blue=True)
    models = DemoModels(captioner=failing, classify=classify)
    blue = gen.encode(gen.Image.new("RGB", (8, 8), gen.BLUE), "PNG")
    results = process_upload(
        [("a.png", gen.one_pixel_png()), ("b.png", blue), ("c.png", gen.rgba_png())], models
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error == "The models failed on this image: RuntimeError: out of memory"
    assert results[1].thumbnail is not None  # the picture itself was fine and is still shown


def test_unknown_settings_are_refused(models):
    with pytest.raises(ValueError, match="unknown decoding 'nucleus'; choose one of greedy, beam"):
        process_upload([], models, decoding="nucleus")
    with pytest.raises(ValueError, match="unknown detail 'long'; choose one of short, detailed"):
        process_upload([], models, detail="long")


def test_card_escapes_the_file_name_and_shows_the_error(models):
    name = '<img src=x onerror="alert(1)">.jpg'
    [result] = process_upload([(name, gen.HTML)], models)
    html = card_html(result)
    assert "demo-card-error" in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.jpg" in html
    assert "not an image (looks like HTML)" in html


def test_card_of_a_good_image_has_thumbnail_caption_and_bars(models):
    [result] = process_upload([("dot.png", gen.one_pixel_png())], models)
    html = card_html(result)
    assert "demo-card-ok" in html and "data:image/png;base64," in html
    assert "a red picture (greedy, short)" in html
    assert html.count("<tr>") == 5 and "30.0%" in html and "1x1 px" in html


def as_upload(files: list[tuple[str, bytes]]) -> tuple[dict, ...]:
    """What ipywidgets 8 FileUpload.value holds after a browser upload."""
    now = datetime.now(UTC)
    return tuple(
        {"name": n, "type": "image/jpeg", "size": len(d), "content": memoryview(d), "last_modified": now}
        for n, d in files
    )


def test_widget_survives_bad_uploads_and_keeps_working(models, captioner):
    app = CaptionApp(models, max_upload_mb=0.2)
    assert "up to <b>0.2 MB</b> each" in app.widget.children[0].value  # the stated limit
    app.upload.value = as_upload([("photo.jpg", PHOTO.read_bytes())] + [b[:2] for b in BAD])
    cards = [view.html.value for view in app.views]
    assert len(cards) == 1 + len(BAD)
    assert "demo-card-ok" in cards[0] and all("demo-card-error" in c for c in cards[1:])
    assert (
        app.status.value
        == f"1 image captioned, {len(BAD)} not captioned, in " + app.status.value.split(" in ")[1]
    )
    assert app.upload.value == () and not app.upload.disabled  # cleared, so the same file can be chosen again
    assert len(app.log.outputs) == 0  # no traceback was shown

    app.upload.value = as_upload([("again.jpg", PHOTO.read_bytes())])
    assert len(app.cards.children) == 1 and "demo-card-ok" in app.views[0].html.value
    assert app.status.value.startswith("1 image captioned, in ")

    app.decoding.value = "beam"  # a changed setting re-captions the last upload
    app.detail.value = "detailed"
    assert captioner.settings[-2:] == [("beam", "short"), ("beam", "detailed")]
    assert "(beam, detailed)" in app.views[0].html.value
    assert len(app.log.outputs) == 0


def test_config_checks_its_knobs(tmp_path):
    with pytest.raises(ValueError, match=r"max_upload_mb must be in \(0, 100\], got 500"):
        DemoConfig.for_preset("smoke", str(tmp_path), max_upload_mb=500)
    with pytest.raises(ValueError, match="unknown decoding 'top-k'"):
        DemoConfig.for_preset("smoke", str(tmp_path), decoding="top-k")
    cfg = DemoConfig.for_preset("sample", str(tmp_path), images=[PHOTO])
    assert cfg.to_json()["images"] == [str(PHOTO)] and cfg.paths.root == tmp_path.resolve()


def test_classifier_folder_from_best_json_or_parameter(tmp_path):
    paths = RunPaths.for_run("smoke", tmp_path)
    with pytest.raises(FileNotFoundError, match="run 05-compare first or name a model such as"):
        classifier_dir(paths)
    (paths.model("mobilenet")).mkdir(parents=True)
    (paths.model("mobilenet") / "model.keras").write_bytes(b"")
    artifacts.write_json(paths.compare / "best.json", {"name": "mobilenet", "model_dir": "models/mobilenet"})
    assert classifier_dir(paths) == paths.model("mobilenet")
    artifacts.write_json(
        paths.compare / "best.json", {"name": "mobilenet", "model_dir": str(paths.model("mobilenet"))}
    )
    assert classifier_dir(paths) == paths.model("mobilenet")
    moved = {"name": "mobilenet", "model_dir": "/elsewhere/runs/smoke/models/mobilenet"}  # run folder moved
    artifacts.write_json(paths.compare / "best.json", moved)
    assert classifier_dir(paths) == paths.model("mobilenet")
    with pytest.raises(FileNotFoundError, match="no trained classifier in .*models/vgg16: train it first"):
        classifier_dir(paths, "vgg16")


def test_examples_and_captions_json(tmp_path, models):
    smoke = DemoConfig.for_preset("smoke", str(tmp_path), num_examples=3)
    files = example_images(smoke)  # no 06 run here: fresh synthetic pictures under demo/inputs
    assert len(files) == 3 and all(f.suffix == ".jpg" for f in files)
    assert files[0].is_relative_to(tmp_path.resolve() / "demo" / "inputs")
    sample = DemoConfig.for_preset("sample", str(tmp_path))
    assert example_images(sample)[0].name == "grace_hopper.jpg"
    results = process_upload(read_files(files) + [("empty.jpg", b"")], models)
    out = write_captions(smoke.paths.demo / "captions.json", results, smoke.to_json())
    saved = artifacts.read_json(out)
    assert saved["captioned"] == 3 and saved["failed"] == 1
    assert saved["config"]["preset"] == "smoke" and "numpy" in saved["versions"]
    assert saved["results"][3] == {
        "name": "empty.jpg",
        "caption": None,
        "top5": [],
        "seconds": saved["results"][3]["seconds"],
        "error": READ + "file is empty",
        "size": None,
        "decoding": "greedy",
        "detail": "short",
        "narrative": None,
    }
    assert [len(r["top5"]) for r in saved["results"][:3]] == [5, 5, 5]
    assert Path(out).parent == smoke.paths.demo


# ---- card actions: the narrative, regions, overlays, on a stand-in explainer ----


class StandInExplainer:
    """Adds numbered sentences, captions regions by their mean colour, returns fixed maps; can fail."""

    grid = 3

    def __init__(self, fail: bool = False, sentences: int = 2):
        self.fail, self.sentences, self.calls = fail, sentences, []

    def more(self, image, narrative):
        from helpers.caption.narrative import Ranked, Sentence

        self.calls.append("more")
        if self.fail:
            raise RuntimeError("out of memory")
        if len(narrative.sentences) > self.sentences:
            return narrative, None
        text = f"detail number {len(narrative.sentences)}"
        return narrative.add(Sentence(text, "more")), Ranked(text, 1.0, 1.0, 0.0)

    def look_here(self, image, narrative, row, col):
        from helpers.caption.narrative import cell_at, crop, region_sentence

        self.calls.append(("look", row, col))
        cell = cell_at(image.shape[0], image.shape[1], row, col, self.grid, self.grid)
        red, _, blue = crop(image, cell).reshape(-1, 3).mean(0)
        return narrative.add(region_sentence("a red patch" if red > blue else "a blue patch", cell))

    def classifier_map(self, image):
        self.calls.append("cam")
        return np.eye(4), "red"

    def caption_map(self, image, caption):
        self.calls.append(("occlusion", caption))
        return np.ones((4, 4))


def explained_models(explainer, trained_on: str = "smoke") -> DemoModels:
    return DemoModels(RecordingCaptioner(), classify, explainer=explainer, trained_on=trained_on)


def test_tell_more_look_here_reset_and_overlays():
    from helpers.demo import look_here, reset, show_where, tell_more

    explainer = StandInExplainer()
    models = explained_models(explainer)
    [result] = process_upload([("two.gif", gen.palette_gif())], models)  # red top half, blue bottom half
    assert result.narrative.texts == [result.caption] and explainer.calls == []  # nothing ran on upload
    grown = tell_more(tell_more(result, models), models)
    assert grown.narrative.texts[1:] == ["detail number 1", "detail number 2"]
    html = card_html(grown)
    assert html.count('class="demo-sentence demo-more"') == 2 and "Detail number 2." in html
    done = tell_more(grown, models)
    assert done.narrative == grown.narrative and done.notice == "Nothing new to add about this picture."
    region = look_here(done, models, 2, 0)
    assert region.narrative.sentences[-1].display() == "At the bottom left, a blue patch."
    assert region.notice is None and "At the bottom left, a blue patch." in card_html(region)
    cam = show_where(region, models, "classifier")
    assert cam.overlay.startswith(b"\x89PNG") and cam.overlay_title.endswith("(red)")
    assert 'class="demo-overlay"' in card_html(cam)
    occlusion = show_where(cam, models, "caption")
    assert explainer.calls[-1] == ("occlusion", result.caption) and "Occlusion" in occlusion.overlay_title
    assert show_where(occlusion, models, "off").overlay is None
    back = reset(occlusion)
    assert back.narrative.texts == [result.caption] and back.overlay is None
    assert (
        grown.narrative.texts[0] == result.caption
    )  # results are new objects; the old ones stay as they were
    with pytest.raises(ValueError, match="unknown overlay 'x'; choose one of off, classifier, caption"):
        show_where(result, models, "x")


def test_a_failing_card_action_keeps_the_card_and_says_why():
    from helpers.demo import show_where, tell_more

    models = explained_models(StandInExplainer(fail=True))
    [result] = process_upload([("dot.png", gen.one_pixel_png())], models)
    failed = tell_more(result, models)
    assert failed.notice == "Tell me more failed: RuntimeError: out of memory"
    assert failed.narrative == result.narrative and failed.caption == result.caption
    assert "demo-notice" in card_html(failed) and "demo-card-ok" in card_html(failed)
    [bad] = process_upload([("empty.jpg", b"")], models)
    assert tell_more(bad, models).notice == "This card has no captioned picture."
    bare = DemoModels(RecordingCaptioner(), classify)  # no explainer loaded
    [plain] = process_upload([("dot.png", gen.one_pixel_png())], bare)
    assert "need the trained models" in show_where(plain, bare, "caption").notice


def test_card_widgets_grow_the_narrative_and_switch_the_overlay():
    explainer = StandInExplainer()
    app = CaptionApp(explained_models(explainer))
    app.upload.value = as_upload([("two.gif", gen.palette_gif()), ("empty.jpg", b"")])
    view, error_view = app.views
    assert not hasattr(error_view, "more")  # an error card has no actions
    view.more.click()
    view.more.click()
    view.cells.children[0].click()  # the top left cell
    assert explainer.calls == ["more", "more", ("look", 0, 0)]
    assert "At the top left, a red patch." in view.html.value and "Detail number 2." in view.html.value
    view.where.value = "classifier"
    assert 'class="demo-overlay"' in view.html.value
    view.reset.click()
    assert view.where.value == "off" and "demo-narrative" not in view.html.value
    assert "demo-overlay" not in view.html.value and explainer.calls[-1] == "cam"  # reset ran no model
    assert not view.more.disabled and not app.upload.disabled and app.status.value == app.summary
    assert len(app.log.outputs) == 0


def test_banner_names_the_preset_the_models_come_from():
    smoke = CaptionApp(explained_models(StandInExplainer(), "smoke")).widget.children[0].value
    assert "demo-banner" in smoke and "<code>smoke</code> preset" in smoke and "full" in smoke
    sample = CaptionApp(explained_models(StandInExplainer(), "sample")).widget.children[0].value
    assert "a few hundred real photos" in sample
    full = CaptionApp(explained_models(StandInExplainer(), "full")).widget.children[0].value
    assert "demo-banner" not in full
