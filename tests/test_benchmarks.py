"""The benchmarks' entry point in quick mode: every result file field is there and sane (never timings).

The pipeline benchmark reads a run folder (`--from-run`) of notebook 01 made here (4 s): with it these tests
need not wait for the session's smoke series, and run on the other xdist worker meanwhile.

The int8 decoding benchmark's quick mode also runs on its own (~10 s, in `make test`): its numbers and its
section of results.md, rendered on top of the committed results.

Nothing here may fail for being slow (the issue: benchmarks, not timed tests): the time limits only stop a
hung process, and are far above what a quick run takes on a loaded 2-core machine (35-75 s measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SeriesRun

ROOT = Path(__file__).resolve().parents[1]
#: A quick run of all three benchmarks: TensorFlow and PyTorch start-ups, several worker processes and a
#: papermill kernel, each slowed many times over when other test processes hold both cores.
QUICK_TIMEOUT_S = 1800


def bench(*args: str, module: str = "benchmarks.run", timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m benchmarks.run ...`` from the repository root, as `make bench` runs it.

    A run past `timeout` fails with what it had printed so far (the cause, not just "timed out").
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", module, *args]
    try:
        return subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"`{' '.join(cmd[1:])}` still running after {timeout:.0f} s\n{outputs(err)}")


def outputs(proc: subprocess.CompletedProcess | subprocess.TimeoutExpired) -> str:
    """Exit status and the tails of stdout and stderr, for a failure message."""

    def text(x: str | bytes | None) -> str:
        return x.decode(errors="replace") if isinstance(x, bytes) else (x or "")

    status = getattr(proc, "returncode", None)
    return (
        f"exit status {status}\n--- stdout (tail) ---\n{text(proc.stdout)[-2000:]}\n"
        f"--- stderr (tail) ---\n{text(proc.stderr)[-6000:]}"
    )


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> tuple[dict, str]:
    """One quick run of all three benchmarks; the pipeline one reads a run folder of notebook 01."""
    out = tmp_path_factory.mktemp("bench")
    run_dir = SeriesRun("smoke", tmp_path_factory.mktemp("bench-run")).ensure("01")
    proc = bench("--quick", "--out", str(out), "--from-run", str(run_dir), timeout=QUICK_TIMEOUT_S)
    assert proc.returncode == 0, outputs(proc)
    return json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_header_records_machine_versions_and_date(quick_results):
    results, md = quick_results
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1 and results["machine"]["ram_gib"] > 0
    assert results["machine"]["cpu_model"]
    assert {"python", "tensorflow", "torch", "transformers", "numpy"} <= set(results["versions"])
    assert results["date_utc"][:2] == "20"
    assert results["machine"]["cpu_model"] in md and "Quick mode" in md


def test_preprocess_memory_fields(quick_results):
    results, md = quick_results
    pre = results["preprocess_memory"]
    ours, seeds, ext = pre["ours"], pre["seed_measured"], pre["seed_extrapolated"]
    # Peak RSS is at least what the process held once the arrays existed, and a plausible size.
    assert ours["rss_bytes"]["after_arrays"] <= ours["peak_rss_bytes"] < 8e9
    assert ours["images"] == ours["batches"] * pre["config"]["batch_size"] and ours["images_per_s"] > 0
    # Today's path ships uint8 32x32 batches; the layout before shipped float32 224x224 ones.
    cpu = pre["ours_cpu_preprocess"]
    assert (ours["preprocess"], ours["batch_dtype"], ours["batch_shape"]) == ("model", "uint8", [32, 32, 3])
    assert (cpu["preprocess"], cpu["batch_dtype"], cpu["batch_shape"]) == ("cpu", "float32", [224, 224, 3])
    assert cpu["images"] == ours["images"]
    assert pre["supply_ratio"] == ours["images_per_s"] / cpu["images_per_s"]
    assert len(seeds) == 2 and seeds[0]["images"] < seeds[1]["images"]
    for s in seeds:
        assert s["array_bytes"] == s["images"] * 224 * 224 * 3 * 4
        assert s["peak_rss_bytes"] >= s["rss_bytes"]["after_arrays"]
    assert (
        ext["images"] == pre["config"]["n_train"] and ext["array_bytes"] == ext["images"] * 224 * 224 * 3 * 4
    )
    assert ext["peak_rss_bytes"] > 0 and ext["total_s"] > 0
    assert pre["ours_meets_target"] == (ours["peak_rss_bytes"] <= pre["target_peak_rss_bytes"])
    assert "extrapolated" in md


def test_caption_speed_fields(quick_results):
    results, md = quick_results
    cap = results["caption_speed"]
    assert set(cap["end_to_end"]) == {
        "ours greedy",
        "ours beam3",
        "ours greedy, resnet50 encoder",
        "ours beam3, resnet50 encoder",
        "VisionEncoderDecoder greedy",
        "VisionEncoderDecoder beam3",
    }
    assert cap["config"]["backbone"] == "clip"  # the product's default encoder is the headline row
    assert cap["targets"]["end_to_end/greedy"] == cap["targets"]["end_to_end/beam3"] == 3.0
    assert "ours greedy, plain loop without KV cache" in cap["decoder_only"]
    for mode in ("end_to_end", "decoder_only"):
        for name, v in cap[mode].items():
            assert v["repeats"] == cap["config"]["repeats"] and v["captions_per_s"] > 0, name
        for dec, ratio in cap["ratios"][mode].items():
            ours, theirs = cap[mode][f"ours {dec}"], cap[mode][f"VisionEncoderDecoder {dec}"]
            assert ratio == pytest.approx(ours["captions_per_s"] / theirs["captions_per_s"])
    # The cached and the uncached greedy loops must pick the same tokens: same model, same rule.
    assert cap["nocache_matches_cached_greedy"] is True
    # Our decoder with PyTorch's default kernels instead of prepacked oneDNN ones: same tokens, and the ratio.
    stock = cap["decoder_only"]["ours greedy, PyTorch's default kernels"]
    assert cap["stock_kernels_match_packed_greedy"] is True
    assert cap["packed_kernels_speedup"] == pytest.approx(
        cap["decoder_only"]["ours greedy"]["captions_per_s"] / stock["captions_per_s"]
    )
    assert cap["parameters"]["their_decoder"] > cap["parameters"]["ours_gpt2"]  # cross-attention adds weights
    assert "VisionEncoderDecoder" in md and "captions/s" in md


def test_pipeline_time_reads_a_run_folder(quick_results):
    results, md = quick_results
    pipe = results["pipeline_time"]
    assert pipe["notebooks"]["01-preprocess"] > 0 and pipe["seconds_from"]["01-preprocess"] == "timings.json"
    assert pipe["sum_s"] == pytest.approx(sum(pipe["notebooks"].values()), abs=0.1)
    assert "01" in pipe["present"] and set(pipe["missing"]).isdisjoint(pipe["present"])
    assert "01-preprocess" in md


def test_pipeline_time_from_run_merges_papermill_record(tmp_path):
    """timings.json lists 02 only; 01's executed copy carries papermill's duration, which fills the gap."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "timings.json").write_text(
        json.dumps({"preset": "smoke", "seconds": {"02-train-vgg16": 50.0}})
    )
    executed = {
        "cells": [],
        "metadata": {"papermill": {"duration": 4.26}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (notebooks / "01-preprocess.ipynb").write_text(json.dumps(executed))
    proc = bench("--from-run", str(tmp_path), module="benchmarks.pipeline_time")
    assert proc.returncode == 0, outputs(proc)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHMARK-RESULT "))
    pipe = json.loads(line.split(" ", 1)[1])
    assert pipe["notebooks"] == {"01-preprocess": 4.3, "02-train-vgg16": 50.0}
    assert pipe["seconds_from"] == {"01-preprocess": "papermill metadata", "02-train-vgg16": "timings.json"}
    assert pipe["sum_s"] == 54.3 and pipe["series_wall_s"] is None


def test_unknown_benchmark_is_refused():
    proc = bench("--only", "preprocess_memory,nonsense")
    assert proc.returncode != 0 and "unknown benchmark(s) nonsense" in proc.stderr


def test_only_reruns_the_named_benchmarks_and_carries_the_others_over(quick_results, tmp_path, monkeypatch):
    """`--only caption_speed` keeps the other sections of the results.json already there, saying when they
    were made; a results.json of the other mode (quick vs full) is not mixed in."""
    from benchmarks import run

    previous, _ = quick_results
    (tmp_path / "results.json").write_text(json.dumps(previous))
    monkeypatch.setattr(run, "run_one", lambda name, quick, from_run: {**previous[name], "rerun": True})
    merged = run.run_all(True, ["caption_speed"], None, tmp_path)
    assert merged["caption_speed"] == {**previous["caption_speed"], "rerun": True} and merged[
        "command"
    ].endswith("--quick --only caption_speed")
    for name in ("preprocess_memory", "pipeline_time"):
        assert merged[name] == previous[name]
        assert merged["carried_over"][name] == {
            "date_utc": previous["date_utc"],
            "versions": previous["versions"],
            "machine": previous["machine"]["cpu_model"],
        }
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["carried_over"] == merged["carried_over"]
    md = (tmp_path / "results.md").read_text()
    assert f"Carried over unchanged from earlier runs: preprocess_memory ({previous['date_utc']})" in md
    assert "## 1. Preprocessing memory" in md and "## 3. Smoke pipeline" in md

    again = run.run_all(True, ["pipeline_time"], None, tmp_path)  # carried twice: the original date stays
    assert again["carried_over"]["preprocess_memory"]["date_utc"] == previous["date_utc"]
    assert again["carried_over"]["caption_speed"]["date_utc"] == merged["date_utc"]

    full = run.run_all(False, ["caption_speed"], None, tmp_path)  # the file there is a quick one
    assert "carried_over" not in full and "preprocess_memory" not in full


def test_caption_speed_bandwidth_floor(quick_results):
    """The floor is weight bytes / measured bandwidth, and our step time is a multiple >= 1 of it."""
    results, md = quick_results
    floor = results["caption_speed"]["bandwidth_floor"]
    assert floor["copy_bytes_per_s"] > 1e8 and floor["triad_bytes_per_s"] > 1e8
    best = max(floor["copy_bytes_per_s"], floor["triad_bytes_per_s"])
    assert floor["floor_s_per_step"] == pytest.approx(floor["weight_bytes_per_step"] / best)
    for dec, multiple in floor["multiple_of_floor"].items():
        assert multiple == pytest.approx(floor["ours_s_per_step"][dec] / floor["floor_s_per_step"])
        assert multiple > 1, dec  # no decoder beats reading its weights once
    assert "bandwidth floor" in md


def test_serving_load_fields(quick_results):
    """The real model server answered every request of each level; the percentiles are ordered."""
    results, md = quick_results
    srv = results["serving_load"]["smoke"]
    assert srv["container_env"]["TS_MAX_REQUEST_SIZE"] and srv["archive_mb"] > 0
    for setting in srv["settings"]:
        assert setting["first_ping_s"] > 0 and setting["rss_before_mb"] > 100
        for level in setting["levels"]:
            assert level["errors"] == 0, level["first_errors"]
            assert 0 < level["p50_s"] <= level["p95_s"] <= level["p99_s"]
            assert level["throughput_rps"] > 0
    assert "model server under load" in md


@pytest.fixture(scope="module")
def int8_quick() -> dict:
    """The int8 decoding benchmark on its own in quick mode (a tiny random captioner, ~10 s)."""
    proc = bench("--quick", module="benchmarks.int8_decoding")
    assert proc.returncode == 0, outputs(proc)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHMARK-RESULT "))
    return json.loads(line.split(" ", 1)[1])


def test_int8_decoding_numbers_are_sane(int8_quick):
    """Every precision timed on every round, the ratios and shares computed from what was measured; bfloat16
    beside int8 exactly where the CPU has its kernels."""
    import math

    from helpers.caption.cpu_kernels import bfloat16_supported

    q8 = int8_quick
    assert q8["quick"] is True and q8["smoke"]["test_images"] > 0
    assert q8["bfloat16_supported"] == bfloat16_supported()
    measured = ["int8", *(["bfloat16"] if bfloat16_supported() else [])]
    assert list(q8["criterion_met"]) == measured
    n = q8["smoke"]["test_images"]
    for dec in ("greedy", "beam3"):
        d = q8["smoke"][dec]
        assert list(d["median_s"]) == ["float32", *measured]
        for precision in d["median_s"]:
            times = d["all_s"][precision]
            assert len(times) == q8["repeats"] and all(math.isfinite(t) and t > 0 for t in times)
            assert min(times) <= d["median_s"][precision] <= max(times)
            assert math.isfinite(d["bleu4"][precision]) and 0 <= d["bleu4"][precision] <= 1
        for precision in measured:
            p = d[precision]
            assert p["speedup"] == pytest.approx(d["median_s"]["float32"] / d["median_s"][precision])
            assert p["bleu4_change"] == pytest.approx(d["bleu4"][precision] - d["bleu4"]["float32"])
            assert 0 <= p["identical"] <= 1
            # A share of whole captions; the examples are captions that differ, at most three.
            differ = n - round(p["identical"] * n)
            assert p["identical"] * n == pytest.approx(n - differ)
            assert len(p["examples"]) == min(differ, 3) and all(a != b for a, b in p["examples"])
    full = q8["full_shapes"]
    for precision, width in (("int8", 4), ("bfloat16", 2)):
        if precision in measured:
            assert full["weight_bytes_per_step"][precision] * width == pytest.approx(
                full["weight_bytes_per_step"]["float32"], abs=width
            )
    for precision in ["float32", *measured]:
        assert full["step_s"][precision] > 0
        floor = full["weight_bytes_per_step"][precision] / full["bandwidth_bytes_per_s"]
        assert full["floor_s"][precision] == pytest.approx(floor)
        assert full["multiple_of_floor"][precision] == pytest.approx(full["step_s"][precision] / floor)
    for precision in measured:
        assert full["speedup"][precision] == pytest.approx(
            full["step_s"]["float32"] / full["step_s"][precision]
        )
        assert q8["criterion_met"][precision] == all(
            q8["smoke"][d][precision]["speedup"] >= 1.5
            and abs(q8["smoke"][d][precision]["bleu4_change"]) <= 0.01
            and q8["smoke"][d][precision]["identical"] >= 0.9
            for d in ("greedy", "beam3")
        )


def test_int8_decoding_section_is_rendered_from_its_numbers(int8_quick, tmp_path, monkeypatch):
    """`--only int8_decoding` on top of the committed results: section 5 and its summary rows come from the
    JSON (a changed number changes the text, the verdict follows the criterion), the other sections stay."""
    from benchmarks import report, run

    committed = json.loads((ROOT / "benchmarks" / "results.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps(committed))
    monkeypatch.setattr(run, "run_one", lambda name, quick, from_run: {**int8_quick, "benchmark_wall_s": 9.0})
    merged = run.run_all(committed["quick"], ["int8_decoding"], None, tmp_path)
    kept = [name for name in run.BENCHMARKS if name != "int8_decoding" and name in committed]
    assert kept and all(merged[name] == committed[name] for name in kept)
    md = (tmp_path / "results.md").read_text()
    # A section measured on another CPU says so in the header (the machine line is this run's).
    merged["carried_over"]["caption_speed"]["machine"] = "Another CPU"
    assert "caption_speed (" in report.carried_note(merged) and ", on Another CPU)" in report.carried_note(
        merged
    )
    assert "## 5. 8-bit CPU decoding" in md and md.count("\n## ") == len(kept) + 2  # + the summary
    greedy = int8_quick["smoke"]["greedy"]
    assert f"| greedy | {greedy['median_s']['float32']:.3f} | {greedy['median_s']['int8']:.3f} |" in md
    assert f"int8 weights, smoke captioner, greedy | {greedy['int8']['speedup']:.2f}x | >= 1.5x |" in md
    if int8_quick["bfloat16_supported"]:
        b = greedy["bfloat16"]
        assert (
            f"| greedy | {greedy['median_s']['float32']:.3f} | {greedy['median_s']['bfloat16']:.3f} |" in md
        )
        assert f"float32 / bfloat16 weights, smoke captioner, greedy | {b['speedup']:.2f}x | >= 1.5x |" in md

    q8 = json.loads(json.dumps(int8_quick))
    for dec in ("greedy", "beam3"):
        q8["smoke"][dec]["int8"].update(
            speedup=1.1 if dec == "greedy" else 2.0, identical=0.95, bleu4_change=0.002
        )
    q8["criterion_met"]["int8"] = False
    text = report.int8_section(q8)
    assert text.startswith("## 5. 8-bit CPU decoding: not shipped")
    assert "Shipped: no (greedy 1.10x < 1.5x); BLEU-4 and identical captions within the criterion." in text
    q8["smoke"]["greedy"]["int8"]["speedup"], q8["criterion_met"]["int8"] = 1.6, True
    assert report.int8_section(q8).startswith("## 5. 8-bit CPU decoding: criterion met")


def test_int8_decoding_in_the_quick_run(quick_results):
    results, md = quick_results
    assert results["int8_decoding"]["quick"] is True and "## 5. 8-bit CPU decoding" in md


def test_pipeline_time_covers_every_notebook_of_the_series():
    """`make run` runs every numbered notebook: the pipeline benchmark times them all (it had left 08 out)."""
    from benchmarks import pipeline_time

    numbered = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")}
    assert numbered and numbered <= set(pipeline_time.SERIES)
    assert pipeline_time.timable(sorted(numbered)) == sorted(numbered)


def test_caption_step_counts_the_same_epoch_four_ways(quick_results):
    """Bucketing and the gathered head each cut the FLOPs of a step; every variant covers every pair once an
    epoch, the same loss comes out both ways, and the ratios are computed from what was measured."""
    import math

    for key in ("full", "smoke"):
        shapes = quick_results[0]["caption_step"][key]
        v = shapes["variants"]
        assert list(v) == ["before", "gathered head", "bucketed batches", "after"]
        assert shapes["loss_difference_same_batch"] < 1e-5
        steps = math.ceil(shapes["pairs"] / shapes["batch"])
        assert all(row["steps_per_epoch"] == steps for row in v.values())
        # Bucketing pads less, the gather applies the head only where a caption token is predicted.
        assert v["bucketed batches"]["mean_padded_tokens"] < v["before"]["mean_padded_tokens"]
        assert v["after"]["mean_padded_tokens"] == v["bucketed batches"]["mean_padded_tokens"]
        assert v["gathered head"]["head_positions_per_pair"] == pytest.approx(
            shapes["mean_caption_tokens"], rel=0.02
        )  # a mean of batch means
        prefix_and_pad = shapes["prefix"] + v["before"]["mean_padded_tokens"]
        assert v["before"]["head_positions_per_pair"] == pytest.approx(prefix_and_pad)
        flops = {name: row["gflop_per_step"] for name, row in v.items()}
        assert flops["after"] < min(flops["gathered head"], flops["bucketed batches"])
        assert max(flops["gathered head"], flops["bucketed batches"]) < flops["before"]
        for row in v.values():
            assert len(row["all_s"]) == shapes["rounds"] and all(t > 0 for t in row["all_s"])
            assert row["step_s"] == pytest.approx(sum(row["all_s"]) / len(row["all_s"]))
            assert row["flop_ratio"] == pytest.approx(flops["before"] / row["gflop_per_step"])
            assert row["speedup"] == pytest.approx(
                v["before"]["epoch_s_projected"] / row["epoch_s_projected"]
            )


def test_caption_step_section_is_rendered_from_its_numbers(quick_results):
    from benchmarks import report

    results, md = quick_results
    step = json.loads(json.dumps(results["caption_step"]))
    assert "## 6. The captioner's training step" in md
    after = step["full"]["variants"]["after"]
    assert f"{after['gflop_per_step']:,.1f} | {after['step_s']:.3f} |" in md
    after["flop_ratio"], after["speedup"] = 1.23, 4.56
    text = report.caption_step_section(step)
    assert "| after: bucketed batches + gathered head |" in text and "| 1.23x | 4.56x |" in text
    rows = report.caption_step_rows(step)
    assert rows[0][1].endswith("x / 1.23x fewer)") and rows[1][1].endswith("x / 4.56x faster)")
