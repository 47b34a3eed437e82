"""The authors' Torch7 models (``completionnet_places2.t7`` and siblings), read without Lua.

A table ``{model = nn.Sequential of 50 modules, mean = tensor of 3}`` read through the
``torchfile`` package. Layer i (0..15) is module 3i (a convolution), 3i+1
(``nn.SpatialBatchNormalization``), 3i+2 (``nn.ReLU``); module 48 is the output convolution and
49 ``nn.Sigmoid``. The module classes are checked first, then each layer against
``layers.COMPLETION_LAYERS`` (kernel, stride, padding, dilation, tensor shapes) as it is copied.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..errors import WeightsImportError
from ..layers import COMPLETION_LAYERS, layer_in_channels
from ..model import CompletionNetwork
from .common import TORCH_BN_EPS, check_mean, load_into, source_record

# Torch7 class names we accept per role (the "nn." or "cudnn." package in front is free).
TORCH7_CONV_CLASSES = ("SpatialConvolution", "SpatialConvolutionMM", "SpatialDilatedConvolution")
TORCH7_FULL_CONV_CLASSES = ("SpatialFullConvolution",)
TORCH7_PACKAGES = ("nn", "cudnn")


def _decode(name: Any) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else str(name)


def _is_t7_object(obj: Any) -> bool:
    """A torchfile ``TorchObject`` (an ``nn`` module or other Torch class instance).

    Checked on the type: torchfile's tables answer any attribute (with None), so ``hasattr``
    would call every table a Torch object.
    """
    return callable(getattr(type(obj), "torch_typename", None))


def _t7_typename(obj: Any) -> str:
    """Torch class name of a torchfile value, or a description of a plain value."""
    if _is_t7_object(obj):
        return _decode(obj.torch_typename())
    if isinstance(obj, np.ndarray):
        return f"tensor {tuple(obj.shape)}"
    if isinstance(obj, dict):
        return "table"
    if isinstance(obj, list):
        return "list-like table"
    return type(obj).__name__


def _t7_field(obj: Any, name: str) -> Any:
    """Field ``name`` of a torchfile table or object (torchfile keeps keys as bytes)."""
    if obj is None:
        return None
    if _is_t7_object(obj):
        table = obj._obj if isinstance(getattr(obj, "_obj", None), dict) else {}
    elif isinstance(obj, dict):
        table = obj
    else:
        return None
    if name.encode() in table:
        return table[name.encode()]
    return table.get(name)


def _t7_class(obj: Any) -> tuple[str, str]:
    """(package, class) of a Torch object: "nn.SpatialConvolution" -> ("nn", "SpatialConvolution")."""
    full = _t7_typename(obj)
    pkg, _, cls = full.rpartition(".")
    return pkg, cls


def _summarize(modules: Sequence[Any]) -> str:
    counts = Counter(_t7_typename(m) for m in modules)
    return ", ".join(f"{name} x{n}" for name, n in counts.items()) or "nothing"


def _expected_classes() -> list[tuple[str, tuple[str, ...]]]:
    """(role, accepted class names) for each of the 50 modules of the authors' network."""
    roles: list[tuple[str, tuple[str, ...]]] = []
    last = len(COMPLETION_LAYERS) - 1
    for i, spec in enumerate(COMPLETION_LAYERS):
        roles.append(("conv", TORCH7_FULL_CONV_CLASSES if spec.transposed else TORCH7_CONV_CLASSES))
        if i != last:
            roles.append(("bn", ("SpatialBatchNormalization",)))
            roles.append(("relu", ("ReLU",)))
        else:
            roles.append(("sigmoid", ("Sigmoid",)))
    return roles


def _expected_description() -> str:
    n_layers = len(COMPLETION_LAYERS)
    n_full = sum(s.transposed for s in COMPLETION_LAYERS)
    return (
        f"{3 * (n_layers - 1) + 2} modules ({n_layers} convolutions incl. {n_full} "
        f"nn.SpatialFullConvolution, {n_layers - 1} nn.SpatialBatchNormalization, "
        f"{n_layers - 1} nn.ReLU, nn.Sigmoid last)"
    )


def _t7_array(value: Any, what: str):
    """A float32 torch tensor copied out of a torchfile array, refusing truncated storages."""
    if not isinstance(value, np.ndarray):
        raise WeightsImportError(f"{what}: expected a tensor, found {_t7_typename(value) if value is not None else 'nothing'}")
    if value.size and not _inside_storage(value):
        raise WeightsImportError(f"{what}: tensor runs past the end of its storage (is the file truncated?)")
    if value.dtype.kind not in "fiu":
        raise WeightsImportError(f"{what}: tensor of dtype {value.dtype}, expected a float tensor")
    arr = np.array(value, dtype=np.float32, copy=True)  # copy: torchfile views share one storage
    return torch.from_numpy(arr)


def _inside_storage(view) -> bool:
    """Whether a torchfile tensor (an as_strided view) stays inside the storage it views.

    torchfile builds tensors with ``as_strided`` over storages read with ``np.fromfile``, which
    silently returns fewer elements from a truncated file; reading such a view would read past
    the buffer, so check the bounds first.
    """
    byte_bounds: Any = getattr(np, "byte_bounds", None)  # numpy < 2
    if byte_bounds is None:
        from numpy.lib.array_utils import byte_bounds
    owner = view
    while getattr(owner, "base", None) is not None and not (isinstance(owner, np.ndarray) and owner.flags.owndata):
        owner = owner.base
    if not isinstance(owner, np.ndarray):
        return True  # not a torchfile view (e.g. a plain array): nothing to check
    lo, hi = byte_bounds(view)
    owner_lo, owner_hi = byte_bounds(owner)
    return owner_lo <= lo and hi <= owner_hi


def _t7_int(module: Any, name: str, default: Optional[int], what: str) -> int:
    value = _t7_field(module, name)
    if value is None:
        if default is None:
            raise WeightsImportError(f"{what}: has no {name} field")
        return default
    return int(value)


def _t7_load(path: Path):
    try:
        import torchfile  # type: ignore[import-untyped]
    except ImportError:
        raise WeightsImportError(
            "reading Torch7 files needs the torchfile package: pip install torchfile "
            "(or pip install 'glcic-fast[import]')"
        ) from None
    try:
        return torchfile.load(str(path))
    except Exception as e:  # torchfile raises struct.error, EOFError, T7ReaderException, ...
        raise WeightsImportError(
            f"{path}: not a readable Torch7 file: truncated, corrupt or not Torch7 ({type(e).__name__}: {e})"
        ) from None


def _t7_model_and_mean(data: Any, path: Path) -> tuple[Any, Any]:
    """The nn.Sequential and the mean (or None) of a loaded file, refusing other layouts."""
    if _is_t7_object(data):
        model, mean = data, None  # a bare model, saved without the mean
    elif isinstance(data, dict):
        model, mean = _t7_field(data, "model"), _t7_field(data, "mean")
        if model is None:
            keys = sorted(_decode(k) for k in data.keys())
            raise WeightsImportError(
                f"{path}: a Torch7 table with keys {keys}, not the authors' {{model, mean}} table"
            )
    else:
        raise WeightsImportError(f"{path}: a Torch7 file holding a {_t7_typename(data)}, not a GLCIC model")
    pkg, cls = _t7_class(model)
    if cls != "Sequential" or not isinstance(_t7_field(model, "modules"), list):
        raise WeightsImportError(f"{path}: the model is a {_t7_typename(model)}, expected nn.Sequential")
    return model, mean


def _check_module_classes(modules: list, path: Path) -> None:
    roles = _expected_classes()
    what = f"{path}: not the authors' GLCIC completion network: expected {_expected_description()}"
    if len(modules) != len(roles):
        raise WeightsImportError(f"{what}, found {len(modules)}: {_summarize(modules)}")
    for index, (module, (role, classes)) in enumerate(zip(modules, roles)):
        pkg, cls = _t7_class(module)
        if cls not in classes or pkg not in TORCH7_PACKAGES:
            wanted = " or ".join(f"nn.{c}" for c in classes)
            raise WeightsImportError(
                f"{what}; module {index + 1} is {_t7_typename(module)} where {wanted} was expected "
                f"(found: {_summarize(modules)})"
            )


def _t7_conv(module: Any, spec, cin: int, layer: int, index: int, notes: list[str]):
    """(weight, bias) of one convolution, its geometry checked against ``spec``."""
    what = f"layer {layer} (module {index + 1}, {_t7_typename(module)})"
    k, s, d, p = spec.kernel, spec.stride, spec.dilation, spec.padding
    found = {
        "kernel": (_t7_int(module, "kW", None, what), _t7_int(module, "kH", None, what)),
        "stride": (_t7_int(module, "dW", 1, what), _t7_int(module, "dH", 1, what)),
        "padding": (_t7_int(module, "padW", 0, what), _t7_int(module, "padH", 0, what)),
        "dilation": (_t7_int(module, "dilationW", 1, what), _t7_int(module, "dilationH", 1, what)),
    }
    expected = {"kernel": (k, k), "stride": (s, s), "padding": (p, p), "dilation": (d, d)}
    if spec.transposed:
        found["output adjustment"] = (_t7_int(module, "adjW", 0, what), _t7_int(module, "adjH", 0, what))
        expected["output adjustment"] = (0, 0)
    for key, value in expected.items():
        if found[key] != value:
            raise WeightsImportError(
                f"{what}: {key} {found[key][0]}x{found[key][1]}, expected {value[0]}x{value[1]} "
                "(not the GLCIC completion network)"
            )
    weight = _t7_array(_t7_field(module, "weight"), f"{what} weight")
    shape = (cin, spec.out_channels, k, k) if spec.transposed else (spec.out_channels, cin, k, k)
    if tuple(weight.shape) != shape:
        # Old nn versions stored convolution weights as a matrix (out, in*kh*kw).
        if not spec.transposed and tuple(weight.shape) == (spec.out_channels, cin * k * k):
            weight = weight.reshape(shape)
            if "2-D convolution weights reshaped to (out, in, kh, kw)" not in notes:
                notes.append("2-D convolution weights reshaped to (out, in, kh, kw)")
        else:
            raise WeightsImportError(f"{what}: weight of shape {tuple(weight.shape)}, expected {shape}")
    raw_bias = _t7_field(module, "bias")
    if raw_bias is None:
        bias = torch.zeros(spec.out_channels)  # saved after :noBias()
        notes.append(f"layer {layer} has no conv bias (zeros used)")
    else:
        bias = _t7_array(raw_bias, f"{what} bias").reshape(-1)
        if bias.numel() != spec.out_channels:
            raise WeightsImportError(f"{what}: bias of {bias.numel()} values, expected {spec.out_channels}")
    return weight, bias


def _t7_batchnorm(module: Any, channels: int, layer: int, index: int, notes: list[str]):
    """(gamma, beta, running_mean, running_var for eps=1e-5) of one nn.SpatialBatchNormalization."""
    what = f"layer {layer} (module {index + 1}, {_t7_typename(module)})"
    eps = float(_t7_field(module, "eps") if _t7_field(module, "eps") is not None else TORCH_BN_EPS)

    def vec(name: str, default: Optional[float]):
        raw = _t7_field(module, name)
        if raw is None:
            if default is None:
                return None
            return torch.full((channels,), default)  # affine = false: identity scale / shift
        t = _t7_array(raw, f"{what} {name}").reshape(-1)
        if t.numel() != channels:
            raise WeightsImportError(f"{what}: {name} has {t.numel()} values, expected {channels}")
        return t

    gamma, beta = vec("weight", 1.0), vec("bias", 0.0)
    mean, var, std = vec("running_mean", None), vec("running_var", None), vec("running_std", None)
    if mean is None:
        raise WeightsImportError(f"{what}: has no running_mean (a BatchNorm that was never trained?)")
    if var is None:
        if std is None:
            raise WeightsImportError(f"{what}: has neither running_var nor running_std")
        # nn before 2016 stored running_std = 1 / sqrt(var + eps).
        var = 1.0 / (std.double() ** 2) - eps
        var = var.float()
        if "running_std converted to running_var" not in notes:
            notes.append("running_std converted to running_var")
    # Our BatchNorm uses eps 1e-5 and checkpoints do not store eps: fold the difference into
    # the variance, which is exact (only var + eps is ever used).
    if eps != TORCH_BN_EPS:
        var = (var.double() + (eps - TORCH_BN_EPS)).float()
        note = f"BatchNorm eps {eps:g} folded into running_var (checkpoints assume {TORCH_BN_EPS:g})"
        if note not in notes:
            notes.append(note)
    var = var.clamp_min(0.0)
    return gamma, beta, mean, var


def _t7_mean(stored: Any, path: Path) -> list[float]:
    """The stored mean pixel: a tensor of 3 (the authors' files) or a Lua list of 3 numbers."""
    if isinstance(stored, list) and all(isinstance(v, (int, float)) for v in stored):
        return [float(v) for v in stored]
    return [float(v) for v in _t7_array(stored, f"{path}: mean").reshape(-1).tolist()]


def import_torch7(path: str | os.PathLike, mean: Optional[Sequence[float]] = None):
    """Read one of the authors' Torch7 models: returns ``(CompletionNetwork, metadata)``.

    ``mean`` overrides the mean pixel stored in the file (needed when the file holds only the
    model). The metadata holds ``mean``, ``mean_from``, ``input_fill`` ("subtract-mean"),
    ``source`` (format, file, sha256) and ``notes``. Raises ``WeightsImportError`` for any
    other content.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsImportError(f"{path}: no such file")
    data = _t7_load(path)
    model, stored_mean = _t7_model_and_mean(data, path)
    modules = list(_t7_field(model, "modules"))
    _check_module_classes(modules, path)

    notes: list[str] = []
    network = CompletionNetwork(order="glcic")
    ins = layer_in_channels()
    state: dict[str, torch.Tensor] = {}
    for i, (spec, cin, block) in enumerate(zip(COMPLETION_LAYERS, ins, network.layers)):
        conv_index = 3 * i
        weight, bias = _t7_conv(modules[conv_index], spec, cin, i + 1, conv_index, notes)
        state[f"layers.{i}.conv.weight"], state[f"layers.{i}.conv.bias"] = weight, bias
        if block.bn is not None:
            gamma, beta, rmean, rvar = _t7_batchnorm(modules[conv_index + 1], spec.out_channels, i + 1, conv_index + 1, notes)
            prefix = f"layers.{i}.bn."
            state[prefix + "weight"], state[prefix + "bias"] = gamma, beta
            state[prefix + "running_mean"], state[prefix + "running_var"] = rmean, rvar
    load_into(network, state, str(path))

    file_mean = None if stored_mean is None else _t7_mean(stored_mean, path)
    if mean is not None:
        mean_values, mean_from = check_mean(mean, str(path)), "given by the user"
        if file_mean is not None:
            mean_from += f" (the file stores {[round(v, 6) for v in file_mean]})"
    elif file_mean is not None:
        mean_values = check_mean(file_mean, f"{path}: stored mean")
        mean_from = "the Torch7 file"
    else:
        raise WeightsImportError(
            f"{path}: holds only the model, not the mean pixel the authors' table carries; "
            "pass it with --mean R G B (Places2: 0.4560 0.4472 0.4155)"
        )
    meta = {
        "mean": mean_values,
        "mean_from": mean_from,
        "input_fill": "subtract-mean",
        "layer_order": "glcic",
        "source": source_record(path, "torch7"),
        "notes": notes,
    }
    return network, meta
