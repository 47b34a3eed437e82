"""precision="auto" on a CPU: the fastest variant that passes the accuracy gate on the CPU at hand.

The choice logic is tested for other CPUs by naming their flags (GLCIC_FAST_CPU_FLAGS); the gate
and the quantization run for real, kept small for CI (one calibration crop per photo, the gate
at the model's trained size, 64 px, only).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import glcic_fast
from glcic_fast import accuracy_gate, backends, cpu_isa, quantize
from glcic_fast.backends import cpu_auto
from glcic_fast.cli import main
from glcic_fast.photo_samples import InputConvention
from glcic_fast.resolve import resolve_model

AVX2 = "fpu sse sse2 avx fma avx2"
AVX512_BF16 = AVX2 + " avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
AMX = AVX512_BF16 + " amx_tile amx_bf16 amx_int8"
HAS_OPENVINO = backends.unavailable_reason("openvino", "cpu") is None


@pytest.mark.parametrize("flags,tier,summary", [
    (AVX2, "avx2", "AVX2 only, no AMX"),
    (AVX2 + " avx_vnni", "vnni", "AVX2 (VNNI), no AMX"),
    (AVX512_BF16, "avx512-bf16", "AVX-512 (BF16, VNNI), no AMX"),
    (AMX, "amx", "AVX-512 (BF16, VNNI), AMX"),
])
def test_isa_tiers(flags, tier, summary):
    isa = cpu_isa.isa_from_flags(flags.split())
    assert isa.tier == tier and isa.summary() == summary


def test_detect_reads_this_cpu_and_the_override(monkeypatch):
    monkeypatch.delenv(cpu_isa.FLAGS_ENV, raising=False)
    here = cpu_isa.detect()
    if sys.platform.startswith("linux"):
        flags = open("/proc/cpuinfo").read()
        assert here.avx2 == (" avx2" in flags) and here.avx512_bf16 == ("avx512_bf16" in flags)
    monkeypatch.setenv(cpu_isa.FLAGS_ENV, AMX)
    assert cpu_isa.detect().tier == "amx"


def test_cpu_model_is_the_real_cpu_even_with_flags_overridden(monkeypatch):
    from glcic_fast.bench.machine import machine_info

    monkeypatch.delenv(cpu_isa.FLAGS_ENV, raising=False)
    name = cpu_isa.cpu_model()
    assert name and name == (cpu_isa.detect().model or name)
    monkeypatch.setenv(cpu_isa.FLAGS_ENV, AVX2)
    assert cpu_isa.cpu_model() == name == machine_info("cpu", measure_cpu_peak=False)["cpu_model"]


def test_candidate_order_per_cpu():
    for flags in (AVX2, AVX512_BF16, AMX):
        order = cpu_auto.candidates(cpu_isa.isa_from_flags(flags.split()))
        assert order[0] == ("openvino", "int8") and order[-1] == cpu_auto.EXACT
    # bf16 only where it is native; on AMX it runs on the tile units, ahead of onnxruntime int8
    assert all(p != "bf16" for _, p in cpu_auto.candidates(cpu_isa.isa_from_flags(AVX2.split())))
    amx = cpu_auto.candidates(cpu_isa.isa_from_flags(AMX.split()))
    assert amx.index(("openvino", "bf16")) < amx.index(("onnxruntime", "int8"))
    assert cpu_auto.candidates(cpu_isa.isa_from_flags(AMX.split()), "onnxruntime") == [("onnxruntime", "int8"), cpu_auto.EXACT]


@pytest.fixture
def small_gate(monkeypatch, tmp_path):
    """The real gate and calibration, at CI size, with a cache of this test's own."""
    monkeypatch.setattr(accuracy_gate, "BENCH_SIZE", 64)
    monkeypatch.setattr(quantize, "CALIBRATION_CROPS_PER_PHOTO", 1)
    monkeypatch.setenv(quantize.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(cpu_auto.AUTO_ENV, raising=False)
    layers, mean, fill, meta = resolve_model(None)
    return layers, InputConvention.from_metadata(mean, fill, meta), tmp_path


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_auto_picks_gated_int8_then_reuses_the_verdict(small_gate, monkeypatch, capsys):
    layers, convention, cache = small_gate
    monkeypatch.setenv(cpu_isa.FLAGS_ENV, AVX512_BF16)
    choice = cpu_auto.choose(layers, convention, backend="openvino")
    assert (choice.backend, choice.precision) == ("openvino", "int8"), choice.describe()
    recipe = choice.options["recipe"]
    assert "gate passes" in choice.considered[f"openvino int8 ({recipe})"]
    verdicts = sorted((cache / "gate").glob("*.json"))
    assert len(verdicts) == len(choice.considered) and all("avx512-bf16" in v.name for v in verdicts)
    verdicts = [v for v in verdicts if f"int8-{recipe}-" in v.name]
    stamp = verdicts[0].stat().st_mtime_ns
    again = cpu_auto.choose(layers, convention, backend="openvino", measure=False)  # cache only
    assert (again.backend, again.precision) == ("openvino", "int8") and verdicts[0].stat().st_mtime_ns == stamp

    # the API: load() with the defaults runs that choice; an explicit fp32 is the exact path
    completer = glcic_fast.load(backend="openvino")
    assert completer.choice is not None and completer.backend.precision == "int8"
    exact = glcic_fast.load(precision="fp32")
    assert exact.choice is None and (exact.backend.name, exact.backend.precision) == ("onnxruntime", "fp32")
    image = (np.dstack([*np.meshgrid(np.arange(64), np.arange(64)), np.full((64, 64), 45)]) * 2).astype(np.uint8)
    mask = np.zeros(image.shape[:2], bool)
    mask[20:44, 20:44] = True
    out = completer.complete(image, mask)
    assert np.array_equal(out[~mask], image[~mask]) and not np.array_equal(out[mask], image[mask])

    # the command reports the same choice from the cached verdict
    assert main(["quantize", "--backend", "openvino"]) == 0
    printed = capsys.readouterr().out
    assert "AVX-512 (BF16, VNNI), no AMX" in printed and "picks: openvino int8" in printed


def test_env_asks_for_the_exact_path(small_gate, monkeypatch):
    layers, convention, _ = small_gate
    monkeypatch.setenv(cpu_auto.AUTO_ENV, "fp32")
    choice = cpu_auto.choose(layers, convention)
    assert (choice.backend, choice.precision) == cpu_auto.EXACT


def test_without_openvino_auto_falls_back_to_onnxruntime(small_gate):
    """A default install (no openvino extra): the choice runs with onnxruntime alone."""
    _, _, cache = small_gate
    code = (
        "import sys; sys.modules['openvino'] = None\n"  # as if not installed: import fails
        "from glcic_fast import accuracy_gate, quantize\n"
        "accuracy_gate.BENCH_SIZE = 64; quantize.CALIBRATION_CROPS_PER_PHOTO = 1\n"
        "import glcic_fast\n"
        "c = glcic_fast.load()\n"
        "print(c.backend.name, c.backend.precision); print(c.choice.describe())\n"
    )
    env = {**os.environ, quantize.CACHE_ENV: str(cache), cpu_isa.FLAGS_ENV: AVX512_BF16}
    env.pop(cpu_auto.AUTO_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, *rest = out.stdout.splitlines()
    assert first in ("onnxruntime int8", "onnxruntime fp32"), out.stdout
    assert "openvino int8: not available" in out.stdout and "onnxruntime int8 (all): gate" in out.stdout


def test_quantize_command_for_a_missing_runtime_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: import fails
    monkeypatch.delenv(cpu_auto.AUTO_ENV, raising=False)
    assert main(["quantize", "--backend", "openvino"]) == 1
    err = capsys.readouterr().err
    assert "glcic-fast quantize: error: no CPU variant can run here" in err, err
    assert "pip install 'glcic-fast[openvino]'" in err and "Traceback" not in err


def test_auto_backend_with_an_explicit_precision_takes_a_backend_that_has_it():
    assert backends.resolve("auto", "cpu", "fp32") == "onnxruntime"  # the exact path
    assert backends.resolve("auto", "cpu", "int8") == "onnxruntime"
    assert backends.resolve("auto", "cpu", "bf16") == ("openvino" if HAS_OPENVINO else "torch")


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_int8_that_misses_the_gate_falls_back_to_float_first_and_last_layers(small_gate, monkeypatch):
    """When every-conv-int8 fails the gate, the choice keeps the first and last conv in float
    rather than dropping int8 (the failing verdict is planted in the cache; the fallback runs)."""
    layers, convention, cache = small_gate
    monkeypatch.setenv(cpu_isa.FLAGS_ENV, AVX512_BF16)
    isa = cpu_isa.detect()
    failing = accuracy_gate.GateReport([accuracy_gate.SizeResult(64, 48, 18.3, 17.0, 31.0, 12.0)])
    assert not failing.passed
    path = cpu_auto._verdict_path(quantize.model_key(layers, convention), "openvino", "int8", isa, "all")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(failing.to_dict()))
    choice = cpu_auto.choose(layers, convention, backend="openvino")
    assert (choice.backend, choice.precision, choice.options) == ("openvino", "int8", {"recipe": "first-last"})
    assert choice.considered["openvino int8 (all)"].startswith("gate fails")
    assert choice.considered["openvino int8 (first-last)"].startswith("gate passes")
