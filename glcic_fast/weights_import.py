"""Import published GLCIC weights into glcic-fast checkpoints (``glcic-fast import-weights``).

Two sources are understood, and anything else is refused with a message saying what was found:

- **The authors' Torch7 models** (``completionnet_places2.t7``, ``..._freeform.t7``,
  ``completionnet_celeba.t7``): a table ``{model = nn.Sequential of 50 modules, mean = tensor
  of 3}``, read without Lua through the ``torchfile`` package. Layer i (0..15) is module 3i (a
  convolution), 3i+1 (``nn.SpatialBatchNormalization``), 3i+2 (``nn.ReLU``); module 48 is the
  output convolution and 49 ``nn.Sigmoid``. The module classes are checked first, then each
  layer against ``layers.COMPLETION_LAYERS`` (kernel, stride, padding, dilation, tensor
  shapes) as it is copied; nothing is written unless everything matches. The result is the paper's Conv -> BN -> ReLU network,
  inputs blanked by subtracting the stored mean (``input_fill="subtract-mean"``).
- **GLCIC-PyTorch state_dicts** (github otenim/GLCIC-PyTorch, MIT): names ``conv1``/``bn1`` ...
  ``conv12``/``bn12``, ``deconv13``/``bn13``, ``conv14``/``bn14``, ``deconv15``/``bn15``,
  ``conv16``/``bn16``, ``conv17``; it runs Conv -> ReLU -> BN and fills holes with the mean
  pixel without subtracting it, so it becomes ``CompletionNetwork(order="glcic-pytorch")`` with
  ``input_fill="mean"``. Such checkpoints do not hold that mean pixel (GLCIC-PyTorch keeps it
  as ``mpv`` in the training run's ``config.json``), so the caller must supply it: ``--mean R G
  B`` or ``--config config.json``. There is no default: a wrong mean silently degrades every
  completion.

The checkpoint's metadata records the source (file name, sha256, format), the mean and where
it came from, and any conversion applied on the way (see ``notes``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .layers import COMPLETION_IN_CHANNELS, COMPLETION_LAYERS, layer_in_channels

NAME = "import-weights"
FORMATS = ("auto", "torch7", "glcic-pytorch")
# PyTorch's BatchNorm eps: our networks (and checkpoints, which do not store eps) use it.
TORCH_BN_EPS = 1e-5
# Torch7 class names we accept per role (the "nn." or "cudnn." package in front is free).
TORCH7_CONV_CLASSES = ("SpatialConvolution", "SpatialConvolutionMM", "SpatialDilatedConvolution")
TORCH7_FULL_CONV_CLASSES = ("SpatialFullConvolution",)
TORCH7_PACKAGES = ("nn", "cudnn")
# Where a wrapped checkpoint may keep the state_dict.
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "model", "model_cn", "net")


class WeightsImportError(ValueError):
    """The file is not one of the supported GLCIC models (the message says what it holds)."""


# ---------------------------------------------------------------------------------------------
# shared helpers


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _source_record(path: Path, fmt: str) -> dict[str, Any]:
    return {"format": fmt, "file": path.name, "sha256": file_sha256(path), "size_bytes": path.stat().st_size}


def _check_mean(mean: Sequence[float], origin: str) -> list[float]:
    import math

    values = [float(m) for m in mean]
    if len(values) != 3:
        raise WeightsImportError(f"{origin}: the mean pixel must have 3 values (R G B), got {len(values)}")
    if not all(math.isfinite(v) and -0.5 <= v <= 1.5 for v in values):
        raise WeightsImportError(
            f"{origin}: mean pixel {values} is not in the [0, 1] pixel scale GLCIC uses "
            "(a 0-255 mean? divide by 255)"
        )
    return values


def detect_format(path: str | os.PathLike) -> str:
    """"torch7" or "glcic-pytorch", from the file's first bytes (not its name: GLCIC-PyTorch
    snapshots are called ``model_cn_step400000``, without extension)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return "glcic-pytorch"  # torch.save's zip container
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "glcic-pytorch"  # torch.save's legacy pickle format
    if len(head) == 8:
        tag = int.from_bytes(head[:4], "little")
        index = int.from_bytes(head[4:], "little")
        if tag in (3, 4) and index == 1:  # Torch7: a table / torch object, object index 1
            return "torch7"
    if head[:2] in (b"3\n", b"4\n"):
        raise WeightsImportError(
            f"{path}: looks like an ASCII Torch7 file; only binary ones can be read "
            "(in Lua: torch.save(file, torch.load(file, 'ascii')) writes a binary copy)"
        )
    raise WeightsImportError(
        f"{path}: neither a Torch7 file nor a PyTorch checkpoint (first bytes {head!r}); "
        "import-weights reads the authors' .t7 models and GLCIC-PyTorch state_dicts"
    )


# ---------------------------------------------------------------------------------------------
# Torch7


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
    import numpy as np

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
    import numpy as np
    import torch

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
    import numpy as np

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
    import torch

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
    import torch

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
    import torch

    from .model import CompletionNetwork

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
    _load_into(network, state, str(path))

    file_mean = None if stored_mean is None else _t7_mean(stored_mean, path)
    if mean is not None:
        mean_values, mean_from = _check_mean(mean, str(path)), "given by the user"
        if file_mean is not None:
            mean_from += f" (the file stores {[round(v, 6) for v in file_mean]})"
    elif file_mean is not None:
        mean_values = _check_mean(file_mean, f"{path}: stored mean")
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
        "source": _source_record(path, "torch7"),
        "notes": notes,
    }
    return network, meta


# ---------------------------------------------------------------------------------------------
# GLCIC-PyTorch


def glcic_pytorch_names() -> dict[str, str]:
    """Our state_dict name -> GLCIC-PyTorch's, for every tensor of the completion network."""
    names: dict[str, str] = {}
    last = len(COMPLETION_LAYERS) - 1
    for i, spec in enumerate(COMPLETION_LAYERS):
        conv = f"{'deconv' if spec.transposed else 'conv'}{i + 1}"
        names[f"layers.{i}.conv.weight"] = f"{conv}.weight"
        names[f"layers.{i}.conv.bias"] = f"{conv}.bias"
        if i != last:
            for t in ("weight", "bias", "running_mean", "running_var"):
                names[f"layers.{i}.bn.{t}"] = f"bn{i + 1}.{t}"
    return names


def _load_state_dict(source: Any) -> tuple[Mapping[str, Any], str]:
    import torch

    if isinstance(source, Mapping):
        state, origin = source, "state_dict"
    else:
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise WeightsImportError(f"{path}: no such file")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WeightsImportError(
                f"{path}: not a loadable PyTorch state_dict ({first}); a checkpoint holding a "
                "pickled model is not unpickled for safety: load it in GLCIC-PyTorch and "
                "torch.save(model.state_dict(), file)"
            ) from None
    if not isinstance(state, Mapping):
        raise WeightsImportError(f"{origin}: holds a {type(state).__name__}, not a state_dict")
    # Wrapped checkpoints ({"state_dict": ...}); DataParallel's "module." prefix.
    if not any(str(k).endswith("conv1.weight") for k in state):
        for key in _STATE_DICT_WRAPPERS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    keys = [str(k) for k in state]
    if keys and all(k.startswith("module.") for k in keys):
        state = {str(k)[len("module."):]: v for k, v in state.items()}
    return state, origin


def import_glcic_pytorch(
    path_or_state_dict: Any,
    mean: Optional[Sequence[float]] = None,
    config: Optional[str | os.PathLike] = None,
):
    """Read a GLCIC-PyTorch completion-network state_dict: returns ``(CompletionNetwork, metadata)``.

    ``path_or_state_dict``: a ``torch.save``d file (``.pth``, ``.pt`` or GLCIC-PyTorch's
    extension-less ``model_cn_step...``; loaded with ``weights_only=True``) or the state_dict
    itself. The mean pixel is not in these files: give ``mean`` or ``config`` (the training
    run's ``config.json``, whose ``mpv`` is that mean); otherwise ``metadata["mean"]`` is None
    and ``import_weights`` refuses to write a checkpoint.
    """
    import torch

    from .model import CompletionNetwork

    state, origin = _load_state_dict(path_or_state_dict)
    names = glcic_pytorch_names()
    theirs = set(names.values())
    present = {str(k) for k in state}
    # Parameter-free keys GLCIC-PyTorch may save: BatchNorm's batch counters.
    ignored = {k for k in present if k.endswith(".num_batches_tracked")}
    missing = sorted(theirs - present, key=_natural_key)
    extra = sorted(present - theirs - ignored, key=_natural_key)
    if missing or extra:
        hint = ""
        if any(k.startswith(("model_ld.", "model_gd.", "linear")) for k in extra):
            hint = " (a context discriminator checkpoint? import the completion network's model_cn file)"
        raise WeightsImportError(
            f"{origin}: not a GLCIC-PyTorch completion network: "
            f"missing {_short_list(missing)}, unexpected {_short_list(extra)}{hint}"
        )
    network = CompletionNetwork(order="glcic-pytorch")
    expected = network.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for ours, their in names.items():
        value = state[their]
        if not isinstance(value, torch.Tensor):
            raise WeightsImportError(f"{origin}: {their} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(expected[ours].shape):
            if their == "conv1.weight" and value.dim() == 4 and value.shape[1] != COMPLETION_IN_CHANNELS:
                raise WeightsImportError(
                    f"{origin}: conv1 takes {value.shape[1]} input channels, expected "
                    f"{COMPLETION_IN_CHANNELS} (RGB + mask); early GLCIC-PyTorch versions without "
                    "the mask channel are not supported"
                )
            raise WeightsImportError(
                f"{origin}: {their} has shape {tuple(value.shape)}, expected {tuple(expected[ours].shape)}"
            )
        converted[ours] = value.detach().to("cpu", torch.float32).clone()
    _load_into(network, converted, origin)

    mean_values: Optional[list[float]] = None
    mean_from: Optional[str] = None
    if mean is not None:
        mean_values, mean_from = _check_mean(mean, origin), "given by the user"
    elif config is not None:
        mean_values, mean_from = _mean_from_config(config), f"'mpv' of {Path(config).name}"
    if isinstance(path_or_state_dict, Mapping):
        source: dict[str, Any] = {"format": "glcic-pytorch", "file": None, "sha256": None, "note": "in-memory state_dict"}
    else:
        source = _source_record(Path(path_or_state_dict), "glcic-pytorch")
    meta = {
        "mean": mean_values,
        "mean_from": mean_from,
        "input_fill": "mean",
        "layer_order": "glcic-pytorch",
        "source": source,
        "notes": [],
    }
    return network, meta


def _mean_from_config(config: str | os.PathLike) -> list[float]:
    path = Path(config)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsImportError(f"{path}: cannot read the GLCIC-PyTorch config ({e})") from None
    if not isinstance(data, dict) or "mpv" not in data:
        raise WeightsImportError(f"{path}: no 'mpv' (mean pixel value) in this config; pass --mean R G B")
    mpv = data["mpv"]
    if not isinstance(mpv, list):
        raise WeightsImportError(f"{path}: 'mpv' is {mpv!r}, expected 3 numbers")
    return _check_mean(mpv, f"{path}: mpv")


def _natural_key(name: str):
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _short_list(items: list[str], limit: int = 6) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > limit else ''}]"


# ---------------------------------------------------------------------------------------------
# both


def _load_into(network, state: dict, origin: str) -> None:
    import torch

    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise WeightsImportError(f"{origin}: {name} holds NaN or infinite values")
    full = network.state_dict()
    full.update(state)  # keeps num_batches_tracked etc. at their defaults
    network.load_state_dict(full)
    network.eval()


def import_weights(
    src: Any,
    dst: str | os.PathLike,
    format: str = "auto",
    *,
    mean: Optional[Sequence[float]] = None,
    config: Optional[str | os.PathLike] = None,
) -> dict[str, Any]:
    """Convert ``src`` (a Torch7 file, a GLCIC-PyTorch file, or a state_dict) to the checkpoint
    ``dst`` (written atomically); returns the checkpoint's metadata as read back.

    ``format``: "auto" (from the file's first bytes), "torch7" or "glcic-pytorch". ``mean``
    overrides / supplies the mean pixel; ``config`` is GLCIC-PyTorch's ``config.json``.
    """
    from .checkpoint import read_metadata, save_checkpoint

    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(src, Mapping):
        fmt = "glcic-pytorch" if format == "auto" else format
        if fmt != "glcic-pytorch":
            raise WeightsImportError("an in-memory state_dict can only be a GLCIC-PyTorch one")
    else:
        src = Path(src)
        if not src.is_file():
            raise WeightsImportError(f"{src}: no such file")
        if Path(dst).exists() and src.resolve() == Path(dst).resolve():
            raise WeightsImportError(f"{dst}: the output would overwrite the input")
        fmt = detect_format(src) if format == "auto" else format
    if fmt == "torch7":
        if config is not None:
            raise WeightsImportError("--config is GLCIC-PyTorch's config.json; a Torch7 file carries its own mean")
        network, meta = import_torch7(src, mean=mean)
    else:
        network, meta = import_glcic_pytorch(src, mean=mean, config=config)
        if meta["mean"] is None:
            raise WeightsImportError(
                f"{meta['source']['file'] or 'state_dict'}: GLCIC-PyTorch checkpoints do not store the "
                "mean pixel their holes were filled with; pass --mean R G B (the 'mpv' of the "
                "training run's config.json) or --config config.json"
            )
    save_checkpoint(
        network,
        dst,
        mean=meta["mean"],
        input_fill=meta["input_fill"],
        source=meta["source"],
        mean_from=meta["mean_from"],
        import_notes=meta["notes"],
        imported_by=f"glcic-fast {NAME}",
    )
    return read_metadata(dst)


# ---------------------------------------------------------------------------------------------
# command line


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        NAME,
        help="convert the authors' Torch7 model or a GLCIC-PyTorch checkpoint to a glcic-fast checkpoint",
        description=(
            "Convert published GLCIC weights to a glcic-fast checkpoint (.safetensors): the authors' "
            "Torch7 models (completionnet_places2.t7, completionnet_places2_freeform.t7, "
            "completionnet_celeba.t7; needs the torchfile package) or a GLCIC-PyTorch completion "
            "network state_dict (needs its mean pixel: --mean or --config). The module list is "
            "checked against the GLCIC architecture; anything else is refused."
        ),
    )
    p.add_argument("file", help="the .t7 file, or the GLCIC-PyTorch model_cn_step... / .pth file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="checkpoint to write")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: from the file's contents)")
    p.add_argument(
        "--mean", nargs=3, type=float, metavar=("R", "G", "B"),
        help="mean pixel in [0, 1]; overrides the one in a Torch7 file, required for GLCIC-PyTorch "
        "unless --config is given",
    )
    p.add_argument("--config", metavar="CONFIG.json", help="GLCIC-PyTorch's training config.json (its 'mpv' is the mean pixel)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(func=run)


def run(args) -> int:
    import sys

    def fail(message: str, code: int = 2) -> int:
        print(f"glcic-fast {NAME}: error: {message}", file=sys.stderr)
        return code

    src, dst = Path(args.file), Path(args.output)
    if not src.is_file():
        return fail(f"{src}: no such file")
    if dst.exists() and not args.force:
        return fail(f"{dst} exists; pass --force to overwrite it")
    if dst.is_dir():
        return fail(f"{dst} is a directory; give a file name such as model.safetensors")
    try:
        meta = import_weights(src, dst, args.format, mean=args.mean, config=args.config)
    except WeightsImportError as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"{e}", 1)
    source = meta["source"]
    mean = " ".join(f"{m:.4f}" for m in meta["mean"])
    print(
        f"{dst}: imported {source['format']} {source['file']} (sha256 {source['sha256'][:16]}...), "
        f"layer order {meta['layer_order']}, mean {mean} ({meta['mean_from']}), "
        f"input fill {meta['input_fill']}"
    )
    for note in meta.get("import_notes", []):
        print(f"  note: {note}")
    return 0
