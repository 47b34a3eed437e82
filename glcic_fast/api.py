"""The completion API: ``load`` once, ``complete`` many times.

    import glcic_fast
    completer = glcic_fast.load()                  # packaged model, best backend here
    result = completer.complete(image, mask)       # same type and size as ``image``
    results = completer.complete([im1, im2], [m1, m2])   # one batched network call per size

Data flows one way: image + mask -> ``preprocess.network_input`` -> backend ->
``preprocess.network_output_to_image`` (composite) -> optional ``postprocess`` -> caller's type.

PyTorch is imported only on the paths that need it (checkpoints, networks), so a deployment
that runs a TensorRT engine needs numpy, TensorRT and cuda-python alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from . import backends as backend_registry
from .layers import PLACES2_MEAN
from .photo_samples import InputConvention
from .postprocess import poisson_blend
from .preprocess import (
    AUTHORS_MASK_THRESHOLD,
    RESIZE_MODES,
    InputError,
    network_input,
    network_output_to_image,
    network_size,
    read_image,
    read_mask,
    to_callers_type,
)
from .resolve import is_engine_path, resolve_model

if TYPE_CHECKING:
    from .folding import FoldedLayer


class Completer:
    """Holds a prepared backend and the model's input convention; call ``complete``."""

    def __init__(
        self,
        backend: backend_registry.Backend,
        mean: Sequence[float],
        input_fill: str = "subtract-mean",
        metadata: Optional[dict] = None,
        resize: str = "pad",
        mask_threshold: Optional[float] = None,
        postprocess: bool = False,
    ):
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
        self.backend = backend
        self.mean = tuple(float(m) for m in mean)
        self.input_fill = input_fill
        self.metadata = dict(metadata or {})
        self.resize = resize
        self.mask_threshold = mask_threshold
        self.postprocess = postprocess
        self.choice = None  # on a CPU with precision="auto": what was picked and why

    def __repr__(self) -> str:
        return f"<Completer backend={self.backend.name} device={self.backend.device} precision={self.backend.precision}>"

    def complete(
        self,
        image: Any,
        mask: Any,
        *,
        postprocess: Optional[bool] = None,
        mask_threshold: Optional[float] = None,
        resize: Optional[str] = None,
    ) -> Any:
        """Fill the hole of ``image`` where ``mask`` is set; returns the caller's type and size.

        ``image``: numpy HxWx3 (uint8, or float in [0, 1]), a PIL image, or a torch 3xHxW
        tensor; a list of those, a numpy NxHxWx3 array or a torch Nx3xHxW tensor is a batch
        (``mask`` then holds one mask per image). Pixels outside the hole are returned
        unchanged, byte for byte.
        """
        images, masks, rebuild = _split_batch(image, mask)
        outputs = self._complete_many(
            images,
            masks,
            self.postprocess if postprocess is None else postprocess,
            self.mask_threshold if mask_threshold is None else mask_threshold,
            self.resize if resize is None else resize,
        )
        return rebuild(outputs)

    __call__ = complete

    def _complete_many(self, images, masks, postprocess, threshold, resize) -> list:
        if len(images) != len(masks):
            raise InputError(f"got {len(images)} images but {len(masks)} masks")
        if not images:
            return []
        records, holes = [], []
        for i, (img, m) in enumerate(zip(images, masks)):
            what = "image" if len(images) == 1 else f"image {i}"
            record = read_image(img, what)
            holes.append(read_mask(m, record.pixels.shape[:2], threshold, what.replace("image", "mask")))
            records.append(record)
        # Images that reach the network at the same size go through it as one batch.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, hole in enumerate(holes):
            h, w = hole.shape
            groups.setdefault(network_size(h, w, resize), []).append(i)
        results: list[Any] = [None] * len(images)
        for size, members in groups.items():
            batch = np.stack(
                [network_input(records[i].rgb01, holes[i], self.mean, self.input_fill, size) for i in members]
            )
            out = self.backend(batch)
            for j, i in enumerate(members):
                pixels = network_output_to_image(out[j], records[i], holes[i])
                if postprocess:
                    pixels = _postprocess(records[i].pixels, pixels, holes[i])
                results[i] = to_callers_type(pixels, records[i])
        return results


def _postprocess(known: np.ndarray, completed: np.ndarray, hole: np.ndarray) -> np.ndarray:
    to_u8 = (lambda a: a) if known.dtype == np.uint8 else (lambda a: np.clip(np.rint(a * 255), 0, 255).astype(np.uint8))
    blended = poisson_blend(to_u8(known), to_u8(completed), hole)
    if known.dtype != np.uint8:
        blended = (blended.astype(np.float32) / 255.0).astype(known.dtype)
    return np.where(hole[..., None], blended, known)  # outside the hole: the input, exactly


def _split_batch(image: Any, mask: Any):
    """(list of images, list of masks, function turning the list of results back)."""
    if isinstance(image, (list, tuple)):
        masks = list(mask) if isinstance(mask, (list, tuple)) or _is_stacked(mask) else None
        if masks is None:
            raise InputError("a list of images needs a list of masks (one per image)")
        return list(image), masks, lambda outs: outs
    if isinstance(image, np.ndarray) and image.ndim == 4:
        return list(image), list(mask), lambda outs: np.stack(outs)
    if type(image).__module__.startswith("torch") and getattr(image, "dim", lambda: 0)() == 4:
        import torch

        return list(image), list(mask), lambda outs: torch.stack(outs)
    return [image], [mask], lambda outs: outs[0]


def _is_stacked(mask: Any) -> bool:
    return (isinstance(mask, np.ndarray) and mask.ndim == 3) or (
        type(mask).__module__.startswith("torch") and getattr(mask, "dim", lambda: 0)() == 3
    )


def resolve_device(device: str) -> str:
    if device == "auto":
        return backend_registry.default_device()
    if device.startswith("cuda"):
        return "cuda"
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def load(
    model: Any = None,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    *,
    mean: Optional[Sequence[float]] = None,
    resize: str = "pad",
    mask_threshold: Optional[float] = None,
    postprocess: bool = False,
    authors_mode: bool = False,
    **backend_options: Any,
) -> Completer:
    """Prepare a completer once; reuse it for every call.

    model: a checkpoint (.safetensors), a TensorRT engine (.plan, with backend "tensorrt" or
    "auto"), a ``CompletionNetwork``, or None for the packaged default model.
    backend: "auto" (TensorRT for an engine; else triton or torch on a GPU, onnxruntime or
    openvino on a CPU), "torch", "onnxruntime", "openvino", "triton", "tensorrt". precision:
    "auto" (fp16 on a GPU; on a CPU the fastest of int8 / bf16 / fp32 that passes the accuracy
    gate on this CPU, measured once and cached -- ``completer.choice`` says which and why),
    "fp32" (exact), "fp16", "bf16", "int8". ``authors_mode`` reproduces the authors' script:
    resize to a long side <= 600 and a multiple of 4, threshold grey masks at 0.2 and
    post-process.
    """
    if authors_mode:
        resize, postprocess = "authors", True
        mask_threshold = AUTHORS_MASK_THRESHOLD if mask_threshold is None else mask_threshold
    dev = resolve_device(device)
    if is_engine_path(model):
        if backend not in ("auto", "tensorrt"):
            raise ValueError(f"{model} is a TensorRT engine; it runs on the tensorrt backend, not {backend}")
        engine = backend_registry.backend_class("tensorrt").from_engine(model, device=dev, **backend_options)
        meta = engine.metadata
        return Completer(
            engine, meta.get("mean", PLACES2_MEAN) if mean is None else mean, meta.get("input_fill", "subtract-mean"),
            meta, resize, mask_threshold, postprocess,
        )
    layers, model_mean, fill, meta = resolve_model(model, mean)
    name = backend_registry.resolve(backend, dev, precision)
    if name == "tensorrt":
        raise ValueError("the tensorrt backend runs a built engine: glcic-fast build-engine, then load('engine.plan')")
    convention = InputConvention.from_metadata(model_mean, fill, meta)
    choice = None
    if precision == "auto" and dev == "cpu" and backend in ("auto", "openvino", "onnxruntime"):
        # the fastest variant that passes the accuracy gate on this CPU (backends.cpu_auto)
        from .backends import cpu_auto

        choice = cpu_auto.choose(layers, convention, backend)
        name, prec = choice.backend, choice.precision
        backend_options = {**choice.options, **backend_options}
    else:
        prec = backend_registry.default_precision(name, dev) if precision == "auto" else precision
    if prec == "int8":  # calibration turns photos into inputs the way this model expects them
        backend_options.setdefault("convention", convention)
    cls = backend_registry.backend_class(name)
    completer = Completer(cls(layers, device=dev, precision=prec, **backend_options), model_mean, fill, meta, resize,
                          mask_threshold, postprocess)
    completer.choice = choice
    return completer


def load_folded(layers: Sequence["FoldedLayer"], backend: str, device: str = "cpu", precision: str = "fp32", **options):
    """A backend straight from folded layers (tests and benchmarks)."""
    return backend_registry.backend_class(backend)(layers, device=device, precision=precision, **options)
