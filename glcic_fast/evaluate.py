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
``telea`` and ``navier-stokes`` inpainting (radius 3). Per-image numbers are averaged over
images (PSNR too, so each image counts equally).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

HOLE_SETS = ("paper", "free-form")
BASELINES = ("mean", "telea", "navier-stokes")
MODEL_METHODS = ("glcic", "glcic+post")
INPAINT_RADIUS = 3
METRICS = ("l1_hole", "psnr_hole", "ssim_hole", "l1_image", "psnr_image", "ssim_image")
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


# PSNR of identical images is infinite; cap it so that an exactly recovered hole (a flat
# white background, say) does not turn the mean over images into infinity.
PSNR_CAP = 60.0


def psnr(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None, peak: float = 255.0, cap: Optional[float] = PSNR_CAP) -> float:
    """Peak signal-to-noise ratio in dB, at most ``cap`` (``cap=None``: ``inf`` for identical images)."""
    sq = (_as_float(a) - _as_float(b)) ** 2
    mse = float(sq.mean() if mask is None else sq[np.asarray(mask, bool)].mean())
    value = float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
    return value if cap is None else min(value, cap)


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


# ---- holes ---------------------------------------------------------------------------------
def default_hole_sizes(image_size: int) -> tuple[int, int, int]:
    """The paper's (local 128, holes 96..128 at 256) scaled to ``image_size``: (local, min, max)."""
    local = max(4, round(image_size * 128 / 256))
    return local, max(1, round(image_size * 96 / 256)), max(1, min(local, round(image_size * 128 / 256)))


def paper_hole(rng: np.random.Generator, size: int, local: int, hole_min: int, hole_max: int) -> np.ndarray:
    from .train.holes import sample_hole

    mask, _, _ = sample_hole(rng, size, local, hole_min, hole_max)
    return mask > 0


def free_form_hole(rng: np.random.Generator, size: int) -> np.ndarray:
    """1-4 brush strokes: polylines of 2-5 segments, random direction and length, thick round pen."""
    import cv2

    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        y, x = rng.uniform(0, size, 2)
        width = int(rng.integers(max(2, size // 24), max(3, size // 8) + 1))
        for _ in range(int(rng.integers(2, 6))):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(size / 10, size / 3)
            ny = float(np.clip(y + length * np.sin(angle), 0, size - 1))
            nx = float(np.clip(x + length * np.cos(angle), 0, size - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, width)
            y, x = ny, nx
    mask = canvas > 0
    if not mask.any():  # cannot happen with width >= 2, but keep every sample valid
        mask[size // 2, size // 2] = True
    return mask


def make_holes(kind: str, count: int, size: int, local: int, hole_min: int, hole_max: int, seed: int) -> list[np.ndarray]:
    """``count`` seeded masks (bool, size x size); the same arguments give the same holes."""
    tag = HOLE_SETS.index(kind)
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, tag, i])
        out.append(paper_hole(rng, size, local, hole_min, hole_max) if kind == "paper" else free_form_hole(rng, size))
    return out


# ---- images and methods ----------------------------------------------------------------------
def load_eval_images(folder: str | Path, image_size: int, limit: Optional[int] = None) -> tuple[list[np.ndarray], list[str]]:
    """Test photos as uint8 RGB, short side resized to ``image_size``, centre-cropped square."""
    from .train.data import list_images, open_rgb, resize_short_side

    files = list_images(folder)
    if limit is not None:
        files = files[:limit]
    images, names = [], []
    for f in files:
        img = resize_short_side(open_rgb(f, image_size), image_size)
        w, h = img.size
        x0, y0 = (w - image_size) // 2, (h - image_size) // 2
        images.append(np.asarray(img.crop((x0, y0, x0 + image_size, y0 + image_size)).convert("RGB"), dtype=np.uint8))
        names.append(str(f.relative_to(Path(folder))))
    return images, names


def fill_baseline(method: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    import cv2

    if method == "mean":
        out = image.copy()
        out[hole] = np.rint(image[~hole].reshape(-1, 3).mean(0)).astype(np.uint8)
        return out
    flag = {"telea": cv2.INPAINT_TELEA, "navier-stokes": cv2.INPAINT_NS}[method]
    bgr = np.ascontiguousarray(image[..., ::-1])
    filled = cv2.inpaint(bgr, hole.astype(np.uint8) * 255, INPAINT_RADIUS, flag)[..., ::-1]
    return np.where(hole[..., None], filled, image)


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
    baselines: Sequence[str] = BASELINES,
) -> dict[str, Any]:
    """Evaluate ``model`` (a checkpoint path, a Completer, or None for the packaged model; or
    ``False`` for baselines only) on the photos in ``data``.

    Sizes default to the model's training metadata (image size, hole range), else 256 and the
    paper's holes scaled. Returns ``{"settings": ..., "results": {hole_set: {method: {metric:
    mean}}}, "count": ...}``.
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

    images, names = load_eval_images(data, image_size, limit)
    samples = [img for img in images for _ in range(holes_per_image)]
    methods = (list(MODEL_METHODS) if completer is not None else []) + list(baselines)
    results: dict[str, Any] = {}
    for kind in hole_sets:
        holes = make_holes(kind, len(samples), image_size, local_size, hole_min, hole_max, seed)
        per_method: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
        if completer is not None:
            for post in (False, True):
                outs: list[np.ndarray] = []
                for s in range(0, len(samples), batch_size):
                    outs += list(completer.complete(samples[s : s + batch_size], holes[s : s + batch_size], postprocess=post))
                name = "glcic+post" if post else "glcic"
                per_method[name] = [all_metrics(o, img, h) for o, img, h in zip(outs, samples, holes)]
        for m in baselines:
            per_method[m] = [all_metrics(fill_baseline(m, img, h), img, h) for img, h in zip(samples, holes)]
        results[kind] = {
            m: {k: float(np.mean([r[k] for r in rows])) for k in METRICS} for m, rows in per_method.items()
        }
        results[kind]["_hole_fraction"] = float(np.mean([h.mean() for h in holes]))
    return {
        "settings": {
            "data": str(data),
            "images": len(images),
            "holes_per_image": holes_per_image,
            "image_size": image_size,
            "local_size": local_size,
            "hole_range": [hole_min, hole_max],
            "seed": seed,
            "model": meta.get("source", "none") if completer is not None else "none",
            "model_step": meta.get("training_step"),
            "backend": completer.backend.name if completer is not None else None,
            "inpaint_radius": INPAINT_RADIUS,
        },
        "results": results,
        "images": names,
    }


# ---- reporting -------------------------------------------------------------------------------
def format_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"Evaluation on {s['images']} photos x {s['holes_per_image']} hole(s) each, {s['image_size']}x{s['image_size']}, "
        f"seed {s['seed']}; paper holes {s['hole_range'][0]}-{s['hole_range'][1]} px in a {s['local_size']} px region. "
        "L1 in 0..255 units (lower is better), PSNR in dB and SSIM (higher is better); "
        "\"hole\" = over the hole pixels, \"image\" = over the whole image.",
        "",
    ]
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
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    out = []
    for kind, rows in report["results"].items():
        out.append(f"{kind} holes")
        out.append(f"  {'method':<14}" + "".join(f"{k:>12}" for k in METRICS))
        for m, r in rows.items():
            if not m.startswith("_"):
                out.append(f"  {m:<14}" + "".join(f"{r[k]:>12.3f}" for k in METRICS))
    return "\n".join(out)
