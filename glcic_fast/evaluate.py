"""How well a model fills holes, next to baselines that need no training (``glcic-fast eval``).

For every test image (resized so the short side is ``image_size``, centre-cropped square) we
draw seeded holes from two sets:

* ``paper``: the paper's training distribution scaled to the image: one rectangle, sides in
  [hole_min, hole_max], inside a local region of ``local_size``;
* ``free-form``: random brush strokes (thick polylines), as in free-form inpainting benchmarks.

Each method fills each hole; metrics compare the result with the original photo:

* L1: mean absolute error in 0..255 units, PSNR (peak 255, capped at 60 dB), SSIM (Wang et al. 2004: 11x11
  Gaussian window, sigma 1.5, K1 0.01, K2 0.03, per RGB channel then averaged);
* each on the hole only ("hole": errors, and the SSIM map, averaged over hole pixels) and on
  the whole image ("image": outside the hole every method returns the input, so these mostly
  shrink the hole numbers by the hole's share).

Methods: our model (``glcic``), the same with the paper's post-processing (``glcic+post``), and
the baselines ``mean`` (hole set to the mean colour of the image's known pixels), OpenCV's
``telea`` and ``navier-stokes`` inpainting (radius 3) and ``fsr-fast`` (OpenCV contrib's
frequency-selective reconstruction, ``cv2.xphoto.inpaint`` with ``INPAINT_FSR_FAST``; it needs
the contrib build of OpenCV, which glcic-fast depends on, and is reported as unavailable
otherwise). Per-image numbers are averaged over images (PSNR too, so each image counts
equally). ``comparisons`` gives, for the network against each baseline, the mean paired
difference per photo with a seeded bootstrap 95% interval, and the share of holes where the
network is better.

Unreadable photos are skipped with a warning naming them (listed in ``settings.skipped``);
a folder with no readable photo is an error. The command evaluates at several sizes in one
run (by default the model's training size and the paper's 256x256 with its 96-128 px holes).

It also makes the demo figure (a photo, an object-sized hole, input | mask | result).
This module is a little over 400 lines: the metrics, the baselines with their paired
comparison, one evaluation and its report belong together (the command line is
``cli/evaluate``).

One module on purpose (~400 lines): the metrics, the baselines and the run that compares them
are read together when judging a model; the holes and photos it uses live in ``train``.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

# psnr and the OpenCV fills are shared with the accuracy gate and training's validation.
from .metrics import INPAINT_RADIUS, PSNR_CAP, opencv_inpaint, psnr  # noqa: F401

# The seeded hole sets live with the training holes (a budgeted run validates on them too).
from .train.holes import HOLE_SETS, default_hole_sizes, free_form_hole, make_holes, paper_hole  # noqa: F401

BASELINES = ("mean", "telea", "navier-stokes", "fsr-fast")
MODEL_METHODS = ("glcic", "glcic+post")
METRICS = ("l1_hole", "psnr_hole", "ssim_hole", "l1_image", "psnr_image", "ssim_image")
COMPARED = ("psnr_hole", "l1_hole", "ssim_hole")  # metrics of the network-vs-baseline comparisons
LOWER_IS_BETTER = ("l1_hole", "l1_image")
BOOTSTRAP_SAMPLES = 4000
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11


# ---- metrics ------------------------------------------------------------------------------
def _as_float(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def l1_error(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Mean absolute difference of two uint8-scaled images (HxWxC), over ``mask`` pixels if given."""
    diff = np.abs(_as_float(a) - _as_float(b))
    if mask is None:
        return float(diff.mean())
    return float(diff[np.asarray(mask, bool)].mean())


def _gaussian_blur(x: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(x, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> np.ndarray:
    """Per-pixel SSIM (HxW), averaged over channels (Wang et al. 2004, Gaussian window)."""
    a = _as_float(a)
    b = _as_float(b)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    c1 = (0.01 * peak) ** 2
    c2 = (0.03 * peak) ** 2
    maps = []
    for c in range(a.shape[2]):
        x, y = a[..., c], b[..., c]
        mx, my = _gaussian_blur(x), _gaussian_blur(y)
        vx = _gaussian_blur(x * x) - mx * mx
        vy = _gaussian_blur(y * y) - my * my
        cov = _gaussian_blur(x * y) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return np.mean(maps, axis=0)


def ssim(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None, peak: float = 255.0) -> float:
    """Mean SSIM over the image, or over ``mask`` pixels."""
    m = ssim_map(a, b, peak)
    return float(m.mean() if mask is None else m[np.asarray(mask, bool)].mean())


def all_metrics(result: np.ndarray, original: np.ndarray, hole: np.ndarray) -> dict[str, float]:
    return {
        "l1_hole": l1_error(result, original, hole),
        "psnr_hole": psnr(result, original, hole),
        "ssim_hole": ssim(result, original, hole),
        "l1_image": l1_error(result, original),
        "psnr_image": psnr(result, original),
        "ssim_image": ssim(result, original),
    }


# ---- images and methods ----------------------------------------------------------------------
def load_eval_images(
    folder: str | Path, image_size: int, limit: Optional[int] = None, skipped: Optional[list] = None
) -> tuple[list[np.ndarray], list[str]]:
    """Test photos as uint8 RGB, short side resized to ``image_size``, centre-cropped square.

    Unreadable files are skipped with a ``UserWarning`` naming them (and their names appended
    to ``skipped``); ``ValueError`` if none is readable.
    """
    from .train.data import load_square_crops

    def warn(name: str, error: Exception) -> None:
        warnings.warn(f"skipping unreadable image {error}", UserWarning, stacklevel=3)
        if skipped is not None:
            skipped.append(name)

    return load_square_crops(folder, image_size, limit, on_skip=warn)


def baseline_unavailable(method: str) -> Optional[str]:
    """Why ``method`` cannot run here, or None."""
    if method not in BASELINES:
        return f"unknown baseline (choose from {', '.join(BASELINES)})"
    if method == "fsr-fast":
        import cv2

        if not hasattr(cv2, "xphoto"):
            return ("needs OpenCV's contrib modules (cv2.xphoto): pip install opencv-contrib-python-headless "
                    "in place of opencv-python-headless")
    return None


def fill_baseline(method: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    import cv2

    if method == "mean":
        out = image.copy()
        out[hole] = np.rint(image[~hole].reshape(-1, 3).mean(0)).astype(np.uint8)
        return out
    if method != "fsr-fast":
        return opencv_inpaint(image, hole, method)
    bgr = np.ascontiguousarray(image[..., ::-1])
    known = np.where(hole, 0, 255).astype(np.uint8)  # xphoto's mask marks the *known* pixels
    filled = np.zeros_like(bgr)
    cv2.xphoto.inpaint(bgr, known, filled, cv2.xphoto.INPAINT_FSR_FAST)
    return np.where(hole[..., None], filled[..., ::-1], image)


def paired_comparison(ours: Sequence[float], theirs: Sequence[float], groups: int, metric: str, seed: int = 0) -> dict[str, Any]:
    """Our value minus theirs, averaged per photo (``groups`` consecutive holes each), with a 95% interval.

    The interval is a seeded percentile bootstrap over photos (holes of one photo are not
    independent). ``better`` is the share of holes where ours is better (lower L1, higher
    PSNR/SSIM); ties count half.
    """
    diff = np.asarray(ours, np.float64) - np.asarray(theirs, np.float64)
    per_photo = diff.reshape(-1, groups).mean(1)
    rng = np.random.default_rng([seed, 0xB007])
    boot = per_photo[rng.integers(0, len(per_photo), (BOOTSTRAP_SAMPLES, len(per_photo)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    better = float(np.mean((sign * diff > 0) + 0.5 * (diff == 0)))
    return {"diff": float(per_photo.mean()), "ci95": [float(lo), float(hi)], "better": better, "photos": len(per_photo)}


def evaluate(
    model: Any,
    data: str | Path,
    image_size: Optional[int] = None,
    hole_min: Optional[int] = None,
    hole_max: Optional[int] = None,
    local_size: Optional[int] = None,
    holes_per_image: int = 1,
    hole_sets: Sequence[str] = HOLE_SETS,
    seed: int = 0,
    backend: str = "auto",
    device: str = "auto",
    limit: Optional[int] = None,
    batch_size: int = 16,
    baselines: Optional[Sequence[str]] = None,
    workers: Optional[int] = None,
) -> dict[str, Any]:
    """Evaluate ``model`` (a checkpoint path, a Completer, or None for the packaged model; or
    ``False`` for baselines only) on the photos in ``data``.

    Sizes default to the model's training metadata (image size, hole range), else 256 and the
    paper's holes scaled. ``baselines`` None means every baseline that can run here (the
    others are listed in ``settings.unavailable`` with the reason). Baselines run on
    ``workers`` threads (default: every core). Returns ``{"settings", "results": {hole_set:
    {method: {metric: mean}}}, "comparisons": {hole_set: {"glcic vs B": {metric: ...}}}, "images"}``.
    """
    from .api import Completer, load

    completer = None
    if model is not False:
        completer = model if isinstance(model, Completer) else load(model, backend=backend, device=device)
    meta = completer.metadata if completer is not None else {}
    image_size = image_size or int(meta.get("image_size", 256))
    local_default, min_default, max_default = default_hole_sizes(image_size)
    trained_range = meta.get("hole_range") if meta.get("image_size") == image_size else None
    hole_min = hole_min or (trained_range[0] if trained_range else min_default)
    hole_max = hole_max or (trained_range[1] if trained_range else max_default)
    local_size = local_size or (int(meta["local_size"]) if trained_range and "local_size" in meta else local_default)
    local_size = max(local_size, hole_max)
    from .train.holes import check_sizes

    check_sizes(image_size, local_size, hole_min, hole_max)
    for kind in hole_sets:
        if kind not in HOLE_SETS:
            raise ValueError(f"unknown hole set {kind!r}; expected {HOLE_SETS}")
    wanted = list(BASELINES if baselines is None else baselines)
    unavailable = {m: r for m in wanted if (r := baseline_unavailable(m))}
    if baselines is not None and any(m not in BASELINES for m in unavailable):
        raise ValueError(f"unknown baseline(s) {sorted(m for m in unavailable if m not in BASELINES)}; choose from {BASELINES}")
    runnable = [m for m in wanted if m not in unavailable]

    skipped: list[str] = []
    images, names = load_eval_images(data, image_size, limit, skipped)
    samples = [img for img in images for _ in range(holes_per_image)]
    results: dict[str, Any] = {}
    comparisons: dict[str, Any] = {}
    pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1)  # OpenCV releases the GIL
    try:
        for kind in hole_sets:
            holes = make_holes(kind, len(samples), image_size, local_size, hole_min, hole_max, seed)
            per_method: dict[str, list[dict[str, float]]] = {}
            if completer is not None:
                for post in (False, True):
                    outs: list[np.ndarray] = []
                    for s in range(0, len(samples), batch_size):
                        outs += list(completer.complete(samples[s : s + batch_size], holes[s : s + batch_size], postprocess=post))
                    name = "glcic+post" if post else "glcic"
                    per_method[name] = list(pool.map(all_metrics, outs, samples, holes))
            for m in runnable:
                per_method[m] = list(pool.map(lambda img, h, m=m: all_metrics(fill_baseline(m, img, h), img, h), samples, holes))
            results[kind] = {
                m: {k: float(np.mean([r[k] for r in rows])) for k in METRICS} for m, rows in per_method.items()
            }
            results[kind]["_hole_fraction"] = float(np.mean([h.mean() for h in holes]))
            comparisons[kind] = {
                f"{ours} vs {theirs}": {
                    k: paired_comparison([r[k] for r in per_method[ours]], [r[k] for r in per_method[theirs]],
                                         holes_per_image, k, seed)
                    for k in COMPARED
                }
                for ours in MODEL_METHODS if ours in per_method
                for theirs in runnable
            }
    finally:
        pool.shutdown()
    return {
        "settings": {
            "data": str(data),
            "images": len(images),
            "skipped": skipped,
            "holes_per_image": holes_per_image,
            "image_size": image_size,
            "local_size": local_size,
            "hole_range": [hole_min, hole_max],
            "seed": seed,
            "model": meta.get("source", "none") if completer is not None else "none",
            "model_step": meta.get("training_step"),
            "model_image_size": meta.get("image_size"),
            "backend": completer.backend.name if completer is not None else None,
            "inpaint_radius": INPAINT_RADIUS,
            "unavailable": unavailable,
        },
        "results": results,
        "comparisons": comparisons,
        "images": names,
    }


def evaluation_sizes(spec: str, model_image_size: Optional[int]) -> list[int]:
    """``"trained,256"`` -> [trained size, 256] without repeats; ``trained`` is dropped when unknown."""
    sizes: list[int] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token == "trained":
            size = model_image_size
        else:
            try:
                size = int(token)
            except ValueError:
                raise ValueError(f"image size {token!r} is neither a number nor 'trained'") from None
            if size < 8:
                raise ValueError(f"image size {size} is too small (at least 8)")
        if size is not None and size not in sizes:
            sizes.append(size)
    if not sizes:
        sizes.append(256)
    return sizes


# ---- reporting -------------------------------------------------------------------------------
def _fmt_diff(c: dict[str, Any], digits: int) -> str:
    lo, hi = c["ci95"]
    return f"{c['diff']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def format_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"Evaluation on {s['images']} photos x {s['holes_per_image']} hole(s) each, {s['image_size']}x{s['image_size']}, "
        f"seed {s['seed']}; paper holes {s['hole_range'][0]}-{s['hole_range'][1]} px in a {s['local_size']} px region. "
        "L1 in 0..255 units (lower is better), PSNR in dB and SSIM (higher is better); "
        "\"hole\" = over the hole pixels, \"image\" = over the whole image.",
        "",
    ]
    if s.get("skipped"):
        lines += [f"Skipped (unreadable): {', '.join(s['skipped'])}.", ""]
    for method, reason in (s.get("unavailable") or {}).items():
        lines += [f"Not run: {method} ({reason}).", ""]
    for kind, rows in report["results"].items():
        frac = rows.get("_hole_fraction")
        lines.append(f"**{kind} holes** (mean hole area {100 * frac:.1f}% of the image)" if frac is not None else f"**{kind} holes**")
        lines.append("")
        lines.append("| method | L1 hole | PSNR hole | SSIM hole | L1 image | PSNR image | SSIM image |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for m, r in rows.items():
            if m.startswith("_"):
                continue
            lines.append(
                f"| {m} | {r['l1_hole']:.2f} | {r['psnr_hole']:.2f} | {r['ssim_hole']:.3f} | "
                f"{r['l1_image']:.2f} | {r['psnr_image']:.2f} | {r['ssim_image']:.3f} |"
            )
        lines.append("")
        pairs = report.get("comparisons", {}).get(kind) or {}
        if pairs:
            lines.append("| network minus baseline, per photo [95% interval] | PSNR hole (dB) | L1 hole | SSIM hole | holes better (PSNR) |")
            lines.append("|---|---:|---:|---:|---:|")
            for pair, c in pairs.items():
                lines.append(f"| {pair} | {_fmt_diff(c['psnr_hole'], 2)} | {_fmt_diff(c['l1_hole'], 2)} | "
                             f"{_fmt_diff(c['ssim_hole'], 3)} | {100 * c['psnr_hole']['better']:.0f}% |")
            lines.append("")
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    s = report["settings"]
    out = [f"{s['image_size']}x{s['image_size']}, {s['images']} photos"]
    for kind, rows in report["results"].items():
        out.append(f"{kind} holes")
        out.append(f"  {'method':<14}" + "".join(f"{k:>12}" for k in METRICS))
        for m, r in rows.items():
            if not m.startswith("_"):
                out.append(f"  {m:<14}" + "".join(f"{r[k]:>12.3f}" for k in METRICS))
    return "\n".join(out)


# ---- the demo figure -------------------------------------------------------------------------
FIGURE_GAP = 4


def object_hole(size: int, seed: int = 0) -> np.ndarray:
    """An object-sized hole: a paper-sized rectangle (37-50% of the side) in the middle half of a square."""
    rng = np.random.default_rng([seed, 0xF16])
    lo, hi = max(2, round(size * 96 / 256)), max(3, round(size * 128 / 256))
    h, w = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    y = int(rng.integers((size - h) // 4, (size - h) * 3 // 4 + 1))
    x = int(rng.integers((size - w) // 4, (size - w) * 3 // 4 + 1))
    mask = np.zeros((size, size), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask


def demo_figure(completer: Any, image: np.ndarray, hole: np.ndarray, postprocess: bool = False) -> np.ndarray:
    """input (hole in white) | mask | result, side by side with white gaps: one uint8 RGB picture."""
    result = np.asarray(completer.complete(image, hole, postprocess=postprocess))
    shown = image.copy()
    shown[hole] = 255
    mask = np.repeat((hole * 255).astype(np.uint8)[..., None], 3, axis=2)
    gap = np.full((image.shape[0], FIGURE_GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([shown, gap, mask, gap, result], axis=1)
