"""Flickr8k loader: both caption formats, problems reported not fatal, splits, fetching the archives."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from helpers.data import (
    DownloadError,
    FlickrFormatError,
    fetch_flickr8k,
    load_flickr8k,
    normalize_caption,
)

IDS = [f"100{i}_abcdef012{i}.jpg" for i in range(4)]
TOKEN_LINES = [
    f"{IDS[0]}#0\tA dog runs .",
    f"{IDS[0]}#1\tThe dog's ball , red-and-white .",
    f"{IDS[1]}#0\tTwo  children   play .",
    "2258277193_586949ec62.jpg.1#0\tpeople waiting for the subway",  # the known bogus id (line 4)
    f"{IDS[2]}#0 no tab on this line",
    f"{IDS[3]}#0\tA cat sleeps .",
    "",
    f"{IDS[2]}#1\t   ",
]


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 100, 50)).save(buf, format="JPEG")
    return buf.getvalue()


def make_folder(root: Path, images: list[str], image_dir: str = "Images", splits: bool = True) -> Path:
    """Captions for IDS[0..3] (plus junk lines); files only for `images`; an extra uncaptioned file."""
    (root / image_dir).mkdir(parents=True)
    for name in [*images, "999_uncaptioned0.jpg"]:
        (root / image_dir / name).write_bytes(jpeg())
    (root / "Flickr8k.token.txt").write_text("\n".join(TOKEN_LINES) + "\n")
    if splits:
        (root / "Flickr_8k.trainImages.txt").write_text(f"{IDS[0]}\n{IDS[2]}\n{IDS[3]}\n")
        (root / "Flickr_8k.devImages.txt").write_text(f"{IDS[1]}\n")
        (root / "Flickr_8k.testImages.txt").write_text("")
    return root


def test_token_file_captions_problems_and_missing(tmp_path: Path):
    data = load_flickr8k(make_folder(tmp_path, images=IDS[:2]))
    assert data.captions == {
        IDS[0]: ["A dog runs .", "The dog's ball , red-and-white ."],
        IDS[1]: ["Two  children   play ."],
        IDS[3]: ["A cat sleeps ."],
    }
    assert data.normalized[IDS[0]] == ["a dog runs", "the dogs ball red and white"]
    assert data.normalized[IDS[1]] == ["two children play"]
    assert data.problems == [
        "Flickr8k.token.txt line 4: bad image id '2258277193_586949ec62.jpg.1'",
        "Flickr8k.token.txt line 5: expected an image id and one caption",
        f"Flickr8k.token.txt line 8: empty caption for {IDS[2]}",
    ]
    assert data.missing_images == [IDS[3]]
    assert data.uncaptioned_images == ["999_uncaptioned0.jpg"]
    # official lists: only captioned images present on disk are kept; the listed counts are the lists'
    assert data.split_source == "official"
    assert data.splits == {"train": [IDS[0]], "val": [IDS[1]], "test": []}
    assert data.listed == {"train": 3, "val": 1, "test": 0}
    assert data.image_path(IDS[0]) == tmp_path / "Images" / IDS[0]
    with pytest.raises(KeyError, match="no captions"):
        data.image_path("unknown.jpg")
    s = data.summary()
    assert (s["images_captioned"], s["captions"], s["missing_images"], s["problems"]) == (3, 4, 1, 3)
    assert s["images_on_disk"] == 3 and s["splits"] == {"train": 1, "val": 1, "test": 0}


def test_csv_captions_with_commas_and_quotes(tmp_path: Path):
    (tmp_path / "Images").mkdir()
    (tmp_path / "Images" / IDS[0]).write_bytes(jpeg())
    (tmp_path / "captions.txt").write_text(
        "image,caption\n"
        f'{IDS[0]},"A dog, named ""Rex"", runs ."\n'
        f"{IDS[0]},A second caption .\n"
        "not-an-image,some caption\n"
        f"{IDS[0]},too,many,fields\n"
    )
    data = load_flickr8k(tmp_path)
    assert data.captions == {IDS[0]: ['A dog, named "Rex", runs .', "A second caption ."]}
    assert data.normalized[IDS[0]][0] == "a dog named rex runs"
    assert data.problems == [
        "captions.txt line 4: bad image id 'not-an-image'",
        "captions.txt line 5: expected an image id and one caption",
    ]


def test_original_archive_folder_name_is_accepted(tmp_path: Path):
    data = load_flickr8k(make_folder(tmp_path, images=IDS, image_dir="Flicker8k_Dataset"))
    assert data.images_dir.name == "Flicker8k_Dataset" and data.missing_images == []


def test_seeded_split_without_lists(tmp_path: Path):
    (tmp_path / "Images").mkdir()
    names = [f"{1000 + i}_0123456789.jpg" for i in range(50)]
    for n in names[:40]:  # ten captioned images are missing on disk
        (tmp_path / "Images" / n).write_bytes(jpeg())
    (tmp_path / "Flickr8k.token.txt").write_text(
        "".join(f"{n}#0\tcaption {i}\n" for i, n in enumerate(names))
    )
    a = load_flickr8k(tmp_path, seed=1, val_fraction=0.2, test_fraction=0.1)
    assert a.split_source == "seeded" and a.listed == {}
    assert [len(a.splits[k]) for k in ("train", "val", "test")] == [28, 8, 4]
    assert sorted(sum(a.splits.values(), [])) == sorted(names[:40])  # disjoint, only present images
    assert a.splits == load_flickr8k(tmp_path, seed=1, val_fraction=0.2, test_fraction=0.1).splits
    assert a.splits != load_flickr8k(tmp_path, seed=2, val_fraction=0.2, test_fraction=0.1).splits
    with pytest.raises(ValueError, match="sum < 1"):
        load_flickr8k(tmp_path, val_fraction=0.5, test_fraction=0.5)


def test_image_in_two_lists_is_reported(tmp_path: Path):
    root = make_folder(tmp_path, images=IDS)
    (root / "Flickr_8k.testImages.txt").write_text(f"{IDS[0]}\n")
    data = load_flickr8k(root)
    assert f"Flickr_8k.testImages.txt: {IDS[0]} is already in the train split" in data.problems
    assert data.splits["test"] == [] and IDS[0] in data.splits["train"]  # kept once: no train/test leak


def test_folder_without_captions_lists_what_it_found(tmp_path: Path):
    (tmp_path / "Images").mkdir()
    (tmp_path / "readme.md").write_text("hi")
    with pytest.raises(
        FlickrFormatError, match=r"neither Flickr8k.token.txt nor captions.txt; found Images/, readme.md"
    ):
        load_flickr8k(tmp_path)
    inner = make_folder(tmp_path / "flickr8k", images=IDS)
    with pytest.raises(FlickrFormatError, match="did you mean"):
        load_flickr8k(inner.parent)


def test_missing_image_folder_and_partial_lists(tmp_path: Path):
    root = make_folder(tmp_path / "a", images=IDS)
    (root / "Flickr_8k.devImages.txt").unlink()
    with pytest.raises(FlickrFormatError, match="split lists incomplete, missing Flickr_8k.devImages.txt"):
        load_flickr8k(root)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "captions.txt").write_text("image,caption\n")
    with pytest.raises(FlickrFormatError, match=r"no image folder \(Images or Flicker8k_Dataset/\)"):
        load_flickr8k(tmp_path / "b")
    with pytest.raises(FlickrFormatError, match="is not a folder"):
        load_flickr8k(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A girl going into a wooden building .", "a girl going into a wooden building"),
        ("  Black-and-white dog's toy!!  ", "black and white dogs toy"),
        ("Two\tmen , one woman", "two men one woman"),
    ],
)
def test_normalize_caption(raw: str, clean: str):
    assert normalize_caption(raw) == clean


# ---- fetching the archives (no internet here: a file:// mirror with its own hash manifest stands in) -----
def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def fake_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: bool = False) -> None:
    """Archives laid out like the public ones (macOS junk included), on a file:// mirror."""
    images = {f"Flicker8k_Dataset/{n}": jpeg() for n in IDS} | {"__MACOSX/Flicker8k_Dataset/._x.jpg": b"junk"}
    text = {
        "Flickr8k.token.txt": "\n".join(TOKEN_LINES).encode(),
        "Flickr_8k.trainImages.txt": IDS[0].encode(),
    }
    text |= {"Flickr_8k.devImages.txt": IDS[1].encode(), "Flickr_8k.testImages.txt": IDS[3].encode()}
    manifest = {}
    for name, files in (("Flickr8k_Dataset.zip", images), ("Flickr8k_text.zip", text)):
        path = tmp_path / "server" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(zip_bytes(files))
        md5 = "0" * 32 if corrupt else hashlib.md5(path.read_bytes()).hexdigest()
        manifest[name] = {"hash": f"md5:{md5}"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", (tmp_path / "server").as_uri())
    monkeypatch.setenv("CAPTION_DOWNLOAD_MANIFEST", str(tmp_path / "manifest.json"))


def test_fetch_extracts_into_the_canonical_layout(tmp_path: Path, monkeypatch):
    fake_archives(tmp_path, monkeypatch)
    root = fetch_flickr8k(tmp_path / "data")
    assert root == tmp_path / "data" / "flickr8k"
    assert sorted(p.name for p in (root / "Images").iterdir()) == IDS
    data = load_flickr8k(root)
    assert data.splits == {"train": [IDS[0]], "val": [IDS[1]], "test": [IDS[3]]}
    assert not list((tmp_path / "data" / "downloads").glob("*.zip*"))  # archives removed
    (tmp_path / "server" / "Flickr8k_text.zip").unlink()
    assert fetch_flickr8k(tmp_path / "data") == root  # second call: nothing downloaded


def test_fetch_refuses_a_checksum_mismatch(tmp_path: Path, monkeypatch):
    fake_archives(tmp_path, monkeypatch, corrupt=True)
    with pytest.raises(DownloadError, match="md5 [0-9a-f]{32}, expected 0000"):
        fetch_flickr8k(tmp_path / "data")
    assert not list((tmp_path / "data" / "downloads").glob("*.zip*"))  # no partial file left behind


def test_fetch_unreachable_host_fails_clearly(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CAPTION_DOWNLOAD_MIRROR", "http://127.0.0.1:9")  # the discard port: refused at once
    with pytest.raises(
        DownloadError,
        match=r"could not download http://127\.0\.0\.1:9/Flickr8k_Dataset.zip .*put the file at",
    ):
        fetch_flickr8k(tmp_path, timeout=5, retries=0)
