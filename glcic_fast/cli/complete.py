"""``glcic-fast complete``: fill the holes of image files (or ``--demo``, the bundled photo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..api import load
from ..errors import InputError
from .common import IMAGE_SUFFIXES, UsageError, add_model_options, write_image_atomic

DEMO_IMAGE = Path(__file__).resolve().parent.parent / "data" / "demo.jpg"


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        "complete",
        help="fill the holes of images",
        description=(
            "Fill the hole of each image where its mask is white (non-zero). Pixels outside the hole are "
            "kept byte for byte. IMAGE may be files or folders; masks come from --mask (a file for one "
            "image, or a folder holding a mask with the same file stem as each image)."
        ),
        epilog=(
            "examples:\n"
            "  glcic-fast complete --demo -o demo.png\n"
            "  glcic-fast complete photo.jpg --mask hole.png -o filled.png\n"
            "  glcic-fast complete photos/ --mask masks/ -o filled/ --postprocess"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--mask", help="mask file (one image) or folder of masks named like the images")
    p.add_argument("-o", "--output", help="output file (one image) or folder; --demo: default glcic_demo.png")
    p.add_argument("--demo", action="store_true", help="complete the bundled photo with a generated hole and "
                   "write input | mask | result side by side")
    p.add_argument("--postprocess", action="store_true", help="the paper's post-processing (Telea + Poisson blending)")
    p.add_argument("--mask-threshold", type=float, default=None,
                   help="treat a greyscale mask as hole where >= this fraction of white (the authors use 0.2); "
                   "without it masks must be binary")
    p.add_argument("--authors-mode", action="store_true",
                   help="the authors' script: resize to long side <= 600 (multiple of 4), threshold 0.2, post-process")
    p.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8)")
    p.add_argument("--seed", type=int, default=0, help="--demo: seed of the generated hole")
    add_model_options(p)
    p.set_defaults(func=run)


def _list_images(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                raise UsageError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def _pair_masks(images: list[Path], mask: Optional[str]) -> list[Path]:
    if mask is None:
        raise UsageError("--mask is required (a mask file, or a folder of masks named like the images)")
    mpath = Path(mask)
    if mpath.is_file():
        if len(images) != 1:
            raise UsageError(f"--mask is one file but there are {len(images)} images; give a folder of masks")
        return [mpath]
    if not mpath.is_dir():
        raise UsageError(f"{mpath}: no such mask file or folder")
    by_stem = {f.stem: f for f in mpath.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES}
    missing = [str(i) for i in images if i.stem not in by_stem]
    if missing:
        raise UsageError(f"no mask in {mpath} for {len(missing)} image(s), e.g. {missing[0]} (masks need the image's file stem)")
    return [by_stem[i.stem] for i in images]


def _outputs(images: list[Path], output: Optional[str]) -> list[Path]:
    if output is None:
        raise UsageError("-o/--output is required")
    out = Path(output)
    if len(images) == 1 and not out.is_dir() and out.suffix:
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"{out}: unknown image type {out.suffix!r} (use {', '.join(IMAGE_SUFFIXES)})")
        return [out]
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder (several images need an output folder)")
    names = [out / (i.stem + (i.suffix if i.suffix.lower() in (".png", ".bmp", ".tif", ".tiff") else ".png")) for i in images]
    if len(set(names)) != len(names):
        raise UsageError("two images share a file stem; their outputs would collide")
    return names


def _read(path: Path, mode: str, what: str):
    """The file's pixels converted to ``mode`` ("RGB" for images, "L" for masks)."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: cannot read {what} ({e})") from None


def _read_rgb(path: Path):
    return _read(path, "RGB", "image")


def _read_grey(path: Path):
    return _read(path, "L", "mask")


def _load_completer(args):
    try:
        return load(
            args.model, backend=args.backend, device=args.device, precision=args.precision,
            mask_threshold=args.mask_threshold, postprocess=args.postprocess, authors_mode=args.authors_mode,
        )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def demo_hole(h: int, w: int, seed: int = 0):
    """A rectangular hole drawn as the paper draws training holes, scaled to the image."""
    rng = np.random.default_rng(seed)
    short = min(h, w)
    lo, hi = max(4, round(short * 96 / 256)), max(5, round(short * 128 / 256))
    hh, ww = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    y = int(rng.integers((h - hh) // 4, (h - hh) * 3 // 4 + 1))
    x = int(rng.integers((w - ww) // 4, (w - ww) * 3 // 4 + 1))
    mask = np.zeros((h, w), dtype=bool)
    mask[y : y + hh, x : x + ww] = True
    return mask


def run_demo(args) -> int:
    out = Path(args.output or "glcic_demo.png")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{out}: unknown image type {out.suffix!r}")
    completer = _load_completer(args)  # first: a missing default model is the likelier problem
    if not DEMO_IMAGE.is_file():
        raise UsageError(f"the bundled demo photo is missing ({DEMO_IMAGE}); reinstall glcic-fast")
    image = _read_rgb(DEMO_IMAGE)
    h, w = image.shape[:2]
    hole = demo_hole(h, w, seed=args.seed)
    result = completer.complete(image, hole)
    shown_input = image.copy()
    shown_input[hole] = 255  # the hole as the network sees it: unknown
    mask_rgb = np.repeat((hole * 255).astype(np.uint8)[..., None], 3, axis=2)
    gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
    write_image_atomic(out, np.concatenate([shown_input, gap, mask_rgb, gap, result], axis=1))
    print(f"wrote {out}: input | mask | result ({completer.backend.name}, {completer.backend.device}, "
          f"{completer.backend.precision}, model: {completer.metadata.get('source', 'packaged default')})")
    return 0


def run(args) -> int:
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.demo:
        if args.images:
            raise UsageError("--demo takes no IMAGE arguments")
        return run_demo(args)
    if not args.images:
        raise UsageError("give IMAGE files or folders (or --demo)")
    images = _list_images(args.images)
    masks = _pair_masks(images, args.mask)
    outputs = _outputs(images, args.output)
    completer = _load_completer(args)
    progress = tqdm(total=len(images), unit="img", disable=len(images) == 1 or not sys.stderr.isatty())
    for start in range(0, len(images), args.batch_size):
        chunk = range(start, min(start + args.batch_size, len(images)))
        pixels = [_read_rgb(images[i]) for i in chunk]
        holes = [_read_grey(masks[i]) for i in chunk]
        try:
            results = completer.complete(pixels, holes)
        except InputError as e:
            names = ", ".join(str(images[i]) for i in chunk)
            raise UsageError(f"{e} (in {names})") from None
        for i, result in zip(chunk, results):
            write_image_atomic(outputs[i], np.asarray(result))
        progress.update(len(chunk))
    progress.close()
    if len(images) == 1:
        print(f"wrote {outputs[0]}")
    else:
        print(f"wrote {len(images)} images to {outputs[0].parent}")
    return 0
