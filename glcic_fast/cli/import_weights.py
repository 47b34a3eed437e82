"""``glcic-fast import-weights``: the authors' Torch7 models or GLCIC-PyTorch checkpoints as
glcic-fast checkpoints (``glcic_fast.weights_import``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsImportError
from .common import error

NAME = "import-weights"
FORMATS = ("auto", "torch7", "glcic-pytorch")  # == glcic_fast.weights_import.FORMATS (which imports torch)


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
    from ..weights_import import import_weights  # imports torch: only when converting

    def fail(message: str, code: int = 2) -> int:
        return error(NAME, message, code)

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
