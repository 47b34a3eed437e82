"""``glcic-fast complete``: fill the holes of image files (or ``--demo``, the bundled photo).

What goes wrong with a run, and what it does then:

- Problems with the arguments as a whole (no such file, a mask folder with two masks for one
  image, outputs that would collide) stop it before anything is read or written (status 2).
- A file in a folder that is not a regular file (a FIFO, a socket, a device) is skipped with a
  warning: opening it could block forever.
- One image among several that cannot be used (unreadable or truncated file, a mask that does
  not fit it, a hole too large for memory) is skipped with a warning naming it and why; the
  others are completed, and the run ends with a summary and status 1 (a run of one image
  reports it as an error, status 2). Every output is written whole or not at all (atomic
  rename), so no file is ever half-written, and a skipped image gets none.

Images keep their mode (RGBA keeps its alpha, 16-bit stays 16-bit, palette images keep their
palette) where the output format can hold it. JPEG re-compresses every pixel: writing one
warns that pixels outside the hole change; WebP is written lossless.
"""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from ..api import load
from ..authors import SCRIPT_VERSIONS
from ..errors import InputError
from ..pil_modes import SUPPORTED_MODES
from ..preprocess import RESIZE_MODES
from .common import IMAGE_SUFFIXES, UsageError, add_model_options, write_image_atomic

DEMO_IMAGE = Path(__file__).resolve().parent.parent / "data" / "demo.jpg"
LOSSY_SUFFIXES = (".jpg", ".jpeg")
# Modes the completer refuses (their RGB round trip is not exact) but a file may hold: the
# command line converts them, as any viewer would show them.
_CONVERT_ON_READ = {"CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB", "RGBa": "RGBA",
                    "La": "LA", "PA": "RGBA"}


def add_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        "complete",
        help="fill the holes of images",
        description=(
            "Fill the hole of each image where its mask is white (non-zero). Outside the hole every pixel is "
            "kept byte for byte in PNG, WebP (written lossless), BMP and TIFF outputs, in the image's own mode "
            "(alpha, 16-bit, palette); JPEG re-compresses the whole image, so a JPEG output warns. IMAGE may be "
            "files or folders; masks come from --mask (a file for one image, or a folder holding one mask with "
            "each image's file stem). Among several images, one that cannot be used is skipped with a warning "
            "naming it and the run ends with status 1; nothing is ever half-written."
        ),
        epilog=(
            "examples:\n"
            "  glcic-fast complete --demo -o demo.png\n"
            "  glcic-fast complete photo.jpg --mask hole.png -o filled.png\n"
            "  glcic-fast complete photos/ --mask masks/ -o filled/ --postprocess\n"
            "  glcic-fast complete huge.jpg --mask hole.png -o small.png --resize authors   # downscale first"
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
    p.add_argument("--resize", choices=RESIZE_MODES, default=None,
                   help="pad (default: full resolution; a large photo costs only what its holes need) or authors "
                   "(shrink to a long side <= 600, complete, scale the hole back up)")
    authors = p.add_argument_group(
        "authors mode", "write what the authors' inpaint.lua writes, byte for byte, at its resolution "
        "(long side <= maxdim, sides rounded to multiples of 4); docs/authors-mode.md")
    authors.add_argument("--authors-mode", action="store_true", help="run the authors' script (masks read as it reads "
                         "them: grey, colour or grey+alpha, hole where >= 0.2 after scaling)")
    authors.add_argument("--authors-version", choices=sorted(SCRIPT_VERSIONS), default=None,
                         help="which release: 2020 (default; maxdim 600, no post-processing) or 2018 (maxdim 500, "
                         "post-processing)")
    authors.add_argument("--authors-postproc", action=argparse.BooleanOptionalAction, default=None,
                         help="the script's --postproc (Telea + Poisson blending as OpenCV 3.1 did it); "
                         "default: the version's")
    authors.add_argument("--authors-maxdim", type=int, default=None, metavar="N",
                         help="the script's --maxdim (default: the version's)")
    p.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8)")
    p.add_argument("--seed", type=int, default=0, help="--demo: seed of the generated hole")
    add_model_options(p)
    p.set_defaults(func=run)


def warn(message: str) -> None:
    print(f"glcic-fast complete: warning: {message}", file=sys.stderr)


def _kind(path: Path) -> Optional[str]:
    """None for a regular file (symlinks followed), else what it is ("a FIFO", ...)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing (a broken link?)"
    if stat.S_ISREG(mode):
        return None
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _folder_files(folder: Path) -> list[Path]:
    """The regular image files in ``folder``, sorted; other entries with image names are skipped with a warning."""
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        kind = _kind(entry)
        if kind is None:
            found.append(entry)
        else:
            warn(f"skipping {entry}: {kind}, not an image file")
    return found


def _list_images(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _folder_files(path)
            if not found:
                raise UsageError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        elif _kind(path) is not None:
            raise UsageError(f"{path}: {_kind(path)}, not an image file")
        else:
            files.append(path)
    return files


def _pair_masks(images: list[Path], mask: Optional[str]) -> list[Path]:
    if mask is None:
        raise UsageError("--mask is required (a mask file, or a folder of masks named like the images)")
    mpath = Path(mask)
    if not mpath.exists():
        raise UsageError(f"{mpath}: no such mask file or folder")
    if not mpath.is_dir():
        if _kind(mpath) is not None:
            raise UsageError(f"{mpath}: {_kind(mpath)}, not a mask file")
        if len(images) != 1:
            raise UsageError(f"--mask is one file but there are {len(images)} images; give a folder of masks")
        return [mpath]
    by_stem: dict[str, list[Path]] = {}
    for f in _folder_files(mpath):
        by_stem.setdefault(f.stem, []).append(f)
    missing = [str(i) for i in images if i.stem not in by_stem]
    if missing:
        raise UsageError(f"no mask in {mpath} for {len(missing)} image(s), e.g. {missing[0]} (masks need the image's file stem)")
    ambiguous = [i for i in images if len(by_stem[i.stem]) > 1]
    if ambiguous:
        first = ambiguous[0]
        raise UsageError(
            f"{len(ambiguous)} image(s) match more than one mask in {mpath}, e.g. {first}: "
            f"{', '.join(f.name for f in by_stem[first.stem])}; keep one mask per image stem"
        )
    return [by_stem[i.stem][0] for i in images]


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


def _warn_if_lossy(path: Path) -> None:
    if path.suffix.lower() in LOSSY_SUFFIXES:
        warn(f"{path}: JPEG is lossy, so pixels outside the hole will not be kept byte for byte (and alpha is "
             "dropped); write .png, .webp, .bmp or .tif to keep them exactly")


def _read_image(path: Path):
    """The file as a PIL image the completer takes (its own mode where supported); ``InputError`` if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not half-way through the batch
            if im.mode not in SUPPORTED_MODES and im.mode in _CONVERT_ON_READ:
                return im.convert(_CONVERT_ON_READ[im.mode])
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read image ({e})") from None


def _read_grey(path: Path):
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read mask {path} ({e})") from None


def _read_mask_file(path: Path):
    """The mask with the file's own channels (grey, grey+alpha, RGB, RGBA): the script's reading."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputError(f"cannot read mask {path} ({e})") from None


def _load_completer(args):
    authors_options = (args.authors_version, args.authors_postproc, args.authors_maxdim)
    if not args.authors_mode and authors_options != (None, None, None):
        raise UsageError("--authors-version, --authors-postproc and --authors-maxdim need --authors-mode")
    if args.authors_mode and (args.postprocess or args.mask_threshold is not None):
        raise UsageError("--authors-mode follows the script: its threshold is 0.2 (no --mask-threshold) and its "
                         "post-processing is --authors-postproc (not --postprocess)")
    if args.authors_mode and args.resize is not None:
        raise UsageError("--authors-mode resizes as the script does (--authors-maxdim); it takes no --resize")
    try:
        return load(
            args.model, backend=args.backend, device=args.device, precision=args.precision,
            mask_threshold=args.mask_threshold, postprocess=args.postprocess, authors_mode=args.authors_mode,
            resize=args.resize or "pad", authors_version=args.authors_version,
            authors_postprocess=args.authors_postproc, authors_maxdim=args.authors_maxdim,
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
    with Image.open(DEMO_IMAGE) as im:
        image = np.asarray(im.convert("RGB"))
    h, w = image.shape[:2]
    hole = demo_hole(h, w, seed=args.seed)
    result = completer.complete(image, hole)
    if result.shape != image.shape:  # authors mode answers at the script's resolution: show it there
        size = (result.shape[1], result.shape[0])
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        hole = np.asarray(Image.fromarray(hole).resize(size, Image.Resampling.NEAREST))
    shown_input = image.copy()
    shown_input[hole] = 255  # the hole as the network sees it: unknown
    mask_rgb = np.repeat((hole * 255).astype(np.uint8)[..., None], 3, axis=2)
    gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
    _warn_if_lossy(out)
    write_image_atomic(out, np.concatenate([shown_input, gap, mask_rgb, gap, result], axis=1))
    print(f"wrote {out}: input | mask | result ({completer.backend.name}, {completer.backend.device}, "
          f"{completer.backend.precision}, model: {completer.metadata.get('source', 'packaged default')})")
    return 0


class _Run:
    """One ``complete`` over many files: pairs in, outputs written whole, failures listed."""

    def __init__(self, completer, images: list[Path], masks: list[Path], outputs: list[Path], read_mask=None):
        self.completer, self.images, self.masks, self.outputs = completer, images, masks, outputs
        self.read_mask = read_mask or _read_grey
        self.failed: list[tuple[Path, str]] = []
        self.written = 0

    def skip(self, i: int, reason: str) -> None:
        if len(self.images) == 1:  # nothing else to do: a plain error, as for bad arguments
            raise UsageError(f"{self.images[i]}: {reason}")
        warn(f"skipping {self.images[i]}: {reason}")
        self.failed.append((self.images[i], reason))

    def chunk(self, indices: range) -> int:
        """Complete and write the images ``indices``; returns how many were handled."""
        pairs = []
        for i in indices:
            try:
                pairs.append((i, _read_image(self.images[i]), self.read_mask(self.masks[i])))
            except InputError as e:
                self.skip(i, str(e))
        results = self._complete(pairs)
        for (i, _, _), result in zip(pairs, results):
            if result is None:
                continue
            try:
                write_image_atomic(self.outputs[i], result)
                self.written += 1
            except (OSError, ValueError, KeyError) as e:  # PIL: this format cannot hold this mode
                self.skip(i, f"cannot write {self.outputs[i]} ({e}); .tif holds every mode")
        return len(indices)

    def _complete(self, pairs: list) -> list:
        """One batched call; if an image in it is unusable, each alone, to name it."""
        if not pairs:
            return []
        try:
            return self.completer.complete([p[1] for p in pairs], [p[2] for p in pairs])
        except InputError:
            if len(pairs) == 1:
                return self._one(*pairs[0])
            return [self._one(*pair) for pair in pairs]

    def _one(self, i: int, image, mask):
        try:
            return self.completer.complete([image], [mask])[0]
        except InputError as e:
            self.skip(i, f"{e} (mask {self.masks[i]})")
            return None


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
    if len(outputs) == 1:
        _warn_if_lossy(outputs[0])
    completer = _load_completer(args)
    job = _Run(completer, images, masks, outputs, _read_mask_file if args.authors_mode else _read_grey)
    progress = tqdm(total=len(images), unit="img", disable=len(images) == 1 or not sys.stderr.isatty())
    for start in range(0, len(images), args.batch_size):
        progress.update(job.chunk(range(start, min(start + args.batch_size, len(images)))))
    progress.close()
    if job.failed:
        listed = "; ".join(f"{path} ({reason})" for path, reason in job.failed[:5])
        more = f"; and {len(job.failed) - 5} more" if len(job.failed) > 5 else ""
        print(f"glcic-fast complete: error: {len(job.failed)} of {len(images)} image(s) skipped, "
              f"{job.written} written: {listed}{more}", file=sys.stderr)
        return 1
    if len(images) == 1:
        print(f"wrote {outputs[0]}")
    else:
        print(f"wrote {len(images)} images to {outputs[0].parent}")
    return 0
