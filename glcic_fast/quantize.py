"""int8 post-training quantization of the completion network, cached on disk.

Two runtimes, one recipe, both on the sub-pixel ONNX graph (``onnx_graph``; int8 transposed
convolutions are poorly supported, the sub-pixel form is plain convolutions):

* OpenVINO: NNCF's post-training quantization (per-channel symmetric int8 weights, int8
  activations, fast bias correction) -> an OpenVINO IR (.xml + .bin);
* onnxruntime: its static quantization (QDQ format, per-channel int8 weights, asymmetric
  uint8 activations, min/max calibration) -> a quantized ONNX file.

Calibration runs the float network on real photos with holes drawn as in use
(``photo_samples``: the packaged ``calibration`` photos, never the gate's held-out ones).

Recipes (which convs stay in float; every other conv is int8):

* ``"all"``: none -- the fastest;
* ``"first-last"``: the first conv (which sees the raw image and the hole mask) and the last one
  (whose output goes through the sigmoid to pixels), ~2% of the MACs -- the classic sensitive
  pair. On the packaged model, with one draw of calibration and held-out crops, "all" missed the
  gate (NNCF: 0.135 dB hole-PSNR loss at 256 px, worst sample 32.6 dB from fp32) and
  "first-last" passed; with the shipped draw both pass (bench/results/cpu-accuracy-*.md). So the
  automatic choice (``backends.cpu_auto``) tries "all" first and falls back to "first-last"
  when the gate fails, per model, rather than dropping int8. Loading int8 directly uses
  ``DEFAULT_RECIPE`` ("first-last", the safer one).

On CPUs without VNNI/AMX, int8 dot products go through AVX2's ``vpmaddubsw``, whose 16-bit
intermediate sums overflow with full 8-bit weights; NNCF's overflow fix and onnxruntime's
``reduce_range`` (7-bit weights) are enabled there and disabled where VNNI or AMX makes them
unnecessary (more accurate).

Quantized models are cached per (model, recipe, runtime version, overflow fix):
``cache.cache_dir()`` (``GLCIC_FAST_CACHE``, else ``$XDG_CACHE_HOME/glcic-fast`` or
``~/.cache/glcic-fast``), written atomically, built once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .atomic import atomic_write_bytes
from .cache import CACHE_ENV, cache_dir
from .cpu_isa import CpuIsa, detect
from .errors import BackendUnavailable
from .onnx_graph import INPUT_NAME, build_onnx_model
from .photo_samples import CALIBRATION_PHOTOS, InputConvention, Sample, calibration_sizes, photo_samples

if TYPE_CHECKING:
    from .folding import FoldedLayer

RECIPE = "int8-r2"  # bump when the quantization settings change: old cache entries are then not reused
RECIPES = ("all", "first-last")  # the automatic choice's order: fastest first
DEFAULT_RECIPE = "first-last"
DEFAULT_CROPS_PER_PHOTO = 3  # x 15 photos = 45 samples over three crop sizes
CALIBRATION_CROPS_PER_PHOTO = DEFAULT_CROPS_PER_PHOTO  # tests lower it (and the cache key says so)


def model_key(layers: Sequence["FoldedLayer"], convention: InputConvention) -> str:
    """A short hash of the folded weights and the input convention: the cache key of a model."""
    h = hashlib.sha256()
    for layer in layers:
        for t in (layer.weight, layer.bias, layer.post_scale, layer.post_shift):
            if t is not None:
                h.update(np.ascontiguousarray(t.detach().cpu().numpy(), np.float32).tobytes())
        h.update(repr((layer.stride, layer.dilation, layer.padding, layer.activation, layer.transposed)).encode())
    h.update(repr((convention.mean, convention.fill, convention.trained_size)).encode())
    return h.hexdigest()[:16]


def float_layers(recipe: str, n_layers: int) -> tuple[int, ...]:
    """1-based numbers of the layers ``recipe`` keeps in float."""
    if recipe not in RECIPES:
        raise ValueError(f"int8 recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    return () if recipe == "all" else (1, n_layers)


def _conv_nodes(graph_nodes: Sequence[str], layer_numbers: Sequence[int]) -> list[str]:
    """Node names of the convs of the given layers (a sub-pixel layer has four), in the ONNX graph
    or in OpenVINO's, which names each conv "<onnx node>/WithoutBiases" (the bias add follows it)."""
    wanted = {f"conv{n}" for n in layer_numbers}
    return [name for name in graph_nodes if name.split("/")[0].split("_phase")[0] in wanted]


def calibration_samples(
    convention: InputConvention, folder: str | os.PathLike = CALIBRATION_PHOTOS, per_photo: Optional[int] = None
) -> list[Sample]:
    """Crops of the calibration photos at ``calibration_sizes``, holes drawn as in use."""
    n = CALIBRATION_CROPS_PER_PHOTO if per_photo is None else per_photo
    return photo_samples(folder, calibration_sizes(convention), n, convention, seed=0x0CA1)


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="image", file=sys.stderr, leave=False, disable=None)


def runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino

        return openvino.get_version().split("-")[0]
    import onnxruntime

    return onnxruntime.__version__


@dataclass
class _Int8Target:
    """What both int8 builders decide before any work: where the model goes and how it is quantized."""

    path: Path
    seven_bit_weights: bool  # no VNNI/AMX: NNCF's overflow fix / onnxruntime's reduce_range
    float_layers: tuple[int, ...]
    built: bool  # a cached build is there already

    def calibration(self, samples: Optional[Sequence[Sample]], convention: InputConvention, desc: str):
        """The calibration samples and a progress bar over them."""
        calib = list(samples) if samples is not None else calibration_samples(convention)
        return calib, _progress(len(calib), desc)


def _int8_target(runtime: str, suffixes: Sequence[str], layers: Sequence["FoldedLayer"], convention: InputConvention,
                 isa: Optional[CpuIsa], samples: Optional[Sequence[Sample]], cache: bool, recipe: Optional[str]) -> _Int8Target:
    """The ISA and recipe checks and the cache entry (``suffixes``: the files one model is made of)."""
    isa = isa or detect()
    recipe = recipe or DEFAULT_RECIPE
    seven_bit = not isa.native_int8
    keep = float_layers(recipe, len(layers))  # an unknown recipe fails here, before any work
    tag = _variant_tag(runtime, convention, layers, seven_bit, samples, recipe)
    path = (cache_dir() if cache else Path(_temporary_dir())) / "int8" / f"{tag}{suffixes[0]}"
    built = cache and all(path.with_suffix(suffix).is_file() for suffix in suffixes)
    return _Int8Target(path, seven_bit, keep, built)


def openvino_int8(
    layers: Sequence["FoldedLayer"],
    convention: InputConvention,
    isa: Optional[CpuIsa] = None,
    samples: Optional[Sequence[Sample]] = None,
    cache: bool = True,
    recipe: Optional[str] = None,
) -> Path:
    """An int8 OpenVINO IR (.xml, its .bin beside it) of the network, built once and cached.

    ``samples`` replaces the packaged calibration photos (a cache entry is then not shared:
    its key includes a hash of the samples); ``recipe`` defaults to ``DEFAULT_RECIPE``.
    """
    target = _int8_target("openvino", (".xml", ".bin"), layers, convention, isa, samples, cache, recipe)
    if target.built:
        return target.path
    import openvino as ov

    nncf = _import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    calib, bar = target.calibration(samples, convention, "int8 calibration (OpenVINO/NNCF)")
    ov_model = ov.Core().read_model(build_onnx_model(layers, "fp32", subpixel_transposed=True).SerializeToString())
    names = [op.get_friendly_name() for op in ov_model.get_ops() if op.get_type_name() == "Convolution"]
    keep = _conv_nodes(names, target.float_layers)
    nncf.set_log_level(30)

    def transform(sample: Sample) -> np.ndarray:
        bar.update(1)
        return sample.x

    try:
        quantized = nncf.quantize(
            ov_model, nncf.Dataset(calib, transform), subset_size=len(calib),
            ignored_scope=nncf.IgnoredScope(names=keep) if keep else None,
            advanced_parameters=AdvancedQuantizationParameters(
                overflow_fix=OverflowFix.ENABLE if target.seven_bit_weights else OverflowFix.DISABLE,
            ),
        )
    finally:
        bar.close()
    quantized.set_rt_info(json.dumps({"recipe": RECIPE, "float_layers": list(target.float_layers),
                                      "overflow_fix": target.seven_bit_weights}), "glcic_fast")
    _save_openvino_atomically(ov, quantized, target.path)
    return target.path


def _import_nncf():
    try:
        import nncf
    except ImportError:
        raise BackendUnavailable("int8 on OpenVINO is quantized with NNCF, which is not installed "
                                 "(pip install 'glcic-fast[openvino]')") from None
    return nncf


def _save_openvino_atomically(ov, model, dest: Path) -> None:
    """IR = .xml + .bin: saved in a temporary folder, then each put in place atomically, .bin
    first and .xml last, so a reader that finds the .xml also finds its complete .bin."""
    with tempfile.TemporaryDirectory(prefix="glcic-fast-int8-") as tmp:
        saved = Path(tmp) / "model.xml"
        ov.save_model(model, str(saved), compress_to_fp16=False)
        for suffix in (".bin", ".xml"):
            atomic_write_bytes(dest.with_suffix(suffix), partial(shutil.copyfile, saved.with_suffix(suffix)))


def onnxruntime_int8(
    layers: Sequence["FoldedLayer"],
    convention: InputConvention,
    isa: Optional[CpuIsa] = None,
    samples: Optional[Sequence[Sample]] = None,
    cache: bool = True,
    recipe: Optional[str] = None,
) -> Path:
    """A QDQ int8 ONNX file of the (sub-pixel) network, built once and cached.

    Without VNNI/AMX, weights are quantized to 7 bits (onnxruntime's ``reduce_range``), for the
    same AVX2 overflow reason as NNCF's overflow fix."""
    target = _int8_target("onnxruntime", (".onnx",), layers, convention, isa, samples, cache, recipe)
    if target.built:
        return target.path
    from onnxruntime import quantization as oq

    calib, bar = target.calibration(samples, convention, "int8 calibration (onnxruntime)")
    model = build_onnx_model(layers, "fp32", subpixel_transposed=True)
    keep = _conv_nodes([n.name for n in model.graph.node], target.float_layers)

    class Reader(oq.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib)

        def get_next(self):
            sample = next(self.items, None)
            if sample is None:
                return None
            bar.update(1)
            return {INPUT_NAME: sample.x}

    quiet = _DropRecords("pre-processing")  # onnxruntime's advice to run its shape pre-pass
    logging.getLogger().addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="glcic-fast-int8-") as tmp:
            src = Path(tmp) / "float.onnx"
            src.write_bytes(model.SerializeToString())  # a scratch file, gone with the folder

            def write(dest: str) -> None:
                oq.quantize_static(
                    str(src), dest, Reader(), quant_format=oq.QuantFormat.QDQ, per_channel=True,
                    activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8, nodes_to_exclude=keep,
                    reduce_range=target.seven_bit_weights,
                    calibrate_method=oq.CalibrationMethod.MinMax,
                )

            atomic_write_bytes(target.path, write)
    finally:
        logging.getLogger().removeFilter(quiet)
        bar.close()
    return target.path


class _DropRecords(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def _variant_tag(runtime: str, convention: InputConvention, layers, seven_bit_weights: bool, samples, recipe: str) -> str:
    parts = [model_key(layers, convention), RECIPE, recipe, runtime, runtime_version(runtime)]
    if samples is None and CALIBRATION_CROPS_PER_PHOTO != DEFAULT_CROPS_PER_PHOTO:
        parts.append(f"crops{CALIBRATION_CROPS_PER_PHOTO}")
    if seven_bit_weights:
        parts.append("w7")
    if samples is not None:
        h = hashlib.sha256()
        for s in samples:
            h.update(np.ascontiguousarray(s.x).tobytes())
        parts.append("calib" + h.hexdigest()[:8])
    return "-".join(parts)


_TMP: list = []


def _temporary_dir() -> str:
    """A folder removed at exit, for uncached builds (tests, experiments)."""
    if not _TMP:
        _TMP.append(tempfile.TemporaryDirectory(prefix="glcic-fast-int8-"))
    return _TMP[0].name


__all__ = [
    "CACHE_ENV", "DEFAULT_RECIPE", "RECIPE", "RECIPES", "cache_dir", "calibration_samples", "float_layers", "model_key", "onnxruntime_int8",
    "openvino_int8", "runtime_version",
]
