"""rehearsal/results.md from the collected results."""

from __future__ import annotations

from typing import Any

from rehearsal import estimate
from rehearsal.report import CLASSIFIERS


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


_STANDINS = (
    "Every external file came from a local HTTP mirror of stand-ins: the real names, formats and sizes (a "
    "50,000 + 10,000-image `cifar-100-python.tar.gz`, the Flickr8k archives' layouts with 140 JPEGs, the "
    "three ImageNet weight files in Keras' HDF5 format), random contents, checked against the mirror's own "
    "sha256 manifest; `gpt2` and CLIP ViT-B/32 (random weights of their real sizes) from a Hugging Face "
    "cache, with `HF_HUB_OFFLINE=1`. Shapes are the preset's own: 224x224 inputs, batch 64 / 64 / 128 / 40, "
    "GPT-2 124 M."
)
_LOAD = (
    "The two cores were shared with other work while this ran (the load average is shown per notebook; "
    "above 2 means competition): wall seconds are slower than on a quiet machine, CPU seconds are what "
    "the notebook itself used."
)


def _header(r: dict[str, Any]) -> list[str]:
    m, v = r["machine"], r["machine"]["versions"]
    caps = "; ".join(
        f"{nb}: " + (", ".join(f"`{k}={val}`" for k, val in c.items()) or "none")
        for nb, c in r["caps"].items()
    )
    return [
        "# Rehearsal of the `full` preset",
        "",
        f"`make rehearse` ran the notebooks with `--preset full -p allow_cpu=True` on {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gib']} GiB RAM (commit {m['commit']}, {m['date']}; TensorFlow "
        f"{v.get('tensorflow', '?')}, torch {v.get('torch', '?')}). " + _STANDINS,
        "",
        f"Caps (knobs that default to no cap): {caps}. "
        + (
            f"Building the stand-ins took {r['standins_seconds']:.0f} s, not counted below."
            if r["standins_seconds"] >= 1
            else "The stand-ins were reused from an earlier build."
        ),
        "",
        _LOAD,
    ]


def _notebooks(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Per notebook",
        "",
        "| notebook | result | wall s | CPU s | peak RSS (GiB) | written (MB) | run folder growth (MB) | "
        "download cache growth (MB) | load average start / end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for nb, row in r["notebooks"].items():
        lines.append(
            f"| {nb} | {'ok' if row['ok'] else 'FAILED'} | {row['seconds']:.0f} | {row['cpu_seconds']:.0f} | "
            f"{row['peak_rss'] / 2**30:.2f} | {_mb(row['written'])} | {_mb(row['run_growth'])} | "
            f"{_mb(row['cache_growth'])} | {row['load_average'][0]} / {row['load_average'][1]} |"
        )
    total = sum(row["seconds"] for row in r["notebooks"].values())
    lines += [
        "",
        f"All together: {total / 60:.1f} minutes wall. Peak RSS: runner + kernel, sampled every "
        "0.2 s. Written: bytes the runner and kernel wrote (/proc write_bytes, temporary files included).",
    ]
    return lines


def _steps(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Seconds per training step at full shapes (this CPU)",
        "",
        "| step | batch | seconds per step | GFLOP per step | GFLOP/s reached |",
        "|---|---|---|---|---|",
    ]
    for s in r["steps"]:
        lines.append(
            f"| {s['what']} | {s['batch']} | {s['step_seconds']} | {s['gflop']:,.0f} | {s['gflops_per_s']} |"
        )
    lines += [
        "",
        "A steady step: the median without the first step of an epoch that builds the train graph (with "
        "two steps per phase, one step). FLOPs per step as counted for the T4 estimate below; the CPU's "
        "rate is a check on the count (2 AVX2 cores peak near 190 GFLOP/s in float32).",
    ]
    return lines


def _disk(r: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Disk: the run folder",
        "",
        f"Total {_mb(r['run_folder_bytes'])} MB. Folders of 1 MB or more:",
        "",
        "| folder | MB |",
        "|---|---|",
    ]
    lines += [f"| `{k}` | {_mb(v)} |" for k, v in r["folders"].items()]
    f = r["full_size"]
    lines += [
        "",
        f"At full data size (a projection, not measured): about {f['bytes'] / 1e9:.1f} GB. Models, "
        "checkpoints, the captioner and figures are the same size whatever the data; swapped for their "
        f"full sizes: `data/` {_mb(f['data'])} MB (60,000 CIFAR images), `sources/` {_mb(f['sources'])} MB "
        f"(Flickr8k's 8,091 JPEGs; its archives, another ~1.1 GB, exist only while they are unpacked), "
        f"feature caches {_mb(f['features'])} MB (8,091 rows each).",
    ]
    ckpt = r["checkpoints"]
    lines += [
        "",
        "Files left in checkpoint folders after the run: "
        + (", ".join(f"`{c['path']}` ({_mb(c['bytes'])} MB)" for c in ckpt) if ckpt else "none."),
    ]
    return lines


def _t4(r: dict[str, Any]) -> list[str]:
    t4 = r["t4"]
    lines = [
        "",
        "## Estimated time on one T4 (ml.g4dn.xlarge), not measured",
        "",
        estimate.__doc__.split("\n\n", 1)[1].replace("\n", " ").strip(),
        "",
        f"Peak {t4['peak'] / 1e12:.0f} TFLOPS x assumed utilisation {t4['utilisation']:.0%}.",
        "",
        "| notebook | FLOP-bound work (TFLOP) | T4 minutes | input-pipeline minutes (4 vCPUs) | counted |",
        "|---|---|---|---|---|",
    ]
    rate = r["pipeline_images_per_second"]
    for row in t4["rows"]:
        feed = f"{row['pipeline_images'] / (2 * rate) / 60:.0f}" if row.get("pipeline_images") else "-"
        cells = [row["notebook"], f"{row['tflop']:,.0f}", f"{row['seconds'] / 60:.0f}", feed, row["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    gpu = sum(row["seconds"] for row in t4["rows"])
    minutes = {nb: f"{row['seconds'] / 60:.1f} min" for nb, row in r["notebooks"].items()}
    lines += [
        "",
        f"Not counted: 01 and 05, CPU work that took {minutes.get('01', '?')} and {minutes.get('05', '?')} "
        "here (01 already at full data size; add the 169 MB download on the instance); 07, which "
        f"captions and explains a handful of pictures ({minutes.get('07', '?')} here, on the CPU); kernel "
        "starts, graph builds, caption decoding, METEOR and figures. Sum of the FLOP-bound estimates: "
        f"{gpu / 3600:.1f} h.",
        "",
        f"Input pipeline: the classifiers' tf.data pipeline alone (augment, resize 32 -> 224, preprocess) "
        f"gave {rate:,.0f} images/s on these 2 cores. " + _pipeline_check(t4, rate),
    ]
    return lines


def _pipeline_check(t4: dict[str, Any], rate: float) -> str:
    """Whether the CPU input pipeline could feed the T4 at the estimated speed (4 vCPUs: 2x this rate)."""
    need = []
    for row in t4["rows"]:
        if row["notebook"] in CLASSIFIERS:
            name = CLASSIFIERS[row["notebook"]]
            forward = 2 * estimate.keras_macs(name, 224)
            need.append(f"{name} {estimate.T4_PEAK_FLOPS * estimate.UTILISATION / (3 * forward):,.0f}")
    return (
        "Fine-tuning at the estimated T4 speed consumes images/s: "
        + ", ".join(need)
        + f"; the instance's 4 vCPUs would supply about {2 * rate:,.0f}: where that is lower, the input "
        "pipeline, not the GPU, sets the pace."
    )


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def _coco(c: dict[str, Any]) -> list[str]:
    """The COCO-scale section (rehearsal.coco): stand-in, reader, memory, features, estimates."""
    m, sc, p, f, e = c["machine"], c["standin"]["scale"], c["parse"], c["features"], c["estimates"]
    s_all, s_ext = p["summary"], f["summary"]
    splits = ", ".join(f"{k} {v:,}" for k, v in s_all["splits"].items())
    lines = [
        "",
        "## COCO at scale (Karpathy splits), against a COCO stand-in",
        "",
        f"`python -m rehearsal.coco` on {m['cpu']}, {m['cores']} cores (commit {m['commit']}, {m['date']}). "
        f"The stand-in (`rehearsal/coco_standin.py`): `dataset_coco.json` with the real key set and counts, "
        f"{s_all['images_captioned']:,} image entries, {s_all['captions']:,} generated captions, "
        f"{c['standin']['json_bytes']:,} bytes (the real file: 144,186,139), inside `caption_datasets.zip`; "
        f"`train2014.zip` / `val2014.zip` with the real folder names holding {sc['present'][0]} + "
        f"{sc['present'][1]} generated 640x480 JPEGs ({sc['grayscale']} grayscale, as COCO 2014 has; "
        f"{c['standin']['jpeg_bytes'] / sum(sc['present']) / 1e3:.0f} KB each on average). The `full` "
        "preset's own code (`helpers.data.sources.fetch_karpathy`) fetched the three archives from the local "
        "mirror, checked them against its manifest and extracted them "
        f"({', '.join(c['extracted'])}) in {c['fetch_seconds']:.0f} s.",
        "",
        f"**As extracted** (the reader with `check_images=True`): {s_ext['images_on_disk']:,} images on "
        f"disk, {s_ext['missing_images']:,} listed images missing, {s_ext['undecodable_images']} undecodable:"
        " each counted and listed in the data summary and left out (as a run with an incomplete download "
        "would report them), splits "
        + ", ".join(f"{k} {v:,}" for k, v in s_ext["splits"].items())
        + f"; {f['read_seconds']:.1f} s. Grayscale JPEGs decoded to RGB: {f['grayscale_decoded_rgb']}.",
        "",
        "**Every listed image present** (the same JSON; each absent image replaced by a hard link to an "
        "extracted JPEG, so the reader sees the real split sizes; `check_images=False`, since decoding "
        f"{s_all['images_captioned']:,} copies of {sum(sc['present'])} files would not measure anything: "
        f"the decode check's rate on the real files is below). Splits: {splits} (`restval` in train). In a "
        "fresh process, measured:",
        "",
        "| step | seconds | peak RSS after it (GiB) |",
        "|---|---|---|",
        f"| imports and GPT-2 tokenizer | - | {_gib(p['rss_start'])} |",
        f"| `load_dataset('karpathy:coco')`: JSON parsed into the caption dataset | {p['parse_seconds']} | "
        f"{_gib(p['rss_after_parse'])} |",
        f"| token pairs for train ({p['pairs']['train']:,}) and val ({p['pairs']['val']:,}), 06's "
        f"`make_pairs` | {p['tokens_seconds']} | {_gib(p['peak_rss'])} |",
        "",
        f"Peak RSS {_gib(p['peak_rss'])} GiB (sampled every 0.2 s: {_gib(p['sampled_peak_rss'])} GiB) is "
        f"{e['peak_rss_share_of_instance']:.0%} of the 16 GiB of ml.g4dn.xlarge. Load average "
        f"{p['load_average'][0]} / {p['load_average'][1]} (2 cores).",
        "",
        f"**Features** (`cached_features`, CLIP ViT-B/32 shapes with random weights, batch 32, "
        f"{f['images']} images): {f['images_per_second']:.1f} images/s end to end here (building and "
        f"saving the encoder included: {f['encoder_setup_seconds']} s); apart: JPEG decode "
        f"{f['decode_per_second']:,.0f}/s on the thread pool, CLIP preprocessing "
        f"{f['preprocess_per_second']:,.0f}/s (one thread), the encoder on this CPU "
        f"{f['encode_per_second']:.1f}/s; the load-time decode check "
        f"{f['decode_check_per_second']:,.0f}/s. Cache: {f['bytes_per_image']:,.0f} bytes per image "
        f"(float16 x {f['feature_dim']}), so {e['feature_cache_bytes'] / 1e6:,.0f} MB for 123,287 images "
        f"(ResNet50's 2048 wide: {e['feature_cache_bytes_resnet50'] / 1e6:,.0f} MB), memory-mapped.",
    ]
    return lines + _coco_estimates(c)


def _coco_estimates(c: dict[str, Any]) -> list[str]:
    from helpers.data.download_table import COCO_ARCHIVES, TABLE

    e = c["estimates"]
    rows, alone = e["t4_rows"], e["captioner_alone"]
    train, val = (TABLE[name].size for name in COCO_ARCHIVES)
    shape = e["caption_shape"]
    lines = [
        "",
        "### COCO next to Flickr8k on the notebook instance: estimates, not measured",
        "",
        "Method: the FLOP count of `rehearsal/estimate.py` (above: 65 TFLOPS x 30 % assumed utilisation), "
        "with COCO's counts (113,287 training images with restval, 616,767 captions over 123,287 images) and "
        + (
            f"the caption shape of the real Flickr8k captions ({shape['mean_tokens']:.1f} tokens, "
            f"{shape['padded']:.1f} padded per batch; assumed for COCO too: the stand-in's captions are "
            "generated)"
            if shape
            else "an assumed caption shape"
        )
        + ". Several GPUs: the assumed efficiency of docs/training-jobs.md (90 % on one 4-GPU instance, "
        "80 % over two).",
        "",
        "| work | Flickr8k | COCO |",
        "|---|---|---|",
        f"| 06 `full` as it stands (captioner + blind twin, encoder study, features), 1 T4 | "
        f"{rows['Flickr8k']['seconds'] / 3600:.1f} h | {rows['COCO']['seconds'] / 3600:.1f} h |",
    ]
    for g in ("1", "4", "8"):
        lines.append(
            f"| the captioner alone, {alone['COCO']['epochs']} epochs ({alone['COCO']['steps']:,} steps "
            f"for COCO), {g} T4 | {alone['Flickr8k']['hours'][g]:.2f} h | {alone['COCO']['hours'][g]:.2f} h |"
        )
    lines += [
        "",
        f"Feature extraction on the instance: the T4 would encode ~{e['t4_feature_images_per_second']:,} "
        f"images/s, but 4 vCPUs feed about {e['instance_feed_images_per_second']:,.0f}/s (the slower of "
        "decoding, scaled from 2 cores to 4, and one thread of CLIP preprocessing, as measured above), so "
        f"~{e['instance_feature_hours']:.1f} h for 123,287 images; the load-time decode check "
        f"~{e['instance_decode_check_minutes']:.0f} min. Disk, from the published sizes: `train2014.zip` "
        f"{train / 1e9:.1f} GB and `val2014.zip` {val / 1e9:.1f} GB, each extracted to about its own size "
        f"and deleted afterwards: ~{max(2 * train, train + 2 * val) / 1e9:.0f} GB at the peak of the fetch "
        f"(an archive beside its extracted copy, plus the folder already extracted), "
        f"~{(train + val) / 1e9:.0f} GB after it, plus the run folder.",
    ]
    return lines


def render(r: dict[str, Any]) -> str:
    """results.md from the collected results."""
    from helpers.data.download_table import markdown_table

    lines = _header(r) + _notebooks(r) + _steps(r) + _disk(r) + _t4(r)
    if "coco" in r:
        lines += _coco(r["coco"])
    fetched = ", ".join(f"`{k}` ({_mb(v)} MB)" for k, v in r["downloads"].items() if k != "keras.json")
    lines += [
        "",
        "## Files the `full` preset fetches",
        "",
        markdown_table(("helpers", "huggingface_hub")),
        "",
        f"Downloaded from the mirror into a fresh Keras cache in this run: {fetched}.",
    ]
    return "\n".join(lines) + "\n"
