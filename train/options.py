"""The knobs of a training run and the paper's schedule: which phase a step is in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .losses import PAPER_ALPHA

OPTIMIZERS = ("adadelta", "adam")
PAPER_ITERS = {"iters_c": 90_000, "iters_d": 10_000, "iters_total": 500_000}
DEFAULT_LR = {"adadelta": 1.0, "adam": 1e-4}
# Options a resumed run may change; everything else comes from the saved state so the run
# continues as it started.
RESUMABLE_OVERRIDES = (
    "data", "out", "workers", "device", "save_every", "sample_every", "stop_after", "threads", "keep_snapshots", "progress",
    "deterministic",
)



@dataclass
class TrainOptions:
    """Every knob of a run. Defaults are the paper's (256-pixel crops, batch 96, ...)."""

    data: str = ""
    out: str = "runs/glcic"
    image_size: int = 256
    local_size: int = 128
    hole_min: int = 96
    hole_max: int = 128
    scale_min: Optional[int] = None  # short side drawn from [scale_min, scale_max];
    scale_max: Optional[int] = None  # default [1, 1.5] x image_size, the paper's [256, 384]
    # Phase lengths; None means the paper's (new run) or the saved run's (resume).
    iters_c: Optional[int] = None
    iters_d: Optional[int] = None
    iters_total: Optional[int] = None
    batch_size: int = 96  # global: split evenly over the processes of a torchrun job
    alpha: float = PAPER_ALPHA
    optimizer: str = "adadelta"
    lr: Optional[float] = None  # default: 1.0 for ADADELTA, 1e-4 for Adam
    workers: int = 4
    device: str = "auto"
    amp: bool = True  # mixed precision, GPU only
    deterministic: bool = False  # bit-for-bit on CUDA too (see runtime); CPU always is
    save_every: int = 1000
    sample_every: int = 1000
    keep_snapshots: bool = False  # also keep snapshots/model_step*.safetensors at each save
    seed: int = 0
    mean_images: int = 2000  # the mean pixel is computed from up to this many images
    stop_after: Optional[int] = None  # stop (saving) once this step is reached
    threads: Optional[int] = None  # torch intra-op threads (CPU)
    progress: bool = True
    data_files: list = field(default_factory=list)  # filled in: the image list, relative to data

    def fill_paper_iters(self) -> None:
        for name, value in PAPER_ITERS.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self) -> None:
        self.fill_paper_iters()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if min(self.iters_c, self.iters_d) < 0 or self.iters_total < self.iters_c + self.iters_d:
            raise ValueError(
                f"need iters_c, iters_d >= 0 and iters_total >= iters_c + iters_d, "
                f"got {self.iters_c}, {self.iters_d}, {self.iters_total}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        if self.image_size % 64 or self.local_size % 32:
            raise ValueError(
                "the context discriminator needs image_size a multiple of 64 and local_size a multiple "
                f"of 32 (six and five stride-2 convs), got {self.image_size} and {self.local_size}"
            )
        if self.save_every < 1 or self.sample_every < 0:
            raise ValueError("save_every must be >= 1 and sample_every >= 0")

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr


def phase_of(step: int, opts: TrainOptions) -> int:
    """Which phase the step with this (0-based) number belongs to: 1, 2 or 3."""
    if step < opts.iters_c:
        return 1
    if step < opts.iters_c + opts.iters_d:
        return 2
    return 3


def steps_per_phase(step: int, o: TrainOptions) -> dict[str, int]:
    """How many of the first ``step`` steps each phase got."""
    c = min(step, o.iters_c)
    d = min(max(step - o.iters_c, 0), o.iters_d)
    return {"completion": c, "discriminator": d, "joint": max(step - o.iters_c - o.iters_d, 0)}
