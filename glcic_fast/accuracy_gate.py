"""The accuracy gate every reduced-precision CPU variant (bf16, int8) must pass before the
automatic choice may use it.

On held-out photos (``photo_samples.HELDOUT_PHOTOS``, never used for calibration) with the
paper's holes, at the model's trained size and at 256x256, the variant's completed image
(network output in the hole, the photo outside) is compared with fp32's:

1. hole PSNR against the ground truth may drop by at most ``MAX_HOLE_PSNR_LOSS_DB`` (0.1 dB)
   from fp32's, on average over the samples: the variant fills holes as well as fp32 does.
   0.1 dB is a small fraction of the differences between methods that matter (the default
   model vs OpenCV Telea is 0.04 dB; with post-processing 0.85 dB), and about the run-to-run
   spread of the mean over ~50 samples;
2. hole PSNR of the variant's output against fp32's output at least ``MIN_MEAN_PSNR_DB``
   (40 dB, an RMS difference of 2.5 of 255 levels) on average: 40 dB is the usual threshold of
   "visually lossless" coding (JPEG at quality 90 sits near it);
3. no single sample below ``MIN_WORST_PSNR_DB`` (30 dB, RMS 8 levels, ~3%): a mean can hide
   one broken image (a saturated activation, a blotch), the worst case cannot. Side by side
   (bench/results/cpu-accuracy-*.png), the gated int8 variant's worst sample (~34 dB) cannot be
   told from fp32's; a broken quantization (calibrated on constant images) falls far below.

bf16 on this repository's dev machine scores ~53-56 dB against fp32, the gated int8 variants
~40-51 dB. The verdict is measured on the CPU at hand and cached per (model, variant, runtime
version, CPU class) by ``backends.cpu_auto``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .metrics import PSNR_CAP, psnr
from .photo_samples import HELDOUT_PHOTOS, InputConvention, Sample, photo_samples

MAX_HOLE_PSNR_LOSS_DB = 0.1
MIN_MEAN_PSNR_DB = 40.0
MIN_WORST_PSNR_DB = 30.0
PSNR_CAP_DB = PSNR_CAP  # identical holes would be infinite; capped so means stay finite
BENCH_SIZE = 256
SEED = 0x6A7E

Runner = Callable[[np.ndarray], np.ndarray]


def gate_sizes(convention: InputConvention) -> list[int]:
    return sorted({convention.trained_size, BENCH_SIZE})


def crops_per_photo(size: int) -> int:
    """More crops of small sizes (cheap); two per photo at 128 px and above (12 photos: 24)."""
    return 4 if size < 128 else 2


def heldout_samples(convention: InputConvention, sizes: Optional[Sequence[int]] = None) -> dict[int, list[Sample]]:
    return {
        s: photo_samples(HELDOUT_PHOTOS, [s], crops_per_photo(s), convention, seed=SEED + s)
        for s in (sizes or gate_sizes(convention))
    }


def _to_u8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(a, np.float64) * 255.0), 0, 255).astype(np.uint8)


def hole_psnr(a: np.ndarray, b: np.ndarray, hole: np.ndarray) -> float:
    """PSNR (dB, peak 255, capped) of two uint8 HxWx3 images over the hole's pixels, as ``glcic-fast eval`` scores."""
    return psnr(a, b, hole)


def composite(output: np.ndarray, sample: Sample) -> np.ndarray:
    """uint8 HxWx3: the network's (1, 3, S, S) output in the hole, the photo outside."""
    return np.where(sample.hole[..., None], _to_u8(output[0].transpose(1, 2, 0)), _to_u8(sample.rgb))


@dataclass
class SizeResult:
    size: int
    samples: int
    fp32_hole_psnr: float  # mean hole PSNR of fp32 against the ground truth
    hole_psnr: float  # the same for the variant
    psnr_vs_fp32_mean: float
    psnr_vs_fp32_worst: float

    @property
    def loss_db(self) -> float:
        return self.fp32_hole_psnr - self.hole_psnr


@dataclass
class GateReport:
    sizes: list[SizeResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = []
        for r in self.sizes:
            if r.loss_db > MAX_HOLE_PSNR_LOSS_DB:
                out.append(f"{r.size}px: hole PSNR {r.loss_db:.3f} dB below fp32 (limit {MAX_HOLE_PSNR_LOSS_DB})")
            if r.psnr_vs_fp32_mean < MIN_MEAN_PSNR_DB:
                out.append(f"{r.size}px: {r.psnr_vs_fp32_mean:.1f} dB from fp32 on average (limit {MIN_MEAN_PSNR_DB:.0f})")
            if r.psnr_vs_fp32_worst < MIN_WORST_PSNR_DB:
                out.append(f"{r.size}px: worst sample {r.psnr_vs_fp32_worst:.1f} dB from fp32 (limit {MIN_WORST_PSNR_DB:.0f})")
        return out

    @property
    def passed(self) -> bool:
        return bool(self.sizes) and not self.failures

    def summary(self) -> str:
        parts = [
            f"{r.size}px: {-r.loss_db:+.3f} dB hole PSNR vs fp32's, {r.psnr_vs_fp32_mean:.1f} dB mean / "
            f"{r.psnr_vs_fp32_worst:.1f} dB worst vs fp32" for r in self.sizes
        ]
        verdict = "passes" if self.passed else "fails: " + "; ".join(self.failures)
        return f"{verdict} ({'; '.join(parts)})"

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": self.failures, "sizes": [asdict(r) for r in self.sizes]}

    @classmethod
    def from_dict(cls, d: dict) -> "GateReport":
        return cls([SizeResult(**r) for r in d["sizes"]])


def evaluate(
    run: Runner,
    reference: Runner,
    convention: InputConvention,
    samples: Optional[dict[int, list[Sample]]] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> GateReport:
    """Run the variant ``run`` and the fp32 ``reference`` on the held-out samples; the report
    says whether the variant passes and by how much."""
    samples = samples if samples is not None else heldout_samples(convention)
    report = GateReport()
    for size, items in sorted(samples.items()):
        truth, ref_truth, vs_ref = [], [], []
        for sample in items:
            gt = _to_u8(sample.rgb)
            ref = composite(reference(sample.x), sample)
            out = composite(run(sample.x), sample)
            truth.append(hole_psnr(out, gt, sample.hole))
            ref_truth.append(hole_psnr(ref, gt, sample.hole))
            vs_ref.append(hole_psnr(out, ref, sample.hole))
            if progress:
                progress(1)
        report.sizes.append(SizeResult(
            size, len(items), float(np.mean(ref_truth)), float(np.mean(truth)), float(np.mean(vs_ref)), float(np.min(vs_ref)),
        ))
    return report


__all__ = [
    "BENCH_SIZE", "GateReport", "MAX_HOLE_PSNR_LOSS_DB", "MIN_MEAN_PSNR_DB", "MIN_WORST_PSNR_DB", "SizeResult", "composite",
    "evaluate", "gate_sizes", "heldout_samples", "hole_psnr",
]
