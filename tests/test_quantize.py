"""int8 quantization (OpenVINO/NNCF, onnxruntime static QDQ) and the accuracy gate, on the packaged
model and the packaged photos. CI keeps calibration tiny: one 64-px crop per calibration photo,
the gate on the held-out photos at 64 px only (the model's trained size)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from glcic_fast import accuracy_gate, backends, quantize
from glcic_fast.api import load_folded
from glcic_fast.photo_samples import CALIBRATION_PHOTOS, HELDOUT_PHOTOS, InputConvention, Sample, photo_files, photo_samples
from glcic_fast.preprocess import network_input
from glcic_fast.resolve import resolve_model

RUNTIMES = [pytest.param(r, marks=pytest.mark.skipif(backends.unavailable_reason(r, "cpu") is not None, reason=f"{r} missing"))
            for r in ("openvino", "onnxruntime")]


@pytest.fixture(scope="module")
def packaged():
    layers, mean, fill, meta = resolve_model(None)
    convention = InputConvention.from_metadata(mean, fill, meta)
    return layers, convention


@pytest.fixture(scope="module")
def gate_setup(packaged):
    layers, convention = packaged
    samples = accuracy_gate.heldout_samples(convention, [convention.trained_size])
    return samples, load_folded(layers, "onnxruntime", "cpu", "fp32")


def small_calibration(convention):
    return photo_samples(CALIBRATION_PHOTOS, [convention.trained_size], 1, convention)


def constant_images(convention, n=4):
    """A deliberately broken calibration set: flat grey images (with a hole)."""
    s = convention.trained_size
    out = []
    for _ in range(n):
        rgb = np.full((s, s, 3), 0.5, np.float32)
        hole = np.zeros((s, s), bool)
        hole[s // 4 : s // 2, s // 4 : s // 2] = True
        out.append(Sample(rgb, hole, network_input(rgb, hole, convention.mean, convention.fill, (s, s))[None]))
    return out


def test_calibration_and_heldout_photos_are_disjoint():
    calib = {p.name for p in photo_files(CALIBRATION_PHOTOS)}
    held = {p.name for p in photo_files(HELDOUT_PHOTOS)}
    assert len(calib) >= 10 and len(held) >= 10 and not calib & held


def test_samples_are_deterministic_and_holes_as_in_use(packaged):
    _, convention = packaged
    a = photo_samples(HELDOUT_PHOTOS, [64], 1, convention, seed=3)
    b = photo_samples(HELDOUT_PHOTOS, [64], 1, convention, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.x, y.x)
    for s in a:
        ys, xs = np.nonzero(s.hole)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert 24 <= h <= 32 and 24 <= w <= 32 and s.hole.sum() == h * w  # one 24-32 px rectangle at 64 px
        assert np.all(s.x[0, 3][s.hole] == 1) and np.all(s.x[0, :3][:, s.hole] == 0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_gate_fails_a_broken_quantization(runtime, packaged, gate_setup):
    layers, convention = packaged
    samples, reference = gate_setup
    broken = load_folded(layers, runtime, "cpu", "int8", convention=convention, calibration=constant_images(convention),
                         cache=False)
    report = accuracy_gate.evaluate(broken, reference, convention, samples)
    assert not report.passed, report.summary()
    assert any("worst sample" in f for f in report.failures), report.failures


@pytest.mark.skipif(backends.unavailable_reason("openvino", "cpu") is not None, reason="openvino missing")
def test_gate_passes_int8_calibrated_on_photos(packaged, gate_setup):
    layers, convention = packaged
    samples, reference = gate_setup
    good = load_folded(layers, "openvino", "cpu", "int8", convention=convention, calibration=small_calibration(convention),
                       cache=False)
    report = accuracy_gate.evaluate(good, reference, convention, samples)
    assert report.passed, report.summary()
    # and the gate is not vacuous: int8 differs from fp32, by less than the limits
    r = report.sizes[0]
    assert accuracy_gate.MIN_MEAN_PSNR_DB <= r.psnr_vs_fp32_mean < accuracy_gate.PSNR_CAP_DB


def test_gate_passes_fp32_against_itself(packaged, gate_setup):
    layers, convention = packaged
    samples, reference = gate_setup
    report = accuracy_gate.evaluate(reference, reference, convention, samples)
    assert report.passed and report.sizes[0].psnr_vs_fp32_worst == accuracy_gate.PSNR_CAP_DB


@pytest.mark.skipif(backends.unavailable_reason("openvino", "cpu") is not None, reason="openvino missing")
def test_int8_model_is_cached_per_model_and_built_once(packaged, tmp_path, monkeypatch):
    layers, convention = packaged
    monkeypatch.setenv(quantize.CACHE_ENV, str(tmp_path))
    calib = small_calibration(convention)[:4]
    first = quantize.openvino_int8(layers, convention, samples=calib)
    stamp = first.stat().st_mtime_ns
    again = quantize.openvino_int8(layers, convention, samples=calib)
    assert again == first and again.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert first.with_suffix(".bin").is_file()
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    other = InputConvention(convention.mean, convention.fill, 128)
    assert quantize.model_key(layers, other) != quantize.model_key(layers, convention)
    assert quantize.openvino_int8(layers, convention, samples=calib[:2]) != first  # other calibration, other entry
    assert quantize.openvino_int8(layers, convention, samples=calib, recipe="all") != first  # other recipe, other entry
    with pytest.raises(ValueError, match="recipe"):
        quantize.openvino_int8(layers, convention, samples=calib, recipe="most")


@pytest.mark.skipif(backends.unavailable_reason("openvino", "cpu") is not None, reason="openvino missing")
def test_failed_openvino_save_leaves_nothing_in_the_cache(packaged, tmp_path, monkeypatch):
    """A save that fails after writing (a full disk, say) leaves no partial IR files in the cache."""
    import openvino

    layers, convention = packaged
    monkeypatch.setenv(quantize.CACHE_ENV, str(tmp_path))
    real_save = openvino.save_model

    def save_then_fail(model, path, *args, **kwargs):
        real_save(model, path, *args, **kwargs)
        raise OSError("no space left on device")

    monkeypatch.setattr(openvino, "save_model", save_then_fail)
    with pytest.raises(OSError, match="no space"):
        quantize.openvino_int8(layers, convention, samples=small_calibration(convention)[:2])
    assert not (tmp_path / "int8").exists() or not list((tmp_path / "int8").iterdir())


def test_onnxruntime_int8_killed_mid_build_leaves_only_atomic_temporaries(tmp_path):
    """A process killed while quantizing (no cleanup runs) leaves no float model in the cache: only
    an atomic write's temporary, which the next write of that entry removes."""
    from glcic_fast.atomic import _TEMP

    script = """
import os
from glcic_fast import quantize
from glcic_fast.photo_samples import CALIBRATION_PHOTOS, InputConvention, photo_samples
from glcic_fast.resolve import resolve_model
layers, mean, fill, meta = resolve_model(None)
convention = InputConvention.from_metadata(mean, fill, meta)
sample = photo_samples(CALIBRATION_PHOTOS, [convention.trained_size], 1, convention)[0]
class KilledInCalibration:  # its pixels are read once for the cache key, then by the calibration
    reads = 0
    @property
    def x(self):
        KilledInCalibration.reads += 1
        if KilledInCalibration.reads > 1:
            os._exit(3)  # as SIGKILL: no finally, no atexit
        return sample.x
quantize.onnxruntime_int8(layers, convention, samples=[sample, KilledInCalibration()])
"""
    env = {**os.environ, quantize.CACHE_ENV: str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    left = [p.name for p in (tmp_path / "int8").iterdir()]
    assert left and all(_TEMP.match(name) and re.search(r"\.onnx\.\d+-", name) for name in left), left


def test_one_cache_folder_rule(tmp_path, monkeypatch):
    """GLCIC_FAST_CACHE, then $XDG_CACHE_HOME/glcic-fast, then ~/.cache/glcic-fast, for quantized
    models and TensorRT timing caches alike; the server environment ignores GLCIC_FAST_CACHE."""
    from glcic_fast.export.tensorrt import default_timing_cache_path
    from glcic_fast.serving import default_env_dir

    monkeypatch.delenv(quantize.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert quantize.cache_dir() == tmp_path / "xdg" / "glcic-fast"
    assert default_timing_cache_path("10.1", "9.0").parent == tmp_path / "xdg" / "glcic-fast"
    monkeypatch.setenv(quantize.CACHE_ENV, str(tmp_path / "run"))
    assert quantize.cache_dir() == tmp_path / "run"
    assert default_timing_cache_path("10.1", "9.0").parent == tmp_path / "run"
    assert default_env_dir().parent == tmp_path / "xdg" / "glcic-fast"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv(quantize.CACHE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert quantize.cache_dir() == tmp_path / "home" / ".cache" / "glcic-fast" == default_env_dir().parent
