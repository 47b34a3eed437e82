"""A training run that fits a wall-clock budget: GPU-resident data, planned steps, best snapshot.

``BudgetTrainer`` is the three-phase ``Trainer`` with three changes for a lent GPU and a
deadline:

* data from a ``PhotoBank`` (decoded once, crops/flips/holes drawn on the device) instead of
  a data loader; the networks in channels-last, bf16 autocast (the ``Trainer``'s AMP);
* the number of steps is planned: the MSE phase runs for a measuring window, the steps/s
  measured there (after warm-up) fix how many steps fit before the deadline, and the phase
  lengths become those shares of the plan (MSE only by default: the adversarial phases are
  opt-in until they are shown to help). A hard stop at the deadline holds whatever happens;
* every ``val_every_s`` seconds the network is validated on a fixed, package-disjoint
  validation set (centre crops, seeded paper holes): a copy gets its BatchNorm statistics
  re-estimated with the current weights, and if its hole PSNR is the best so far it is
  written to ``export`` as an fp16 checkpoint, with ``summary.json`` and the log beside it.
  A run stopped at any moment therefore leaves its best snapshot so far.

CUDA graphs and ``torch.compile`` are not used by default: at batch 64 and 256x256 a step
is ~100 convolution-bound milliseconds launched as a few hundred kernels, so launch overhead
is a few percent, while compiling costs a large share of an 8-minute budget (``compile=True``
tries it; its warm-up is excluded from the measured rate).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write, atomic_write_data
from ..checkpoint import save_checkpoint
from ..metrics import PSNR_CAP, opencv_inpaint
from .resident import PhotoBank
from .trainer import LOG_FILE, Trainer, TrainOptions, composite, network_input

EXPORT_MODEL = "model.safetensors"
EXPORT_SUMMARY = "summary.json"
WARMUP_STEPS = 5  # excluded from the measured rate (cuDNN autotuning, compilation)
RECAL_BATCHES = 16  # on a GPU; 2 on a CPU (rehearsals), where each batch costs seconds


class ValidationSet:
    """Fixed validation crops and holes on the device, scored by hole PSNR as ``glcic-fast eval`` does.

    PSNR is ``metrics.psnr`` computed on the device (``_psnr``, in torch): validation runs inside
    the timed budget on batches that are already on the GPU, and scoring them there spares a
    device-to-host copy of every batch (tests/test_train_resident.py checks the two agree).
    """

    def __init__(self, folder: str | Path, image_size: int, local_size: int, hole_min: int, hole_max: int,
                 device: torch.device, holes_per_image: int = 2, seed: int = 1):
        from .data import load_square_crops
        from .holes import make_holes

        images, self.names = load_square_crops(folder, image_size)
        images = [img for img in images for _ in range(holes_per_image)]
        holes = make_holes("paper", len(images), image_size, local_size, hole_min, hole_max, seed)
        telea = [opencv_inpaint(i, h, "telea") for i, h in zip(images, holes)]
        self.images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device).float() / 255.0
        self.masks = torch.from_numpy(np.stack(holes)).to(device).float()[:, None]
        self.telea_psnr = float(self._psnr(torch.from_numpy(np.stack(telea)).permute(0, 3, 1, 2).to(device).float()).mean())

    def __len__(self) -> int:
        return self.images.shape[0]

    def _psnr(self, result_255: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Per-sample hole PSNR of uint8-valued results for samples [start, start + len(result))."""
        images = torch.round(self.images[start : start + len(result_255)] * 255)
        masks = self.masks[start : start + len(result_255)]
        err = ((result_255 - images) ** 2 * masks).sum((1, 2, 3)) / (3 * masks.sum((1, 2, 3)))
        return torch.clamp(10 * torch.log10(255.0**2 / err.clamp_min(1e-12)), max=PSNR_CAP)

    @torch.no_grad()
    def hole_psnr(self, network: nn.Module, mean: torch.Tensor, autocast, batch: int = 32) -> float:
        """Mean over samples of the hole PSNR of the network's (uint8-rounded) completions."""
        values = []
        for s in range(0, len(self), batch):
            images, masks = self.images[s : s + batch], self.masks[s : s + batch]
            with autocast():
                out = network(network_input(images, masks, mean)).float()
            result = torch.round(composite(images, out.clamp(0, 1), masks) * 255)
            values.append(self._psnr(result, s))
        return float(torch.cat(values).mean())


class BudgetTrainer(Trainer):
    def __init__(self, opts: TrainOptions, deadline: float, val_data: Optional[str] = None,
                 export: Optional[str] = None, val_every_s: float = 60.0, measure_s: float = 30.0,
                 phase_shares: tuple[float, float] = (1.0, 0.0), compile: bool = False, log=print):
        opts.iters_c = opts.iters_total = 10**9  # MSE while measuring; planned in run_budget()
        opts.iters_d = 0
        super().__init__(opts, log=log)
        if self.dist.world > 1:
            raise ValueError("a budgeted run uses one process (one GPU)")
        self.deadline = deadline
        self.measure_s = measure_s
        self.val_every_s = val_every_s
        self.phase_shares = phase_shares
        self.export = Path(export) if export else None
        for net in (self.completion, self.discriminator):
            net.to(memory_format=torch.channels_last)
        if compile:
            self.completion_ddp = torch.compile(self.completion)
        t0 = time.perf_counter()
        self.bank = PhotoBank(self.files, opts.image_size, opts.local_size, opts.hole_min, opts.hole_max,
                              opts.scale_max, self.device, opts.seed, log=log)
        self.log(f"photo bank: {len(self.bank)} photos, {self.bank.nbytes / 2**20:.0f} MiB uint8 on {self.device}, "
                 f"{len(self.bank.skipped)} skipped, {time.perf_counter() - t0:.1f} s")
        self.val = None
        if val_data:
            self.val = ValidationSet(val_data, opts.image_size, opts.local_size, opts.hole_min, opts.hole_max, self.device)
            self.log(f"validation: {len(self.val)} holes in {len(self.val.names)} photos; Telea {self.val.telea_psnr:.2f} dB")
        self.validations: list[dict[str, Any]] = []
        self.best: Optional[dict[str, Any]] = None
        self.last_val = time.monotonic()
        self.phase_deadline = deadline
        self.plan: dict[str, Any] = {}

    def make_loader(self, stop: int):
        return self.bank.batches(self.step, stop, self.local_batch)

    def should_stop(self) -> bool:
        return time.time() >= self.phase_deadline

    def after_step(self, losses: dict[str, float]) -> None:
        if self.step == WARMUP_STEPS:
            self._rate_start = (self.step, time.perf_counter())
        if self.val is not None and time.monotonic() - self.last_val >= self.val_every_s:
            self.validate()

    # ---- validation and export ----------------------------------------------------------
    def recalibrated_copy(self) -> nn.Module:
        """The completion network with BatchNorm statistics re-estimated on fresh bank batches."""
        net = copy.deepcopy(self.completion)
        bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
        net.train()
        with torch.no_grad(), self.autocast():
            for b in range(RECAL_BATCHES if self.device.type == "cuda" else 2):
                images, masks = self.bank.sample(10**12 + b, self.local_batch)[:2]
                net(network_input(images, masks, self.mean_t))
        for m in bns:
            m.momentum = 0.1
        return net.eval()

    def validate(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        net = self.recalibrated_copy()
        score = self.val.hole_psnr(net, self.mean_t, self.autocast)
        record = {"step": self.step, "val_psnr_hole": round(score, 4), "elapsed_s": round(self.elapsed, 1)}
        self.validations.append(record)
        improved = self.best is None or score > self.best["val_psnr_hole"]
        if improved:
            self.best = record
            self.export_snapshot(net)
        self.log(f"step {self.step}: validation hole PSNR {score:.2f} dB (Telea {self.val.telea_psnr:.2f})"
                 f"{' - best, exported' if improved else ''} [{time.perf_counter() - t0:.1f} s]")
        self.last_val = time.monotonic()
        return record

    def export_snapshot(self, net: nn.Module) -> None:
        if self.export is None:
            return
        meta = self.model_metadata()
        meta.update(bn_recalibrated=True, selected_by="validation hole PSNR", validation=self.best)
        save_checkpoint(net, self.export / EXPORT_MODEL, mean=self.mean, dtype=torch.float16, **meta)
        self.export_files()

    def export_files(self) -> None:
        if self.export is None:
            return
        log = self.out / LOG_FILE
        if log.is_file():
            atomic_write(self.export / LOG_FILE, log.read_bytes())
        atomic_write_data(self.export / EXPORT_SUMMARY, json.dumps(self.summary(), indent=2) + "\n")

    def summary(self) -> dict[str, Any]:
        return {"plan": self.plan, "step": self.step, "best": self.best, "validations": self.validations,
                "photos": len(self.bank), "skipped": self.bank.skipped, "device": str(self.device),
                "gpu": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
                "torch": torch.__version__, "options": {k: v for k, v in vars(self.opts).items() if k != "data_files"}}

    # ---- the budgeted run --------------------------------------------------------------------
    def run_budget(self, reserve_s: float = 0.0) -> dict[str, Any]:
        """Measure, plan the steps that fit before ``deadline - reserve_s``, train, validate, export."""
        o = self.opts
        end = self.deadline - reserve_s
        self.phase_deadline = min(end, time.time() + self.measure_s)
        self.run()
        measured_from = getattr(self, "_rate_start", None)
        if measured_from and self.step > measured_from[0]:
            rate = (self.step - measured_from[0]) / (time.perf_counter() - measured_from[1])
        else:
            rate = self.step / max(self.elapsed, 1e-6)
        left = max(0.0, end - time.time())
        # validations take time too: budget each as a few steps' worth
        val_count = left / self.val_every_s if self.val is not None else 0
        planned = self.step + int(rate * max(0.0, left - val_count * 2.0) * 0.97)
        mse, disc = self.phase_shares
        o.iters_c = max(self.step, int(planned * mse))
        o.iters_d = int(planned * disc)
        o.iters_total = max(planned, o.iters_c + o.iters_d)
        self.plan = {"measured_steps_per_s": round(rate, 3), "planned_steps": o.iters_total, "iters_c": o.iters_c,
                     "iters_d": o.iters_d, "batch_size": o.batch_size, "seconds_left_at_plan": round(left, 1)}
        self.log(f"measured {rate:.2f} steps/s: planning {o.iters_total} steps "
                 f"(MSE {o.iters_c}, discriminator {o.iters_d}, joint {o.iters_total - o.iters_c - o.iters_d})")
        self.phase_deadline = end
        result = self.run()
        if self.val is not None and (not self.validations or self.validations[-1]["step"] != self.step):
            self.validate()
        elif self.val is None:
            self.export_snapshot(self.recalibrated_copy())
        self.export_files()
        return {**result, "plan": self.plan, "best": self.best}
