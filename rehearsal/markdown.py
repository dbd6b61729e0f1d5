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
        )
        + (
            f" The T4 and COCO estimates were counted again on {r['estimates_recomputed']} for the full "
            "preset of that day (`python -m rehearsal.run --estimates-only`), from the measurements below."
            if r.get("estimates_recomputed")
            else ""
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
        *_pipeline_check(t4, rate, r.get("pipeline_images_per_second_before")),
    ]
    return lines


def _pipeline_check(t4: dict[str, Any], rate: float, before: float | None) -> list[str]:
    """Whether the CPU input pipeline could feed the T4 at the estimated speed (4 vCPUs: 2x the rate
    measured on these 2 cores), in today's layout and, where measured, the one before it."""
    rows = [
        ("uint8 32x32 batches; resize and preprocess_input inside the model, on the GPU (today)", rate),
        ("augment, resize 32 -> 224 and preprocess_input in tf.data, on the CPU (before)", before),
    ]
    lines = [
        "Input pipeline: the classifiers' tf.data pipeline alone on these 2 cores, and what the instance's "
        "4 vCPUs would supply (2x), against what fine-tuning consumes at the estimated T4 speed; where the "
        "supply is lower, the input pipeline, not the GPU, sets the pace.",
        "",
        "| pipeline | images/s here | 4 vCPUs | "
        + " | ".join(
            f"{CLASSIFIERS[row['notebook']]} (T4 consumes)"
            for row in t4["rows"]
            if row["notebook"] in CLASSIFIERS
        )
        + " |",
    ]
    need = {}
    for row in t4["rows"]:
        if row["notebook"] in CLASSIFIERS:
            name = CLASSIFIERS[row["notebook"]]
            need[name] = (
                estimate.T4_PEAK_FLOPS * estimate.UTILISATION / (3 * 2 * estimate.keras_macs(name, 224))
            )
    lines.append("|---|---|---|" + "---|" * len(need))
    for label, value in rows:
        if value is None:
            continue
        cells = [
            f"{n:,.0f}: " + (f"input-bound {n / (2 * value):.1f}x" if 2 * value < n else "GPU-bound")
            for n in need.values()
        ]
        lines.append(f"| {label} | {value:,.0f} | {2 * value:,.0f} | " + " | ".join(cells) + " |")
    return lines


def render(r: dict[str, Any]) -> str:
    """results.md from the collected results."""
    from helpers.data.download_table import markdown_table

    lines = _header(r) + _notebooks(r) + _steps(r) + _disk(r) + _t4(r)
    if "coco" in r:
        from rehearsal.coco_markdown import coco_section

        lines += coco_section(r["coco"], r.get("notebooks", {}).get("06"))
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
