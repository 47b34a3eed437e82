"""The ``glcic-fast`` command.

Subcommands defined here: ``complete`` (fill holes in images, or ``--demo``) and ``info``.
Feature modules add their own (``train``, ``eval``, ``bench``, ``build-engine``, ...) through
``add_subcommand(subparsers)``, listed in ``SUBCOMMAND_MODULES``; they import their heavy
dependencies lazily so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

SUBCOMMAND_MODULES = (
    "glcic_fast.train.cli",
    "glcic_fast.evaluate",
    "glcic_fast.bench",
    "glcic_fast.onnx_cli",
    "glcic_fast.tensorrt_build",
    "glcic_fast.triton_server",
    "glcic_fast.weights_import",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEMO_IMAGE = Path(__file__).parent / "data" / "demo.jpg"


class UsageError(Exception):
    """Bad command-line input: reported as ``glcic-fast CMD: error: ...``, exit status 2."""


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (.safetensors) or TensorRT engine (.plan); default: the packaged model")
    p.add_argument(
        "--backend", default="auto",
        help="auto (default: triton/torch on a GPU, onnxruntime on a CPU), torch, onnxruntime, triton, tensorrt",
    )
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--precision", default="auto", help="auto (fp16 on a GPU, fp32 on a CPU), fp32, fp16 or bf16")


def add_complete(subparsers) -> None:
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
    _add_model_options(p)
    p.set_defaults(func=run_complete)


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


def _read_rgb(path: Path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: cannot read image ({e})") from None


def _read_grey(path: Path):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: cannot read mask ({e})") from None


def write_image_atomic(path: Path, pixels) -> None:
    """Save an RGB uint8 array; a failure leaves no partial file."""
    from PIL import Image

    from .checkpoint import atomic_write_bytes

    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    kind = fmt[path.suffix.lower()]
    options = {"quality": 95} if kind in ("JPEG", "WEBP") else {}
    atomic_write_bytes(path, lambda tmp: Image.fromarray(pixels).save(tmp, format=kind, **options))


def _load_completer(args):
    from . import load

    try:
        return load(
            args.model, backend=args.backend, device=args.device, precision=args.precision,
            mask_threshold=args.mask_threshold, postprocess=args.postprocess, authors_mode=args.authors_mode,
        )
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def demo_hole(h: int, w: int, seed: int = 0):
    """A rectangular hole drawn as the paper draws training holes, scaled to the image."""
    import numpy as np

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
    import numpy as np

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


def run_complete(args) -> int:
    import numpy as np
    from tqdm import tqdm

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
    from .preprocess import InputError

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


def add_info(subparsers) -> None:
    p = subparsers.add_parser("info", help="devices, backends (and why any cannot run), versions")
    p.set_defaults(func=run_info)


def run_info(args) -> int:
    import platform

    from . import __version__, backends
    from .api import DEFAULT_MODEL

    def version(module: str) -> str:
        try:
            return getattr(importlib.import_module(module), "__version__", "installed")
        except Exception:
            return "not installed"

    print(f"glcic-fast {__version__}  (Python {platform.python_version()}, {platform.machine()})")
    print("versions: " + ", ".join(f"{m} {version(m)}" for m in ("torch", "onnxruntime", "onnx", "triton", "tensorrt", "cv2")))
    devices = ["cpu"]
    try:
        import torch

        if torch.cuda.is_available():
            devices.append("cuda")
            for i in range(torch.cuda.device_count()):
                prop = torch.cuda.get_device_properties(i)
                print(f"cuda:{i}: {prop.name}, compute capability {prop.major}.{prop.minor}, "
                      f"{prop.total_memory / 2**30:.0f} GiB")
        else:
            print("cuda: no GPU visible to PyTorch")
    except ImportError:
        print("cuda: PyTorch not installed")
    print(f"cpu: {os.cpu_count()} logical cores")
    print("backends:")
    for name in backends.REGISTRY:
        for device in ("cpu", "cuda"):
            reason = backends.unavailable_reason(name, device)
            print(f"  {name:12s} {device:5s} {'available' if reason is None else 'no: ' + reason}")
    for device in devices:
        try:
            print(f"auto on {device}: {backends.resolve('auto', device)}")
        except backends.BackendUnavailable as e:
            print(f"auto on {device}: {e}")
    print(f"default model: {DEFAULT_MODEL if DEFAULT_MODEL.is_file() else 'missing (' + str(DEFAULT_MODEL) + ')'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glcic-fast",
        description="Fast image completion with GLCIC (Iizuka, Simo-Serra, Ishikawa, SIGGRAPH 2017).",
        epilog="Start with: glcic-fast complete --demo",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"glcic-fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_complete(sub)
    add_info(sub)
    for module in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):
                continue  # a feature module not present in this build
            raise
        mod.add_subcommand(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"glcic-fast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glcic-fast {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # user-facing errors from the library carry their own message
        from .backends import BackendUnavailable
        from .checkpoint import CheckpointError
        from .preprocess import InputError

        if isinstance(e, (BackendUnavailable, CheckpointError, InputError, ValueError, FileNotFoundError)):
            print(f"glcic-fast {args.command}: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
