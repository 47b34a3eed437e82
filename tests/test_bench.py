"""`glcic-fast bench`: the real command on the CPU at a tiny size, its files, and its helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from glcic_fast import bench

RUN_CLI = "import sys; from glcic_fast.cli import main; sys.exit(main(sys.argv[1:]))"
STAT_FIELDS = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s", "gflops", "iters", "first_call_ms")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One real run: torch-fp32 and onnxruntime measured, triton (no GPU, no interpreter) not."""
    out = tmp_path_factory.mktemp("bench")
    paths = {"json": out / "r.json", "markdown": out / "r.md", "plot": out / "r.png"}
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)  # tests/conftest.py sets it; the command must run without it
    cmd = [
        sys.executable, "-c", RUN_CLI, "bench", "--device", "cpu",
        "--backends", "torch-fp32,onnxruntime,triton", "--sizes", "32x32", "--batch-sizes", "1,2",
        "--iters", "3", "--warmup", "1", "--no-progress",
        "--json", str(paths["json"]), "--markdown", str(paths["markdown"]), "--plot", str(paths["plot"]),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return proc, paths


def test_bench_command_succeeds_and_prints_table(bench_run):
    proc, _ = bench_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "p50 ms" in proc.stdout and "onnxruntime" in proc.stdout
    assert "not measured:" in proc.stdout and "triton" in proc.stdout.split("not measured:")[1]


def test_bench_json_has_one_row_per_case_with_statistics(bench_run):
    proc, paths = bench_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(paths["json"].read_text())
    assert report["schema"] == bench.SCHEMA
    machine = report["machine"]
    for key in ("cpu_model", "cpu_count", "torch", "onnxruntime", "date", "device"):
        assert key in machine, key
    assert machine["device"] == "cpu" and machine["torch"]
    assert machine["cpu_isa"] and machine["cpu_gemm_peaks"]["fp32"] and machine["peak_tflops"]["fp32"] > 0

    rows = report["rows"]
    keys = [(r["backend"], r["size"], r["batch"], r["mode"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate rows"
    expected = {(b, "32x32", n, m) for b in ("torch-fp32", "onnxruntime", "triton") for n in (1, 2)
                for m in ("network", "end-to-end")}
    assert set(keys) == expected

    flops_1 = 2 * 496_736 * 32 * 32
    for r in rows:
        if r["backend"] == "triton":
            continue
        assert r["status"] == "ok", r
        assert r["precision"] == "fp32"
        for field in STAT_FIELDS:
            assert isinstance(r[field], (int, float)) and r[field] > 0, (field, r)
        assert r["iters"] >= 3
        assert r["min_ms"] <= r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["min_ms"] <= r["mean_ms"]
        assert r["flops"] == flops_1 * r["batch"]
        assert r["gflops"] == pytest.approx(r["flops"] / (r["mean_ms"] * 1e-3) / 1e9)
        assert r["images_per_s"] == pytest.approx(r["batch"] * 1e3 / r["mean_ms"])
        # % of the CPU's fp32 GEMM peak, measured at the start of the run (bench/cpu_peak.py)
        assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / (machine["peak_tflops"]["fp32"] * 1e3))
        assert r["speedup"] == pytest.approx(
            next(b["p50_ms"] for b in rows if b["backend"] == "torch-fp32" and
                 (b["size"], b["batch"], b["mode"]) == (r["size"], r["batch"], r["mode"])) / r["p50_ms"]
        )


def test_unavailable_backend_is_listed_with_reason(bench_run):
    proc, paths = bench_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(paths["json"].read_text())
    triton_rows = [r for r in report["rows"] if r["backend"] == "triton"]
    assert len(triton_rows) == 4
    for r in triton_rows:
        assert r["status"] == "unavailable"
        assert r["reason"] and isinstance(r["reason"], str)
        assert "p50_ms" not in r
    listed = [u for u in report["unavailable"] if u["backend"] == "triton"]
    assert len(listed) == 1 and listed[0]["reason"] == triton_rows[0]["reason"]
    assert set(listed[0]["modes"]) == {"network", "end-to-end"}


def test_markdown_and_plot_are_written(bench_run):
    proc, paths = bench_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = paths["markdown"].read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert table_lines[0].startswith("| backend | prec | mode | size | batch | p50 ms")
    assert len(table_lines) == 1 + 8  # header + 2 backends x 2 batches x 2 modes
    assert "## Not measured" in md and "`triton`" in md.split("## Not measured")[1]
    png = paths["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    leftovers = [p.name for p in paths["json"].parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


def test_bad_size_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    from glcic_fast.cli import main

    target = tmp_path / "r.json"
    rc = main(["bench", "--device", "cpu", "--sizes", "30x30", "--json", str(target)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "glcic-fast bench: error:" in err and "multiples of 4" in err
    assert not target.exists()


def test_unknown_backend_is_a_usage_error(capsys):
    from glcic_fast.cli import main

    rc = main(["bench", "--device", "cpu", "--backends", "torch-fp32,warp-drive"])
    assert rc == 2
    assert "unknown backend 'warp-drive'" in capsys.readouterr().err


def test_parse_variant():
    v = bench.parse_variant("torch-fp16")
    assert (v.backend, v.precision, dict(v.options)) == ("torch", "fp16", {})
    v = bench.parse_variant("torch-compile")
    assert v.backend == "torch" and dict(v.options) == {"compile": True}
    assert v.resolved_precision("cpu") == "fp32" and v.resolved_precision("cuda") == "fp16"
    v = bench.parse_variant("torch-fp32-nchw")
    assert dict(v.options) == {"channels_last": False}
    assert bench.parse_variant("onnxruntime").resolved_precision("cpu") == "fp32"
    assert bench.parse_variant("tensorrt").resolved_precision("cuda") == "fp16"
    with pytest.raises(ValueError, match="unknown part 'nchw'"):
        bench.parse_variant("onnxruntime-nchw")
    assert [v.label for v in bench.parse_variants(None)] == list(bench.DEFAULT_VARIANTS)


def test_parse_sizes_and_batches():
    assert bench.parse_sizes("256x256, 512X384") == [(256, 256), (512, 384)]
    assert bench.parse_sizes("256") == [(256, 256)]  # as users type it
    for bad in ("258x256", "258", "256x", "x256"):
        with pytest.raises(ValueError):
            bench.parse_sizes(bad)
    assert bench.parse_batch_sizes("1,8,32") == [1, 8, 32]
    with pytest.raises(ValueError):
        bench.parse_batch_sizes("0")


def test_latency_stats_percentiles_and_peak():
    times = [float(t) for t in range(1, 101)]  # 1..100 ms
    s = bench.latency_stats(times, batch=4, flops=2e9, peak_tflops=1.0)
    assert s["min_ms"] == 1 and s["iters"] == 100
    assert s["p50_ms"] == pytest.approx(50.5) and s["p90_ms"] == pytest.approx(90.1)
    assert s["p99_ms"] == pytest.approx(99.01) and s["mean_ms"] == pytest.approx(50.5)
    assert s["images_per_s"] == pytest.approx(4 / 0.0505)
    assert s["gflops"] == pytest.approx(2.0 / 0.0505)
    assert s["pct_peak"] == pytest.approx(100 * (2.0 / 0.0505) / 1000)


def test_results_stem_names_the_machine():
    gpu = {"gpu_name": "NVIDIA H100 80GB HBM3", "cpu_model": "x"}
    assert bench.results_stem("cuda", gpu, "2026-01-02") == "nvidia-h100-80gb-hbm3-2026-01-02"
    assert bench.results_stem("cpu", {"cpu_model": "AMD EPYC 9654 96-Core"}, "2026-01-02") == "cpu-amd-epyc-9654-96-core-2026-01-02"
    assert bench.gpu_peak_tflops("NVIDIA H100 PCIe")["fp16"] < bench.gpu_peak_tflops("NVIDIA H100 80GB HBM3")["fp16"]
    assert bench.gpu_peak_tflops("NVIDIA H200")["bf16"] == pytest.approx(989.4)
    assert bench.gpu_peak_tflops("Tesla T4") is None


def test_time_budget_keeps_unstarted_cases_as_skipped_rows():
    rows = bench.run_benchmark("cpu", "onnxruntime,torch-fp16", "32x32", [1, 2], warmup=0, iters=1,
                               time_budget=0.0, progress=False)
    assert len(rows) == 2 * 2 * 2
    fp16 = [r for r in rows if r["backend"] == "torch-fp16"]
    ort = [r for r in rows if r["backend"] == "onnxruntime"]
    assert all(r["status"] == "skipped" and "time budget" in r["reason"] for r in ort)
    # fp16 convolutions do not run on the CPU: that is reported as unavailable (or skipped
    # first when the budget is already used up), never silently dropped
    assert all(r["status"] in ("unavailable", "skipped") and r["reason"] for r in fp16)


@pytest.mark.parametrize("interleave", [False, True])
def test_run_benchmark_function_both_schedules(interleave):
    rows = bench.run_benchmark("cpu", "onnxruntime,torch-fp32", "16x16", [1], warmup=0, iters=2,
                               end_to_end=False, interleave=interleave, progress=False)
    assert [(r["backend"], r["mode"], r["status"]) for r in rows] == [
        ("onnxruntime", "network", "ok"), ("torch-fp32", "network", "ok")]
    assert all(r["iters"] == 2 and r["p50_ms"] > 0 for r in rows)
    assert rows[1]["speedup"] == pytest.approx(1.0) and rows[0]["baseline"] == "torch-fp32"
