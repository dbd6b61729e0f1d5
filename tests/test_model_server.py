"""The smoke run's model.tar.gz in SageMaker's own serving stack, on 127.0.0.1.

`helpers.aws.local_server` starts the PyTorch inference image's serve program (sagemaker-pytorch-inference
2.0.25 driving TorchServe 0.12.0, from .venv-serve: `make serve-venv`) on the archive `package_model` builds
with its wheelhouse. pip is pointed at an unreachable index with no config files, so the start proves the
archive installs from its own wheels. Every answer is compared with the same request handled in this
process, where Keras runs on TensorFlow: the server's classifier runs on Keras' torch backend, so its top-5
is checked against TensorFlow's here.
"""

from __future__ import annotations

import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import demo_inputs as di
import numpy as np
import pytest
from PIL import Image

from helpers.aws import local_server
from helpers.aws.package import OFFLINE_OPTIONS
from helpers.serving import JSON_TYPE, Limits, ModelPredictor, handle

#: pip inside the serve program: no config file (this machine's names a local index) and an index that
#: refuses every connection, so only the archive's own wheels can satisfy code/requirements.txt.
OFFLINE_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
#: Generous: the first start installs the archive's wheels into .venv-serve (~1 min on 2 cores).
START_TIMEOUT_S = 600
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def model_dir(smoke_run, tmp_path_factory) -> Path:
    """The smoke run packaged with its wheels for .venv-serve's Python, unpacked as SageMaker does."""
    run = smoke_run.ensure("01", "02", "03", "04", "05", "06", "08")
    return local_server.prepare(run, tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def archive(model_dir) -> Path:
    return model_dir.parent / "model.tar.gz"


@pytest.fixture(scope="module")
def server(model_dir, archive):
    srv = local_server.start(model_dir, env=OFFLINE_PIP)
    try:
        ping_s = srv.wait_healthy(START_TIMEOUT_S)
        status, doc = srv.invoke(di.encode(di.two_tone(), "JPEG"), "image/jpeg")
        first_s = time.monotonic() - srv.started_at
        assert status == 200, (doc, srv.log_tail())
        record = {
            "archive_mb": round(archive.stat().st_size / 1e6, 1),
            "first_ping_s": round(ping_s, 1),
            "first_caption_s": round(first_s, 1),
            "rss_mb": round(srv.rss_bytes() / 1e6),
        }
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "model-server.json").write_text(json.dumps(record, indent=2))
        print("model server:", record)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def reference(model_dir) -> ModelPredictor:
    """The same archive loaded in this process (Keras on TensorFlow), for the expected answers."""
    return ModelPredictor.load(model_dir)


def photo(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    pixels = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_same_answer(got: dict, want: dict) -> None:
    """Equal documents, except that classifier probabilities (torch here, TensorFlow there) are allclose."""
    assert len(got["predictions"]) == len(want["predictions"])
    for g, w in zip(got["predictions"], want["predictions"], strict=True):
        g, w = dict(g), dict(w)
        g_top, w_top = g.pop("top_k", None), w.pop("top_k", None)
        assert g == w
        assert (g_top is None) == (w_top is None)
        if w_top is not None:
            assert [t["label"] for t in g_top] == [t["label"] for t in w_top]
            np.testing.assert_allclose(
                [t["probability"] for t in g_top], [t["probability"] for t in w_top], atol=1e-4
            )


def test_free_ports_are_distinct():
    """TorchServe binds five ports; two equal ones stop it at start ("Address already in use")."""
    ports = local_server.free_ports(50)
    assert len(set(ports)) == 50 and all(1024 < p < 65536 for p in ports)


def test_the_package_starts_offline_and_answers_ping(server):
    assert server.ping() == 200
    log = server.log_tail(200_000)
    assert "Installing collected packages" in log or "Requirement already satisfied" in log, log[-3000:]
    # What pip was given: no index, and a wheel in the archive for every pinned package (a warm .venv-serve
    # would satisfy the pins without them, so the archive itself is checked too).
    code = server.base / "model" / "code"
    lines = (code / "requirements.txt").read_text().splitlines()
    assert lines[:2] == OFFLINE_OPTIONS.splitlines()
    wheels = {p.name.split("-")[0].lower().replace("_", "-") for p in (code / "wheels").glob("*.whl")}
    pins = [line.split("==")[0].lower().replace("_", "-") for line in lines[2:] if line.strip()]
    assert pins and set(pins) <= wheels, sorted(set(pins) - wheels)


@pytest.mark.parametrize(
    "case",
    ["jpeg", "png", "octet-stream", "json-two-images", "json-narrative", "json-language"],
)
def test_invocations_match_the_handler_in_process(server, reference, model_dir, case):
    jpeg, png = di.encode(photo(1), "JPEG"), di.encode(photo(2), "PNG")
    if case == "jpeg":
        body, content_type = jpeg, "image/jpeg"
    elif case == "png":
        body, content_type = png, "image/png"
    elif case == "octet-stream":
        body, content_type = jpeg, "application/octet-stream"
    else:
        doc: dict = {"images": [b64(jpeg), b64(png)], "decoding": "greedy", "alternatives": True}
        if case == "json-narrative":
            doc = {"image": b64(jpeg), "sentences": 3}
        elif case == "json-language":
            languages = sorted(p.name for p in (model_dir / "languages").iterdir())
            assert languages, "notebook 08 trained no language in the smoke run"
            doc = {"image": b64(png), "language": languages[0]}
        body, content_type = json.dumps(doc).encode(), JSON_TYPE
    status, got = server.invoke(body, content_type)
    want_status, want = handle(body, content_type, reference)
    assert (status, want_status) == (200, 200), (got, want)
    assert_same_answer(got, want)
    if case == "json-narrative":
        assert len(got["predictions"][0]["narrative"]) >= 2


BAD_INPUTS = {
    "zero bytes": (b"", "image/jpeg"),
    "truncated jpeg": (di.truncated_jpeg(), "image/jpeg"),
    "wrong content type": (di.encode(di.two_tone(), "JPEG"), "text/plain"),
    "svg as png": (di.SVG, "image/png"),
    "pdf": (di.pdf_document(), "application/octet-stream"),
    "huge dimensions": (di.png_bomb(), "image/png"),
    "malformed json": (b'{"image": ', JSON_TYPE),
    "json without image": (b'{"decoding": "beam"}', JSON_TYPE),
    "bad base64": (b'{"image": "not base64!"}', JSON_TYPE),
    "unknown language": (
        json.dumps({"image": b64(di.one_pixel_png()), "language": "tlh"}).encode(),
        JSON_TYPE,
    ),
    "too many sentences": (
        json.dumps({"image": b64(di.one_pixel_png()), "sentences": 99}).encode(),
        JSON_TYPE,
    ),
    "narrative too long": (  # 8 images x 5 sentences ran past TorchServe's timeout at full shapes
        json.dumps({"images": [b64(di.one_pixel_png())] * 8, "sentences": 5}).encode(),
        JSON_TYPE,
    ),
}


def decompression_bomb() -> bytes:
    """A real PNG of 36 megapixels (over the handler's 25): a few hundred KB that would decode to 108 MB."""
    return di.encode(Image.new("RGB", (6000, 6000)), "PNG")


def test_bad_input_is_a_json_error_and_the_worker_lives(server, reference):
    cases = {**BAD_INPUTS, "decompression bomb": (decompression_bomb(), "image/png")}
    cases["over the size limit"] = (b"\xff" * (Limits().max_request_bytes + 1), "image/jpeg")
    # over TorchServe's default limit (6,553,500 bytes: it would reset the connection) but under the one
    # CONTAINER_ENV sets, so the handler's 413 is what comes back
    cases["over TorchServe's default limit"] = (b"\xff" * 7_000_000, "image/jpeg")
    for name, (body, content_type) in cases.items():
        status, raw, got_type = server.request("/invocations", body, content_type)
        want_status, want = handle(body, content_type, reference)
        assert 400 <= want_status < 500, (name, want)
        assert status == want_status, (name, raw[:500])
        assert got_type.startswith(JSON_TYPE), (name, got_type)
        got = json.loads(raw)
        assert got["error"]["code"] == want["error"]["code"], (name, got)
        assert "Traceback" not in raw.decode(errors="replace"), name
    assert server.ping() == 200
    status, doc = server.invoke(di.encode(photo(3), "JPEG"), "image/jpeg")
    assert status == 200 and doc["predictions"][0]["caption"], doc
    assert "worker process died" not in server.log_tail(500_000).lower()


def test_a_burst_is_answered_in_full_and_right(server):
    images = [di.encode(photo(10 + i), "JPEG") for i in range(6)]
    expected = [server.invoke(body, "image/jpeg") for body in images]
    assert all(status == 200 for status, _ in expected)
    jobs = [images[i % len(images)] for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda body: server.invoke(body, "image/jpeg"), jobs))
    assert len(answers) == len(jobs)
    for i, (status, doc) in enumerate(answers):
        assert status == 200, doc
        assert doc == expected[i % len(images)][1]
