"""The COCO-scale section of rehearsal/results.md (from `rehearsal.coco`'s results)."""

from __future__ import annotations

from typing import Any


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def coco_section(c: dict[str, Any], nb06: dict[str, Any] | None = None) -> list[str]:
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
        "| step | seconds | resident after it (GiB) | peak so far (GiB) |",
        "|---|---|---|---|",
        f"| imports and GPT-2 tokenizer | - | {_gib(p['rss_start'])} | {_gib(p['peak_start'])} |",
        f"| `load_dataset('karpathy:coco')`: JSON parsed into the caption dataset | {p['parse_seconds']} | "
        f"{_gib(p['rss_after_parse'])} | {_gib(p['peak_after_parse'])} |",
        f"| token pairs for train ({p['pairs']['train']:,}) and val ({p['pairs']['val']:,}), 06's "
        f"`make_pairs` | {p['tokens_seconds']} | {_gib(p['rss_after_tokens'])} | {_gib(p['peak_rss'])} |",
        "",
        f"Peak RSS {_gib(p['peak_rss'])} GiB (sampled every 0.2 s: {_gib(p['sampled_peak_rss'])} GiB) is "
        f"{e['peak_rss_share_of_instance']:.0%} of the 16 GiB of ml.g4dn.xlarge; the dataset and its "
        f"tokens hold {_gib(p['peak_rss'] - p['rss_start'])} GiB of it over the imports (the parsed JSON "
        "is freed after reading and the token lists reuse its memory). Load average "
        f"{p['load_average'][0]} / {p['load_average'][1]} (2 cores)."
        + (
            f" Notebook 06's whole Flickr8k rehearsal above peaked at {_gib(nb06['peak_rss'])} GiB (runner "
            "and kernel, GPT-2, CLIP and the encoder study loaded); with the COCO dataset's share added, "
            f"about {_gib(nb06['peak_rss'] + p['peak_rss'] - p['rss_start'])} GiB: an estimate (the models "
            "do not grow with the data, and the feature cache is memory-mapped)."
            if nb06
            else ""
        ),
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
    return lines + _scoring(c.get("scoring")) + _notebook(c.get("notebook_06")) + _coco_estimates(c)


def _scoring(sc: dict[str, Any] | None) -> list[str]:
    """The test split's corpus scoring at COCO's size (step 5 of rehearsal.coco), when it was measured."""
    if not sc:
        return []
    texts = sc["images"] + sc["references"]
    scores = ", ".join(
        f"{k} {v:.3f}"
        for k, v in sc["scores"].items()
        if v is not None and k in ("Bleu_4", "METEOR", "CIDEr")
    )
    return [
        "",
        f"**Scoring the test split** (`helpers.metrics.CaptionScorer`, as 06 scores each decoding; "
        f"{sc['scorer']['tokenizer']}, METEOR {sc['scorer']['meteor']}): {sc['images']:,} images against "
        f"{sc['references']:,} references, each hypothesis another test image's first caption (fluent and "
        f"wrong: {scores}), in {sc['seconds']:.0f} s; peak RSS {_gib(sc['sampled_peak_rss'])} GiB for the "
        f"whole process tree, JVMs included (sampled every 0.2 s; the Python process alone "
        f"{_gib(sc['peak_rss'])} GiB), load average {sc['load_average'][0]} / {sc['load_average'][1]}. 06 "
        "scores 3 decodings of the captioner and of its blind twin this way, one after another. CLIPScore "
        "is not in this measurement: it embeds the captions in batches of 256 (its embeddings of "
        f"{texts:,} texts are {texts * 512 * 4 / 1e6:.0f} MB in float32, an estimate).",
    ]


def _notebook(n: dict[str, Any] | None) -> list[str]:
    """Notebook 06 end to end on the stand-in, through the runner."""
    if not n:
        return []
    lines = [
        "",
        f"**Notebook 06 end to end** on the stand-in: `{n['command']}` against the mirror (`full`: CLIP "
        "ViT-B/32 and GPT-2 of their real sizes with random weights from a Hugging Face cache; the "
        "encoder study left out, it needs 02-05's classifiers): "
        + (
            f"ok in {n['seconds']:.0f} s wall, {n['cpu_seconds']:.0f} s CPU, peak RSS "
            f"{_gib(n['peak_rss'])} GiB, {n['peak_rss'] / 2**34:.0%} of 16 GiB (runner + kernel; training"
            " ran on the CPU, so GPT-2's weights, optimizer state and activations were in RAM as well), run "
            f"folder {n['run_folder_bytes'] / 1e6:,.0f} MB"
            if n["ok"]
            else "**FAILED**:\n\n```\n" + n.get("error", "")[-1500:] + "\n```\n"
        ),
    ]
    if "data_summary" in n:
        d = n["data_summary"]
        lines[-1] += (
            f". Its `captions/data_summary.json`: {d['images_captioned']:,} images captioned, "
            f"{d['captions']:,} captions, {d['missing_images']:,} missing (every name listed: "
            f"{n['missing_listed']:,}), {d['undecodable_images']} undecodable, splits "
            + ", ".join(f"{k} {v:,}" for k, v in d["splits"].items())
            + "."
        )
    return lines


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
