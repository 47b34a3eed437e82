"""The completion API: ``load`` once, ``complete`` many times.

    import glcic_fast
    completer = glcic_fast.load()                  # packaged model, best backend here
    result = completer.complete(image, mask)       # same type and size as ``image``
    results = completer.complete([im1, im2], [m1, m2])   # one batched network call per size

Data flows one way: image + mask -> the windows the holes need (``regions``: the whole image
when it is small) -> ``preprocess.network_input`` -> backend, windows of one size in one
pass that fits in memory (``memory``) -> ``preprocess.composite`` -> optional ``postprocess``
-> pasted into the image -> caller's type (``preprocess.to_callers_type``, ``pil_modes``).

PyTorch is imported only on the paths that need it (checkpoints, networks), so a deployment
that runs a TensorRT engine needs numpy, TensorRT and cuda-python alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from . import backends as backend_registry
from .authors import AuthorsOptions, complete_many, options_for_load
from .errors import InputError
from .layers import PLACES2_MEAN
from .memory import bytes_per_pixel, free_bytes, is_out_of_memory, too_large
from .photo_samples import InputConvention
from .postprocess import poisson_blend
from .preprocess import (
    check_input_fill,
    check_mean,
    check_resize,
    check_threshold,
    check_torch_storage,
    composite,
    from_unit,
    is_torch_tensor,
    network_input,
    network_size,
    read_image,
    read_mask,
    to_callers_type,
    to_unit,
)
from .regions import Window, hole_windows
from .resolve import is_engine_path, resolve_model

if TYPE_CHECKING:
    from .folding import FoldedLayer


class Completer:
    """Holds a prepared backend and the model's input convention; call ``complete``.

    ``crop_to_holes`` (default True): with ``resize="pad"``, the network sees only the part of
    the image each hole needs, its bounding box plus the network's receptive field (see
    ``regions``): a small hole in a large photo costs what the hole needs, with the same
    result. ``max_pixels``: the most input pixels one network pass may take; None (default)
    estimates it from the memory free at each call, and a hole that needs more is refused
    with the limit and how to downscale.
    """

    def __init__(
        self,
        backend: backend_registry.Backend,
        mean: Sequence[float],
        input_fill: str = "subtract-mean",
        metadata: Optional[dict] = None,
        resize: str = "pad",
        mask_threshold: Optional[float] = None,
        postprocess: bool = False,
        authors: Optional[AuthorsOptions] = None,
        *,
        crop_to_holes: bool = True,
        max_pixels: Optional[int] = None,
    ):
        self.backend = backend
        self.mean = check_mean(mean)
        self.input_fill = check_input_fill(input_fill)
        self.metadata = dict(metadata or {})
        self.resize = check_resize(resize)
        self.mask_threshold = check_threshold(mask_threshold)
        self.postprocess = postprocess
        self.crop_to_holes = crop_to_holes
        self.max_pixels = max_pixels
        self.authors = authors  # not None: the authors' script, step by step (authors.py)
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

        ``image``: numpy HxWx3 (uint8, uint16, or float in [0, 1]), a PIL image (RGB, RGBA, L,
        LA, 1, P, I;16, F: see ``pil_modes``), or a torch 3xHxW tensor; a list of those, a numpy
        NxHxWx3 array or a torch Nx3xHxW tensor is a batch (``mask`` then holds one mask per
        image; an empty batch gives an empty batch back). Pixels outside the hole are returned
        unchanged, byte for byte.
        """
        images, masks, rebuild = _split_batch(image, mask)
        if self.authors is not None:
            if (mask_threshold, resize) != (None, None):
                raise ValueError("authors mode thresholds and resizes as the script does: no mask_threshold= or resize=")
            options = self.authors if postprocess is None else replace(self.authors, postprocess=postprocess)
            return rebuild(complete_many(self.backend, self.mean, self.input_fill, images, masks, options))
        outputs = self._complete_many(
            images,
            masks,
            self.postprocess if postprocess is None else postprocess,
            self.mask_threshold if mask_threshold is None else check_threshold(mask_threshold),
            self.resize if resize is None else check_resize(resize),
        )
        return rebuild(outputs)

    __call__ = complete

    def _complete_many(self, images, masks, postprocess, threshold, resize) -> list:
        if len(images) != len(masks):
            raise InputError(f"got {len(images)} images but {len(masks)} masks")
        if not images:
            return []
        names = ["image"] if len(images) == 1 else [f"image {i}" for i in range(len(images))]
        records, holes = [], []
        for name, img, m in zip(names, images, masks):
            record = read_image(img, name)
            holes.append(read_mask(m, record.pixels.shape[:2], threshold, name.replace("image", "mask")))
            records.append(record)
        # One work item per window; windows that reach the network at the same size share a pass.
        items = [(i, win) for i, hole in enumerate(holes) for win in self._windows(hole, resize)]
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (_, win) in enumerate(items):
            groups.setdefault(network_size(win.height, win.width, resize), []).append(k)
        limit, free = self._pixel_limit()
        for size, members in groups.items():  # refuse before any work, naming the first image
            if limit is not None and size[0] * size[1] > limit:
                raise too_large(names[items[members[0]][0]], size, limit, self.backend.precision, free, self.max_pixels)
        results = [record.pixels.copy() for record in records]
        for size, members in groups.items():
            for chunk in self._passes(members, size, limit):
                what = names[items[chunk[0]][0]]
                try:
                    self._one_pass([items[k] for k in chunk], size, records, holes, results, postprocess, what, free)
                except MemoryError:  # numpy, in pre/post-processing: the same clear error as the network's
                    raise too_large(what, size, None, self.backend.precision, free, self.max_pixels, failed=True) from None
        return [to_callers_type(pixels, record, hole) for pixels, record, hole in zip(results, records, holes)]

    def _one_pass(self, chunk, size, records, holes, results, postprocess, what, free) -> None:
        """One network pass over the windows ``chunk``, composited (and post-processed) into ``results``."""
        x = np.empty((len(chunk), 4, *size), np.float32)  # each window written straight into its slot
        for j, (i, win) in enumerate(chunk):
            network_input(to_unit(records[i].pixels[win.slices]), holes[i][win.slices], self.mean, self.input_fill,
                          size, out=x[j])
        out = self._network(x, what, free)
        for j, (i, win) in enumerate(chunk):
            known, hole = records[i].pixels[win.slices], holes[i][win.slices]
            pixels = composite(out[j], known, hole)
            if postprocess:
                pixels = _postprocess(known, pixels, hole)
            results[i][win.slices] = pixels

    def _windows(self, hole: np.ndarray, resize: str) -> list[Window]:
        h, w = hole.shape
        if resize != "pad" or not self.crop_to_holes:
            return [Window(0, h, 0, w)]  # "authors" resizes the whole image: its size is bounded anyway
        profile = getattr(self.backend, "profile", None)  # a TensorRT engine takes a range of sizes
        return hole_windows(hole, (profile.height[0], profile.width[0]) if profile is not None else (0, 0))

    def _pixel_limit(self) -> tuple[Optional[int], Optional[int]]:
        """(most input pixels per pass, free bytes it was estimated from); None where unknown."""
        free = free_bytes(self.backend.device, self.backend.name)
        if self.max_pixels is not None:
            return int(self.max_pixels), free
        return (None, None) if free is None else (free // bytes_per_pixel(self.backend.precision), free)

    def _passes(self, members: list[int], size: tuple[int, int], limit: Optional[int]) -> list[list[int]]:
        """``members`` split into network passes that fit the pixel limit and the engine's batch range."""
        per_pass = len(members) if limit is None else max(1, limit // (size[0] * size[1]))
        profile = getattr(self.backend, "profile", None)
        if profile is not None:
            per_pass = min(per_pass, profile.batch[2])
        return [members[i : i + per_pass] for i in range(0, len(members), per_pass)]

    def _network(self, x: np.ndarray, what: str, free: Optional[int]) -> np.ndarray:
        """``backend(x)``; an allocator failure is retried in halves, then reported clearly."""
        try:
            return self.backend(x)
        except Exception as e:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
            need = x.shape[0] * x.shape[2] * x.shape[3] * bytes_per_pixel(self.backend.precision)
            if not is_out_of_memory(e, short=free is not None and need > free):
                raise
        if len(x) > 1:
            half = len(x) // 2
            return np.concatenate([self._network(x[:half], what, free), self._network(x[half:], what, free)])
        raise too_large(what, tuple(x.shape[2:]), None, self.backend.precision, free, self.max_pixels, failed=True)


def _postprocess(known: np.ndarray, completed: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The paper's Telea + Poisson step, in 8 bits (OpenCV's blend is 8-bit only)."""
    to_u8 = (lambda a: a) if known.dtype == np.uint8 else (lambda a: from_unit(to_unit(a), np.dtype(np.uint8)))
    blended = poisson_blend(to_u8(known), to_u8(completed), hole)
    if known.dtype != np.uint8:
        blended = from_unit(to_unit(blended), known.dtype)
    return np.where(hole[..., None], blended, known)  # outside the hole: the input, exactly


def _split_batch(image: Any, mask: Any):
    """(list of images, list of masks, function turning the list of results back)."""
    if isinstance(image, (list, tuple)):
        return list(image), _batch_masks(mask, len(image)), lambda outs: outs
    if isinstance(image, np.ndarray) and image.ndim == 4:
        # an empty batch comes back as an empty batch of the caller's shape and type
        return list(image), _batch_masks(mask, len(image)), lambda outs: np.stack(outs) if outs else image[:0].copy()
    if is_torch_tensor(image):
        check_torch_storage(image, "image")
        if image.dim() == 4:
            import torch

            empty = image.detach()[:0].clone()
            return list(image), _batch_masks(mask, len(image)), lambda outs: torch.stack(outs) if outs else empty
    return [image], [mask], lambda outs: outs[0]


def _batch_masks(mask: Any, n: int) -> list:
    if is_torch_tensor(mask):
        check_torch_storage(mask, "mask")
    if isinstance(mask, (list, tuple)) or _is_stacked(mask):
        return list(mask)
    raise InputError(f"a batch of {n} images needs {n} masks: a list of masks, an NxHxW array or an "
                     "Nx1xHxW / NxHxW tensor")


def _is_stacked(mask: Any) -> bool:
    return (isinstance(mask, np.ndarray) and mask.ndim == 3) or (is_torch_tensor(mask) and mask.dim() in (3, 4))


def resolve_device(device: str) -> str:
    if not isinstance(device, str):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
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
    authors_version: Optional[str] = None,
    authors_postprocess: Optional[bool] = None,
    authors_maxdim: Optional[int] = None,
    crop_to_holes: bool = True,
    max_pixels: Optional[int] = None,
    **backend_options: Any,
) -> Completer:
    """Prepare a completer once; reuse it for every call.

    model: a checkpoint (.safetensors), a TensorRT engine (.plan, with backend "tensorrt" or
    "auto"), a ``CompletionNetwork``, or None for the packaged default model.
    backend: "auto" (TensorRT for an engine; else triton or torch on a GPU, onnxruntime or
    openvino on a CPU), "torch", "onnxruntime", "openvino", "triton", "tensorrt". precision:
    "auto" (fp16 on a GPU; on a CPU the fastest of int8 / bf16 / fp32 that passes the accuracy
    gate on this CPU, measured once and cached -- ``completer.choice`` says which and why),
    "fp32" (exact), "fp16", "bf16", "int8". ``authors_mode`` returns what the authors'
    inpaint.lua writes, byte for byte, at its resolution (docs/authors-mode.md):
    ``authors_version`` "2020" (default: maxdim 600, no post-processing) or "2018" (maxdim 500,
    post-processing); ``authors_postprocess`` / ``authors_maxdim`` are the script's
    --postproc / --maxdim. ``mean`` overrides the model's mean pixel (3 numbers in [0, 1]).
    ``crop_to_holes`` and ``max_pixels``: see ``Completer`` (large photos). Everything is
    checked here, before any model is loaded, so a bad argument never fails later in ``complete``.
    """
    if mean is not None:
        mean = check_mean(mean)
    check_resize(resize)
    check_threshold(mask_threshold)
    backend_registry.check_precision(precision)
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 16):
        raise ValueError(f"max_pixels must be a whole number of pixels (at least 16) or None, got {max_pixels!r}")
    options = {"crop_to_holes": crop_to_holes, "max_pixels": max_pixels}
    authors = options_for_load(authors_mode, authors_version, authors_postprocess, authors_maxdim,
                               postprocess=postprocess, mask_threshold=mask_threshold, resize=resize)
    dev = resolve_device(device)
    if is_engine_path(model):
        if backend not in ("auto", "tensorrt"):
            raise ValueError(f"{model} is a TensorRT engine; it runs on the tensorrt backend, not {backend}")
        engine = backend_registry.backend_class("tensorrt").from_engine(model, device=dev, **backend_options)
        meta = engine.metadata
        return Completer(
            engine, meta.get("mean", PLACES2_MEAN) if mean is None else mean, meta.get("input_fill", "subtract-mean"),
            meta, resize, mask_threshold, postprocess, authors, **options,
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
                          mask_threshold, postprocess, authors, **options)
    completer.choice = choice
    return completer


def load_folded(layers: Sequence["FoldedLayer"], backend: str, device: str = "cpu", precision: str = "fp32", **options):
    """A backend straight from folded layers (tests and benchmarks)."""
    return backend_registry.backend_class(backend)(layers, device=device, precision=precision, **options)
