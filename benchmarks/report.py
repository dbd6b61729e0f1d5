"""benchmarks/results.md from the results dict: ratios first, then every figure, machine and versions."""

from __future__ import annotations

from typing import Any

GB = 1e9  # memory figures are decimal gigabytes, as the 1.5 GB target is
MODES = {"end_to_end": "end to end", "decoder_only": "decoder only"}
INT8_DECODINGS = ("greedy", "beam3")  # as benchmarks.int8_decoding measures them


def _gb(n: float) -> str:
    return f"{n / GB:.2f} GB"


#: The smoke series' wall clock a newcomer waits for in `make run` (all notebooks, with kernel start-ups).
SERIES_TARGET_S = 360


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def caption_rows(cap: dict[str, Any]) -> list[list[str]]:
    """Headline rows of the caption benchmark: ours / VisionEncoderDecoder, and the KV cache's gain."""
    rows = []
    for mode, label in MODES.items():
        for dec, ratio in cap["ratios"][mode].items():
            target = cap["targets"][f"{mode}/{dec}"]
            what = f"captions/s, ours / VisionEncoderDecoder, {dec}, {label}"
            rows.append([what, f"{ratio:.2f}x", f">= {target:g}x", _met(ratio >= target)])
    what = "captions/s, our greedy with KV cache / plain loop without it, decoder only"
    rows.append([what, f"{cap['kv_cache_speedup']:.2f}x", "", ""])
    if "packed_kernels_speedup" in cap:
        what = "captions/s, our greedy with prepacked oneDNN kernels / PyTorch's default ones, decoder only"
        rows.append([what, f"{cap['packed_kernels_speedup']:.2f}x", "", ""])
    if floor := cap.get("bandwidth_floor"):
        gbs = max(floor["copy_bytes_per_s"], floor["triad_bytes_per_s"]) / 1e9
        for dec, multiple in floor["multiple_of_floor"].items():
            what = (
                f"decoder-only step, ours {dec} / bandwidth floor "
                f"({floor['weight_bytes_per_step'] / 1e6:.0f} MB of weights at {gbs:.1f} GB/s"
                f" = {floor['floor_s_per_step'] * 1e3:.1f} ms)"
            )
            rows.append([what, f"{multiple:.2f}x", "", ""])
    return rows


def preprocess_rows(pre: dict[str, Any]) -> list[list[str]]:
    """Headline rows of the preprocessing benchmark: memory ratio, then our peak against the target."""
    ours, seed = pre["ours"]["peak_rss_bytes"], pre["seed_extrapolated"]["peak_rss_bytes"]
    target = f"<= {_gb(pre['target_peak_rss_bytes'])}"
    rows = [
        ["peak RSS, seed's in-memory 224x224 array (extrapolated) / ours", f"{seed / ours:.1f}x", "", ""],
        ["peak RSS, ours, one epoch at 224x224", _gb(ours), target, _met(pre["ours_meets_target"])],
    ]
    if cpu := pre.get("ours_cpu_preprocess"):
        rows.append(
            [
                "classifier input supply, uint8 batches (today) / resize + preprocess in tf.data (before)",
                f"{pre['ours']['images_per_s']:,.0f} / {cpu['images_per_s']:,.0f} images/s"
                f" = {pre['supply_ratio']:.1f}x",
                "",
                "",
            ]
        )
    return rows


def summary_rows(r: dict[str, Any]) -> list[list[str]]:
    """One row per headline figure: what, value, target, verdict."""
    rows = caption_rows(r["caption_speed"]) if "caption_speed" in r else []
    rows += preprocess_rows(r["preprocess_memory"]) if "preprocess_memory" in r else []
    if pipe := r.get("pipeline_time"):
        numbers = ", ".join(name[:2] for name in pipe["notebooks"])
        series = len(pipe["present"]) + len(pipe["missing"])  # the series as it was when measured
        scope = f"all {series} notebooks" if pipe["complete_series"] else f"notebooks {numbers} of {series}"
        what, wall = f"smoke pipeline wall time, {scope}", pipe.get("series_wall_s")
        if pipe["complete_series"] and wall is not None:  # the newcomer's wait: `make run`'s series
            target = SERIES_TARGET_S
            rows.append([what, f"{wall:.0f} s", f"<= {target} s", _met(wall <= target)])
        else:
            rows.append([what, f"{pipe['sum_s']:.0f} s", "", ""])
    rows += int8_rows(r["int8_decoding"]) if "int8_decoding" in r else []
    rows += caption_step_rows(r["caption_step"]) if "caption_step" in r else []
    return rows


def preprocess_section(pre: dict[str, Any], ram_gib: float) -> str:
    """Both sides' memory and speed, the seed's measured fractions and its extrapolation apart."""
    cfg, ours, ext = pre["config"], pre["ours"], pre["seed_extrapolated"]
    epoch = "one whole epoch" if ours["full_epoch"] else f"capped at {ours['batches']} batches"
    cpu = pre.get("ours_cpu_preprocess")
    label = "ours: streaming tf.data pipeline"
    rows = [
        [
            label + (", uint8 32x32 batches; resize + preprocess_input in the model (today)" if cpu else ""),
            f"{ours['images']:,} ({epoch})",
            _gb(ours["peak_rss_bytes"]),
            f"{ours['total_s']:.1f}",
            f"{ours['images_per_s']:.0f}",
        ],
    ]
    if cpu:
        rows.append(
            [
                label + ", resize to 224x224 float32 + preprocess_input in tf.data, on the CPU (before)",
                f"{cpu['images']:,}",
                _gb(cpu["peak_rss_bytes"]),
                f"{cpu['total_s']:.1f}",
                f"{cpu['images_per_s']:.0f}",
            ]
        )
    for s in pre["seed_measured"]:
        share = s["images"] / cfg["n_train"]
        rows.append(
            [
                f"seed: in-memory array, measured on {share:.1%}",
                f"{s['images']:,}",
                _gb(s["peak_rss_bytes"]),
                f"{s['total_s']:.1f}",
                f"{s['images_per_s']:.0f}",
            ]
        )
    rows.append(
        [
            "seed: in-memory array, **extrapolated** to all",
            f"{ext['images']:,}",
            _gb(ext["peak_rss_bytes"]),
            f"{ext['total_s']:.0f}",
            "",
        ]
    )
    base = ours["rss_bytes"]
    fits = "more" if ext["array_bytes"] > ram_gib * 1024**3 else "less"
    intro = (
        f"Synthetic CIFAR-100 at full size ({cfg['n_train']:,} train + {cfg['n_test']:,} test uint8 32x32 "
        f"images, {cfg['pixels']}), each side in its own process; peak RSS is the process's VmHWM. Ours "
        f"streams shuffled, augmented batches of {cfg['batch_size']} through "
        "`helpers.classify.pipeline.make_dataset`; its images/s leaves out the first batch, which fills the "
        f"shuffle buffer. The seed's side: {cfg['seed_resize']}, a lower bound for that approach. Its full "
        f"array alone would be {_gb(ext['array_bytes'])}, {fits} than this machine's {ram_gib} GiB of "
        f"RAM; it is measured on fractions and extrapolated ({ext['method']})."
    )
    if cpu:
        intro += (
            " Ours ships uint8 32x32 batches, as notebooks 02-04 train today: the model resizes and applies "
            "`preprocess_input` on the accelerator (`helpers.classify.preprocessing`); the row below it is "
            "the layout before, with that work in tf.data on the CPU, which is what a GPU would wait on: "
            f"{pre['supply_ratio']:.1f}x fewer images/s on these cores."
        )
    stages = (
        f"Where ours goes: {_gb(base['after_import'])} after importing TensorFlow and Keras, "
        f"{_gb(base['after_arrays'])} with the uint8 arrays, {_gb(base['after_dataset'])} once the dataset "
        f"object exists, {_gb(ours['peak_rss_bytes'])} at peak while streaming."
    )
    head = ["side", "images", "peak RSS", "time (s)", "images/s"]
    return "\n\n".join(
        [
            "## 1. Preprocessing memory: CIFAR-100 to ResNet50 inputs at 224x224",
            intro,
            table(head, rows),
            stages,
        ]
    )


def caption_section(cap: dict[str, Any]) -> str:
    """captions/s of every contender, end to end and decoder only, with the setup that produced them."""
    cfg = cap["config"]
    parts = ["## 2. Caption generation throughput (CPU)", cap["setup"]]
    for mode, label in MODES.items():
        rows = [
            [name, f"{v['captions_per_s']:.2f}", f"{v['median_s']:.2f}", f"{v['min_s']:.2f}-{v['max_s']:.2f}"]
            for name, v in cap[mode].items()
        ]
        parts += [
            f"### {label.capitalize()}",
            table(["contender", "captions/s", "median s/batch", "range s"], rows),
        ]
    same = "the same tokens as" if cap["nocache_matches_cached_greedy"] else "DIFFERENT tokens from"
    kernels = ""
    if "stock_kernels_match_packed_greedy" in cap:
        also = "the same tokens as" if cap["stock_kernels_match_packed_greedy"] else "DIFFERENT tokens from"
        kernels = f" With PyTorch's default kernels, our greedy decoder made {also} with the prepacked ones."
    parts.append(
        f"Batch {cfg['batch_size']}, exactly {cfg['new_tokens']} new tokens per caption; "
        f"{cfg['repeats']} timed rounds after {cfg['warmup']} warm-up round(s), contenders alternating "
        "in one process (the order rotates each round); medians shown. End to end is uint8 images in, "
        "caption text out, each model with its own encoder; decoder only starts from precomputed encoder "
        "outputs (ours: pooled features, the mapper included; theirs: ViT hidden states). The plain loop "
        f"without the cache made {same} the cached greedy decoder.{kernels}"
    )
    return "\n\n".join(parts)


def pipeline_section(pipe: dict[str, Any]) -> str:
    """Seconds per notebook and for the series; which notebooks were missing."""
    rows = [[name, f"{s:.1f}"] for name, s in pipe["notebooks"].items()]
    rows.append(["**sum of the notebooks**", f"{pipe['sum_s']:.1f}"])
    if pipe.get("series_wall_s") is not None:
        rows.append(
            [
                "**whole series, wall clock** (with Python and kernel start-ups)",
                f"{pipe['series_wall_s']:.1f}",
            ]
        )
    text = [f"## 3. Smoke pipeline wall time ({pipe['source']})", table(["notebook", "seconds"], rows)]
    if borrowed := [n for n, src in pipe.get("seconds_from", {}).items() if src != "timings.json"]:
        text.append(
            f"Seconds for {', '.join(borrowed)} come from papermill's record in the executed copies (cells "
            "only, without the kernel's start-up), because the run's timings.json did not list them."
        )
    if pipe["missing"]:
        text.append(
            f"Not the whole series: notebook(s) {', '.join(pipe['missing'])} missing from the checkout; "
            "notebooks after the first missing one are not run, since they read what it writes."
        )
    return "\n\n".join(text)


def serving_section(result: dict[str, Any]) -> str:
    """Both served models (the smoke run's; full shapes with random weights), one table each."""
    parts = ["## 4. The endpoint's model server under load (TorchServe on 127.0.0.1)"]
    parts.append(serving_table("The smoke run's models", result["smoke"]))
    if "full_shapes" in result:
        parts.append(
            serving_table(
                "Full preset's captioner shapes, random weights (decodes to the token limit: an upper "
                "bound; no classifier)",
                result["full_shapes"],
            )
        )
    return "\n\n".join(parts)


def serving_table(title: str, srv: dict[str, Any]) -> str:
    """Latency percentiles, throughput, errors and the server's memory per worker count and client count."""
    rows = []
    for setting in srv["settings"]:
        for level in setting["levels"]:
            rows.append(
                [
                    f"{setting['workers']} x {setting['threads']}",
                    level["clients"],
                    level["requests"],
                    level["errors"],
                    f"{level['p50_s']:.3f}",
                    f"{level['p95_s']:.3f}",
                    f"{level['p99_s']:.3f}",
                    f"{level['throughput_rps']:.2f}",
                    f"{setting['rss_before_mb']} -> {setting['rss_after_mb']}",
                ]
            )
    header = ["workers x threads", "clients", "requests", "errors", "p50 s", "p95 s", "p99 s", "req/s"]
    header.append("RSS MB")
    starts = "; ".join(
        f"{s['workers']} x {s['threads']}: /ping 200 after {s['first_ping_s']} s, "
        f"first answer {s['first_request_s']} s"
        for s in srv["settings"]
    )
    worst = [w for s in srv["settings"] for w in s.get("slowest_requests", [])]
    slow = ""
    if worst:
        cases = "; ".join(
            f"{w['images']} image(s) x {w['sentences']} sentence(s): {w['status']} after {w['seconds']} s"
            for w in worst
        )
        slow = f" The slowest requests the handler accepts (beam search), one worker: {cases}."
    return "\n\n".join(
        [
            f"### {title}",
            f"Models of `{srv['run_dir']}` (classifier: {srv['classifier'] or 'none'}), archive "
            f"{srv['archive_mb']} MB; each request one {srv['request_bytes'] / 1e3:.0f} KB JPEG; container "
            f"settings {srv['container_env']}.",
            table(header, rows),
            f"Start-up after the warm serving environment: {starts}. RSS is the server's (JVM, workers, "
            f"serve program) after a warm-up and after the load.{slow}",
        ]
    )


def int8_rows(q8: dict[str, Any]) -> list[list[str]]:
    """Headline rows of the low-precision benchmark: decoder-only speed-ups on the smoke captioner, one step
    at full shapes, int8 and (where measured) bfloat16 weights."""
    target = q8["criterion"]["speedup"]
    full = q8["full_shapes"]
    rows = []
    for precision in q8["criterion_met"]:  # int8, and bfloat16 where the CPU had its kernels
        for dec in INT8_DECODINGS:
            speedup = q8["smoke"][dec][precision]["speedup"]
            what = f"decoder-only seconds, prepacked float32 / {precision} weights, smoke captioner, {dec}"
            rows.append([what, f"{speedup:.2f}x", f">= {target:g}x", _met(speedup >= target)])
        what = (
            f"one decoding step, float32 / {precision} weights, GPT-2 {full['parameters'] / 1e6:.0f}M "
            "(random weights)"
        )
        rows.append([what, f"{full['speedup'][precision]:.2f}x", "", ""])
    return rows


def int8_verdict(q8: dict[str, Any], precision: str = "int8") -> tuple[str, str]:
    """(short verdict, the sentence saying why), both from the numbers and the criterion."""
    crit = q8["criterion"]
    sm = {d: q8["smoke"][d][precision] for d in INT8_DECODINGS}
    slow = [f"{d} {sm[d]['speedup']:.2f}x" for d in INT8_DECODINGS if sm[d]["speedup"] < crit["speedup"]]
    drift = [
        f"{d} BLEU-4 {sm[d]['bleu4_change']:+.4f}"
        for d in INT8_DECODINGS
        if abs(sm[d]["bleu4_change"]) > crit["bleu4_change"]
    ]
    differ = [
        f"{d} {sm[d]['identical']:.1%}" for d in INT8_DECODINGS if sm[d]["identical"] < crit["identical"]
    ]
    misses = []
    if slow:
        misses.append(f"{', '.join(slow)} < {crit['speedup']:g}x")
    if drift:
        misses.append(f"{', '.join(drift)}, beyond +-{crit['bleu4_change']:g}")
    if differ:
        misses.append(f"{', '.join(differ)} identical < {crit['identical']:.0%}")
    if q8["criterion_met"][precision]:
        return (
            "criterion met",
            f"Shipped: the criterion is met for greedy and beam 3; {precision} may become a decoding option.",
        )
    quality = "" if drift or differ else "; BLEU-4 and identical captions within the criterion"
    return "not shipped", f"Shipped: no ({'; '.join(misses)}){quality}."


def int8_smoke_table(q8: dict[str, Any], precision: str = "int8") -> str:
    """Seconds, speed-up, BLEU-4 and identical captions of float32 and `precision` on the smoke captioner."""
    crit = q8["criterion"]
    head = [
        "smoke captioner, decoder only",
        "float32 s",
        f"{precision} s",
        f"speed-up (>= {crit['speedup']:g}x)",
        f"BLEU-4 float32 -> {precision} (change <= {crit['bleu4_change']:g})",
        f"identical captions (>= {crit['identical']:.0%})",
    ]
    rows = []
    for dec in INT8_DECODINGS:
        d, lp = q8["smoke"][dec], q8["smoke"][dec][precision]
        bleu, change = d["bleu4"], lp["bleu4_change"]
        rows.append(
            [
                dec,
                f"{d['median_s']['float32']:.3f}",
                f"{d['median_s'][precision]:.3f}",
                f"{lp['speedup']:.2f}x: {_met(lp['speedup'] >= crit['speedup'])}",
                f"{bleu['float32']:.4f} -> {bleu[precision]:.4f} ({change:+.4f}): "
                + _met(abs(change) <= crit["bleu4_change"]),
                f"{lp['identical']:.1%}: {_met(lp['identical'] >= crit['identical'])}",
            ]
        )
    return table(head, rows)


def int8_full_table(full: dict[str, Any]) -> str:
    """One decoding step of each precision at full shapes against each one's bandwidth floor."""
    shape, gbs = full["shape"], full["bandwidth_bytes_per_s"] / 1e9
    step, floor, wbytes = full["step_s"], full["floor_s"], full["weight_bytes_per_step"]
    precisions = [k for k in ("float32", "int8", "bfloat16") if k in step]
    head = [
        f"full shapes (GPT-2 {full['parameters'] / 1e6:.0f}M, {shape['n_layer']} layers, {shape['n_embd']} "
        f"wide, random weights), one KV-cached step, batch {shape['batch']}, {shape['cached_positions']} "
        "cached positions",
        *precisions,
    ]

    def faster(k: str) -> str:
        return "" if k == "float32" else f" ({full['speedup'][k]:.2f}x faster)"

    rows = [
        ["step", *(f"{step[k] * 1e3:.1f} ms{faster(k)}" for k in precisions)],
        [
            f"bandwidth floor (weights read per step / {gbs:.1f} GB/s measured)",
            *(f"{floor[k] * 1e3:.1f} ms ({wbytes[k] / 1e6:.0f} MB)" for k in precisions),
        ],
        ["step / floor", *(f"{full['multiple_of_floor'][k]:.2f}x" for k in precisions)],
    ]
    return table(head, rows)


def int8_reading(q8: dict[str, Any]) -> str:
    """What the two scales say together: where int8 gains, and how far it stays from its floor."""
    full, floors = q8["full_shapes"], q8["full_shapes"]["multiple_of_floor"]
    speedup = full["speedup"]["int8"]
    best_smoke = max(q8["smoke"][d]["int8"]["speedup"] for d in INT8_DECODINGS)
    if speedup > best_smoke:
        text = (
            f"int8 gains more where a step reads more weights: {speedup:.2f}x at full shapes, "
            f"{best_smoke:.2f}x at best on the smoke captioner (the one the criterion is measured on)."
        )
    else:
        text = f"int8 gains no more at full shapes ({speedup:.2f}x) than on the smoke captioner."
    if floors["int8"] > floors["float32"]:
        text += (
            f" At full shapes int8 sits further from its own floor than float32 ({floors['int8']:.1f}x vs "
            f"{floors['float32']:.1f}x): the int8 kernels and the per-call activation quantization, not the "
            "weight bytes, bound its step."
        )
    return text


def bfloat16_part(q8: dict[str, Any]) -> list[str]:
    """The bfloat16 weights' table and verdict, or the sentence saying this CPU could not run them."""
    if not q8["bfloat16_supported"]:
        return ["### bfloat16 weights: not measured", "This CPU's oneDNN has no bfloat16 kernels."]
    full = q8["full_shapes"]
    short, verdict = int8_verdict(q8, "bfloat16")
    best_smoke = max(q8["smoke"][d]["bfloat16"]["speedup"] for d in INT8_DECODINGS)
    intro = (
        "`helpers.caption.cpu_kernels.packed_linears(model, 'bfloat16')`: the same prepacked oneDNN "
        "linears, weights and each linear's input rounded to bfloat16, float32 out; the same model and "
        "rounds as above."
    )
    reading = (
        f"One step at full shapes: {full['speedup']['bfloat16']:.2f}x faster than float32 (int8: "
        f"{full['speedup']['int8']:.2f}x); {best_smoke:.2f}x at best on the smoke captioner."
    )
    return [f"### bfloat16 weights: {short}", intro, int8_smoke_table(q8, "bfloat16"), f"{verdict} {reading}"]


def int8_section(q8: dict[str, Any]) -> str:
    """Both precisions on the smoke captioner and at full shapes, and the verdict against the criterion."""
    short, verdict = int8_verdict(q8)
    intro = (
        "int8 weights by `torch.ao.quantization.quantize_dynamic` (GPT-2's Conv1D layers turned into "
        "nn.Linear first, LM head included, per-tensor qint8; embeddings, layer norms and the mapper stay "
        f"float32) against the product's prepacked float32 decoder, {q8['threads']} thread(s), alternating "
        f"rounds in one process after a warm-up, medians of {q8['repeats']}. Smoke captioner: "
        f"`{q8['captioner']}`, its {q8['smoke']['test_images']} test images, BLEU-4 by "
        "`helpers.metrics.CaptionScorer`."
    )
    return "\n\n".join(
        [
            f"## 5. 8-bit CPU decoding: {short}",
            intro,
            int8_smoke_table(q8),
            int8_full_table(q8["full_shapes"]),
            f"{verdict} {int8_reading(q8)}",
            *bfloat16_part(q8),
        ]
    )


#: The captioner step's variants, in the order benchmarks.caption_step measures them.
STEP_VARIANTS = {
    "before": "before: plain batches, LM head at every position",
    "gathered head": "LM head at labelled positions only",
    "bucketed batches": "length-bucketed batches only",
    "after": "after: bucketed batches + gathered head",
}


def caption_step_rows(step: dict[str, Any]) -> list[list[str]]:
    """Headline rows of the captioner-step benchmark: FLOPs and seconds before, with today's default (the
    gathered head) and with length bucketing on top (`bucket_by_length=True`)."""
    rows = []
    for key in ("full", "smoke"):
        shapes = step[key]
        v = shapes["variants"]
        before, today, both = v["before"], v["gathered head"], v["after"]
        where = f"{shapes['label']}, batch {shapes['batch']}"
        what = "before / gathered head (default) / + bucketed batches"
        rows.append(
            [
                f"captioner training step, GFLOP, {what}, {where}",
                f"{before['gflop_per_step']:,.0f} / {today['gflop_per_step']:,.0f} / "
                f"{both['gflop_per_step']:,.0f}"
                f" ({today['flop_ratio']:.2f}x / {both['flop_ratio']:.2f}x fewer)",
                "",
                "",
            ]
        )
        rows.append(
            [
                f"captioner training epoch, seconds (projected from timed steps), {what}, {where}",
                f"{before['epoch_s_projected']:,.0f} / {today['epoch_s_projected']:,.0f} / "
                f"{both['epoch_s_projected']:,.0f} ({today['speedup']:.2f}x / {both['speedup']:.2f}x faster)",
                "",
                "",
            ]
        )
    return rows


def caption_step_table(shapes: dict[str, Any]) -> str:
    """The four variants at one set of shapes."""
    header = [
        "variant",
        "steps/epoch",
        "padded caption tokens/batch",
        "LM-head positions/pair",
        "GFLOP/step (epoch mean)",
        "s/step (timed)",
        "GFLOP/s",
        "epoch s (projected)",
        "FLOPs before / this",
        "speed-up",
    ]
    rows = [
        [
            STEP_VARIANTS[name],
            f"{v['steps_per_epoch']:,}",
            f"{v['mean_padded_tokens']:.1f}",
            f"{v['head_positions_per_pair']:.1f}",
            f"{v['gflop_per_step']:,.1f}",
            f"{v['step_s']:.3f}",
            f"{v['gflops_per_s']:.1f}",
            f"{v['epoch_s_projected']:,.0f}",
            f"{v['flop_ratio']:.2f}x",
            f"{v['speedup']:.2f}x",
        ]
        for name, v in shapes["variants"].items()
    ]
    g = shapes["gpt2"]
    intro = (
        f"### {shapes['label'].capitalize()}: GPT-2 {g['n_layer']} x {g['n_embd']}, "
        f"prefix {shapes['prefix']}, batch {shapes['batch']}, max {shapes['max_tokens']} tokens; "
        f"{shapes['pairs']:,} pairs of "
        f"{shapes['captions']}, {shapes['mean_caption_tokens']:.1f} caption tokens on average"
    )
    return "\n\n".join([intro, table(header, rows)])


def caption_step_section(step: dict[str, Any]) -> str:
    """Both shapes' tables, how they were measured, and the same-loss check."""
    full, smoke = step["full"], step["smoke"]
    worst = max(full["loss_difference_same_batch"], smoke["loss_difference_same_batch"])
    parts = [
        "## 6. The captioner's training step: length bucketing and the gathered LM head",
        "One training step as `helpers.caption.train` runs it (forward, backward, gradient clipping, "
        f"fused AdamW; float32 on the CPU, {full['threads']} thread(s)), four ways, random weights of the "
        "real shapes. FLOPs are counted from every batch of one epoch's order (3 x 2 x multiply-adds of "
        "GPT-2's body over prefix + padded tokens, plus width x 50,257 per position the LM head is "
        "applied at; `rehearsal.estimate.transformer_macs`), so they are the epoch's mean. Seconds are the "
        f"mean of {full['rounds']} steps (smoke shapes: {smoke['rounds']}) on batches at evenly spaced "
        "quantiles of the epoch's batch widths, after a warm-up step, the variants alternating round by "
        "round in one process; the projected epoch is those seconds scaled by the epoch's mean FLOPs over "
        "the timed batches' (the rate of the timed batches stands for the epoch's).",
        caption_step_table(full),
        caption_step_table(smoke),
        "Same objective: on one batch (dropout off) the gathered loss and the loss over every position "
        f"differ by {worst:.1e} at most (the test suite holds them within 1e-5). The head is gathered in "
        "every training (captioner, image-blind twin, encoder study); bucketing is notebook 06's "
        "`bucket_by_length` knob, off by default: on the smoke captioner it broke the learning bars "
        "(docs/benchmarks.md).",
    ]
    return "\n\n".join(parts)


def contention_note(r: dict[str, Any]) -> str:
    """How much CPU other processes took while each benchmark ran (average cores busy with other work)."""
    cores = r["machine"]["cores"]
    names = [
        n
        for n in ("preprocess_memory", "caption_speed", "pipeline_time", "int8_decoding", "caption_step")
        if n in r
    ]
    others = {n: r[n]["other_processes_cores"] for n in names if "other_processes_cores" in r[n]}
    if not others:
        return "CPU taken by other processes: not measurable on this OS (no /proc/stat)."
    items = "; ".join(f"{n} {c:.2f}" for n, c in others.items())
    head = f"CPU taken by other processes while each benchmark ran (average cores busy, of {cores}): {items}."
    if max(others.values()) > 0.25:  # a quarter of a core
        verdict = (
            "Other work shared the CPU, so absolute times are inflated and noisier than on a quiet machine; "
            "the caption ratios come from alternating runs in one process and are the more robust figures."
        )
    else:
        verdict = "The machine was otherwise quiet."
    return f"{head} {verdict}"


def carried_note(r: dict[str, Any]) -> str:
    """Which sections an `--only` run kept from earlier runs, with their dates (and versions and machine if
    others)."""
    items = []
    for name, origin in r.get("carried_over", {}).items():
        other = ", other versions" if origin.get("versions") not in (None, r["versions"]) else ""
        if origin.get("machine") not in (None, r["machine"]["cpu_model"]):
            other += f", on {origin['machine']}"
        items.append(f"{name} ({origin.get('date_utc')}{other})")
    return f" Carried over unchanged from earlier runs: {'; '.join(items)}." if items else ""


def render(r: dict[str, Any]) -> str:
    """The whole results.md."""
    m = r["machine"]
    quick = " **Quick mode: tiny sizes, the numbers mean nothing.**" if r["quick"] else ""
    head = [
        "# Benchmark results",
        f"Generated by `{r['command']}` on {r['date_utc']} (UTC), {r['total_wall_s']:.0f} s in all."
        f"{carried_note(r)}{quick}",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}. "
        + "Versions: "
        + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        + ".",
        contention_note(r),
        "## Summary",
        table(["measure", "value", "target", ""], summary_rows(r)),
    ]
    sections = {
        "preprocess_memory": lambda pre: preprocess_section(pre, m["ram_gib"]),
        "caption_speed": caption_section,
        "pipeline_time": pipeline_section,
        "serving_load": serving_section,
        "int8_decoding": int8_section,
        "caption_step": caption_step_section,
    }
    body = [render_one(r[name]) for name, render_one in sections.items() if name in r]
    return "\n\n".join(head + body) + "\n"
