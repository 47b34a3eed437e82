"""GLCIC's three-phase training (Iizuka et al. 2017, section 3.3).

Phase 1, steps [0, Tc): the completion network C alone, on the hole-weighted MSE.
Phase 2, steps [Tc, Tc + Td): the context discriminator D alone; C's weights are fixed.
Phase 3, steps [Tc + Td, T): both, C on ``MSE + alpha * adversarial``, D on its BCE.
The paper: Tc = 90,000, Td = 10,000, T = 500,000, batch 96, ADADELTA, alpha = 0.0004.

The discriminator always judges *composited* images (known pixels from the photo, the hole
from C), with its local branch on the local region around the hole (Mc for completions, the
independent Md for real photos).

Runs survive: a training state (both networks, both optimisers, the AMP scaler, step,
phase, RNG states, the mean pixel, the options, the image list) is written atomically every
``save_every`` steps, at the end and on Ctrl-C / SIGTERM, as safetensors + JSON (``state``:
reading it runs no code). ``resume`` continues bit-for-bit because every sample is a pure
function of (seed, sample number), see ``data`` (on CUDA with ``deterministic``; see
``runtime`` for what each device guarantees). A run killed at any point (even SIGKILL in the
middle of a save) resumes from its last complete save: every file is written through
``glcic_fast.atomic``, and ``log.jsonl`` is cut back to the resumed step so each step appears
once. Each save also writes ``model.safetensors``, a glcic-fast checkpoint that
``glcic_fast.load`` reads directly.

Unreadable images (corrupt, truncated) are skipped with a warning naming them and counted in
the log; the run stops with a clear error only when no image is left.

Scale: mixed precision (bf16, or fp16 with a gradient scaler) on a GPU; several processes via
``torchrun`` with DistributedDataParallel (one GPU per process with NCCL, or gloo on CPUs; see
``runtime``); images are decoded in data-loader worker processes.

The run's options are in ``options``, its process plumbing (RNG, stop signals, torchrun, the
log) in ``process``, the saved state's format in ``state``, the touches a finished network
gets in ``finish``. What is left here (~480 lines) is one object: the ``Trainer`` with its
networks, optimisers and counters, kept whole so the loop reads top to bottom.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..atomic import atomic_write, remove_stale_temps
from ..checkpoint import save_checkpoint
from ..model import CompletionNetwork, ContextDiscriminator
from .data import PhotoCropDataset, StepBatchSampler, compute_mean_pixel, crop_boxes, list_images
from .finish import network_input, recalibrate_batchnorm, zero_unreached_dilated_taps  # noqa: F401 (re-exported)
from .losses import (
    completion_loss,
    discriminator_loss,
    generator_adversarial_loss,
    joint_completion_loss,
)
from .options import (  # noqa: F401 (re-exported: the run's options and schedule)
    DEFAULT_LR,
    OPTIMIZERS,
    PAPER_ITERS,
    RESUMABLE_OVERRIDES,
    TrainOptions,
    phase_of,
    steps_per_phase,
)
from .process import StopRequest, capture_rng, restore_rng, setup_distributed, truncate_log
from .runtime import make_deterministic, placement_here, seed_worker
from .state import TrainStateError, load_state, save_state

STATE_FORMAT = "glcic-fast-train-state"
STATE_VERSION = 2
STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"  # pickles: refused (see state)
MODEL_FILE = "model.safetensors"
LOG_FILE = "log.jsonl"
SNAPSHOT_DIR = "snapshots"
SAMPLE_DIR = "samples"
def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def composite(images: torch.Tensor, completed: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Known pixels from the photo, hole pixels from the network."""
    return images * (1.0 - masks) + completed * masks


class Trainer:
    """Holds the networks, optimisers and counters of one run; ``run()`` trains."""

    def __init__(self, opts: TrainOptions, resume: Optional[str] = None, log=print):
        self.log = log
        state = None
        if resume:
            state = load_state(resume)  # safetensors + JSON; TrainStateError names the problem
            if state.get("format") != STATE_FORMAT or not isinstance(state.get("options"), dict):
                raise TrainStateError(f"{resume}: not a glcic-fast training state")
            try:
                saved = TrainOptions(**state["options"])
            except TypeError as e:
                raise TrainStateError(f"{resume}: the saved options do not match this glcic-fast ({e})") from None
            for name in RESUMABLE_OVERRIDES:
                setattr(saved, name, getattr(opts, name))
            if opts.iters_total is not None:
                saved.iters_total = opts.iters_total
            if opts.lr is not None:  # a new learning rate from here on (e.g. a decay late in a run)
                saved.lr = opts.lr
            opts = dataclasses.replace(
                opts, iters_c=saved.iters_c if opts.iters_c is None else opts.iters_c,
                iters_d=saved.iters_d if opts.iters_d is None else opts.iters_d,
            )
            # The phase lengths may change on resume as long as every completed step keeps
            # the phase it was trained in (e.g. extend phase 1 of a run that is still in it).
            step = int(state["step"])
            if min(step, opts.iters_c) == min(step, saved.iters_c) and min(
                step, opts.iters_c + opts.iters_d
            ) == min(step, saved.iters_c + saved.iters_d):
                saved.iters_c, saved.iters_d = opts.iters_c, opts.iters_d
            elif (opts.iters_c, opts.iters_d) != (saved.iters_c, saved.iters_d):
                raise ValueError(
                    f"cannot resume step {step} with phases {opts.iters_c}/{opts.iters_d}: the saved run "
                    f"({saved.iters_c}/{saved.iters_d}) already trained those steps in other phases"
                )
            opts = saved
        opts.validate()
        self.opts = opts
        if opts.threads:
            torch.set_num_threads(opts.threads)
        if opts.deterministic:
            make_deterministic()
        placement = placement_here(opts.device)
        if placement.note and int(os.environ.get("RANK", "0")) == 0:
            self.log(f"note: {placement.note}")
        self.device = torch.device(placement.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            if not opts.deterministic:
                torch.backends.cudnn.benchmark = True  # every step has the same shapes: let cuDNN time its algorithms
        self.dist = setup_distributed(placement)
        if opts.batch_size % self.dist.world:
            raise ValueError(f"batch size {opts.batch_size} does not split over {self.dist.world} processes")
        self.local_batch = opts.batch_size // self.dist.world
        self.out = Path(opts.out)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for folder in (self.out, self.out / SNAPSHOT_DIR, self.out / SAMPLE_DIR):
                remove_stale_temps(folder)  # left by a killed run: every write of ours is atomic

        root = Path(opts.data)
        files = list_images(root)
        self.skipped: dict[int, str] = {}  # unreadable images met so far: index -> reason
        rel = [str(f.relative_to(root)) for f in files]
        if state is not None and state["options"].get("data_files") and rel != state["options"]["data_files"]:
            self.log(
                f"note: the image folder changed since the saved state ({len(state['options']['data_files'])} -> "
                f"{len(rel)} images); training continues on the new list (not bit-for-bit)"
            )
        opts.data_files = rel
        self.files = files

        torch.manual_seed(opts.seed)
        self.completion = CompletionNetwork().to(self.device)
        self.discriminator = ContextDiscriminator(opts.image_size, opts.local_size).to(self.device)
        self.opt_c = make_optimizer(opts.optimizer, self.completion.parameters(), opts.learning_rate)
        self.opt_d = make_optimizer(opts.optimizer, self.discriminator.parameters(), opts.learning_rate)
        self.use_amp = opts.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run

        if state is not None:
            self.completion.load_state_dict(state["completion"])
            self.discriminator.load_state_dict(state["discriminator"])
            self.opt_c.load_state_dict(state["opt_c"])
            self.opt_d.load_state_dict(state["opt_d"])
            for group in self.opt_c.param_groups + self.opt_d.param_groups:
                group["lr"] = opts.learning_rate
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
            self.elapsed = float(state.get("elapsed", 0.0))
            self.mean = [float(m) for m in state["mean"]]
            restore_rng(state["rng"])
            self.log(f"resumed {resume} at step {self.step} (phase {phase_of(self.step, opts)})")
        if self.dist.is_main:
            # A resumed run trains again the steps logged after its state; a new run starts a new log.
            dropped = truncate_log(self.out / LOG_FILE, self.step)
            if dropped:
                self.log(f"log.jsonl: dropped {dropped} record(s) after step {self.step} (trained again now)")
        if state is None:
            files_for_mean = files
            if len(files) > opts.mean_images:
                pick = np.random.default_rng([opts.seed, 0x3EA7]).choice(len(files), opts.mean_images, replace=False)
                files_for_mean = [files[i] for i in sorted(pick)]
            unreadable: list = []
            self.mean = compute_mean_pixel(files_for_mean, skipped=unreadable)
            index_of = {f: i for i, f in enumerate(files)}
            for e in unreadable:
                self.note_skipped(index_of[e.path], e.reason)
        self.mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.completion_ddp: nn.Module = DDP(self.completion, device_ids=ids)
            self.discriminator_ddp: nn.Module = DDP(self.discriminator, device_ids=ids)
        else:
            self.completion_ddp, self.discriminator_ddp = self.completion, self.discriminator

    def note_skipped(self, index: int, reason: str = "") -> None:
        """Warn (once per file) that an unreadable image is skipped."""
        if index < 0 or index in self.skipped:
            return
        self.skipped[index] = reason
        if self.dist.is_main:
            self.log(f"warning: skipping unreadable image {self.files[index]}{' (' + reason + ')' if reason else ''}")

    # ---- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": self.step,
            "phase": phase_of(self.step, self.opts) if self.step < self.opts.iters_total else 3,
            "elapsed": self.elapsed,
            "mean": self.mean,
            "options": dataclasses.asdict(self.opts),
            "completion": self.completion.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_c": self.opt_c.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": capture_rng(),
        }

    def model_metadata(self) -> dict[str, Any]:
        o = self.opts
        return {
            "source": "glcic-fast train",
            "training_step": self.step,
            "training_phase": phase_of(self.step, o) if self.step < o.iters_total else 3,
            "steps_per_phase": steps_per_phase(self.step, o),
            "iters_c": o.iters_c,
            "iters_d": o.iters_d,
            "iters_total": o.iters_total,
            "batch_size": o.batch_size,
            "optimizer": o.optimizer,
            "lr": o.learning_rate,
            "alpha": o.alpha,
            "image_size": o.image_size,
            "local_size": o.local_size,
            "hole_range": [o.hole_min, o.hole_max],
            "scale_range": [o.scale_min or o.image_size, o.scale_max or (o.image_size * 3) // 2],
            "training_images": len(self.files) - len(self.skipped),
            "skipped_images": len(self.skipped),
            "training_seconds": round(self.elapsed, 1),
        }

    def save(self, log_file=None) -> None:
        """Write the completer checkpoint(s), then the training state (rank 0; each atomic).

        The state is written last: it is the commit point. A run killed before it resumes
        from the previous state and writes this step's checkpoints again (identically); the
        log is on disk before it, so the log always reaches the saved step.
        """
        if not self.dist.is_main:
            return
        meta = self.model_metadata()
        save_checkpoint(self.completion, self.out / MODEL_FILE, mean=self.mean, **meta)
        if self.opts.keep_snapshots:
            save_checkpoint(
                self.completion, self.out / SNAPSHOT_DIR / f"model_step{self.step:07d}.safetensors", mean=self.mean, **meta
            )
        if log_file is not None:
            log_file.flush()
            os.fsync(log_file.fileno())
        save_state(self.out / STATE_FILE, self.state_dict())

    # ---- data ---------------------------------------------------------------------------
    def make_dataset(self, seed: int) -> PhotoCropDataset:
        o = self.opts
        return PhotoCropDataset(
            self.files, o.image_size, o.local_size, o.hole_min, o.hole_max, o.scale_min, o.scale_max, seed
        )

    def make_loader(self, stop: int):
        sampler = StepBatchSampler(self.local_batch, self.step, stop, self.dist.rank, self.dist.world)
        return torch.utils.data.DataLoader(
            self.make_dataset(self.opts.seed),
            batch_sampler=sampler,
            num_workers=self.opts.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=seed_worker if self.opts.workers > 0 else None,
            generator=torch.Generator().manual_seed(self.opts.seed),
            persistent_workers=False,
            prefetch_factor=2 if self.opts.workers > 0 else None,
        )

    # ---- one step -----------------------------------------------------------------------
    def autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def train_step(self, batch) -> dict[str, float]:
        images, masks, corners_c, corners_d = (t.to(self.device, non_blocking=True) for t in batch[:4])
        phase = phase_of(self.step, self.opts)
        local = self.opts.local_size
        inp = network_input(images, masks, self.mean_t)
        losses: dict[str, float] = {}
        self.completion.train()
        self.discriminator.train()

        if phase == 2:  # C fixed: no graph through it
            with torch.no_grad(), self.autocast():
                completed = self.completion(inp)
        else:
            with self.autocast():
                completed = self.completion_ddp(inp)
        fake = composite(images, completed.float(), masks)

        if phase in (2, 3):
            self.opt_d.zero_grad(set_to_none=True)
            with self.autocast():
                real_logits = self.discriminator_ddp(images, crop_boxes(images, corners_d, local))
                fake_d = fake.detach()
                fake_logits = self.discriminator_ddp(fake_d, crop_boxes(fake_d, corners_c, local))
            loss_d = discriminator_loss(real_logits, fake_logits)
            self.scaler.scale(loss_d).backward()
            self.scaler.step(self.opt_d)
            losses["loss_d"] = float(loss_d.detach())

        if phase in (1, 3):
            self.opt_c.zero_grad(set_to_none=True)
            mse = completion_loss(completed, images, masks)
            loss_c = mse
            if phase == 3:
                # D judges the completion for C's loss; its own weights get no gradient here
                # (called unwrapped, so DistributedDataParallel does not expect one).
                self.discriminator.requires_grad_(False)
                try:
                    with self.autocast():
                        logits = self.discriminator(fake, crop_boxes(fake, corners_c, local))
                    adversarial = generator_adversarial_loss(logits)
                finally:
                    self.discriminator.requires_grad_(True)
                loss_c = joint_completion_loss(mse, adversarial, self.opts.alpha)
                losses["loss_adv"] = float(adversarial.detach())
            self.scaler.scale(loss_c).backward()
            self.scaler.step(self.opt_c)
            losses["loss_mse"] = float(mse.detach())
        self.scaler.update()
        return losses

    # ---- samples ------------------------------------------------------------------------
    def write_samples(self, count: int = 4) -> Optional[Path]:
        """A grid (rows: input with the hole, completion, original) for fixed held-back crops."""
        if not self.dist.is_main:
            return None
        from PIL import Image

        ds = self.make_dataset(self.opts.seed + 7919)  # a different stream than training
        items = [ds[i] for i in range(count)]
        images = torch.stack([it[0] for it in items]).to(self.device)
        masks = torch.stack([it[1] for it in items]).to(self.device)
        was_training = self.completion.training
        self.completion.eval()
        with torch.no_grad():
            out = self.completion(network_input(images, masks, self.mean_t)).float()
        self.completion.train(was_training)
        shown = images * (1 - masks) + 0.5 * masks
        rows = [shown, composite(images, out, masks), images]
        grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)  # 3 x (3S) x (count S)
        arr = (grid.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        path = self.out / SAMPLE_DIR / f"step{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG"))
        return path

    # ---- hooks for subclasses (budgeted runs) ---------------------------------------------
    def after_step(self, losses: dict[str, float]) -> None:
        """Called after each step (and its log record), before the save check."""

    def should_stop(self) -> bool:
        """True to stop (saving) after the current step, as Ctrl-C would."""
        return False

    # ---- the loop -----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        o = self.opts
        stop = o.iters_total if o.stop_after is None else min(o.iters_total, o.stop_after)
        if self.dist.is_main:
            self.log(
                f"training {len(self.files)} images, {o.image_size}px crops, holes {o.hole_min}-{o.hole_max} in "
                f"{o.local_size}px regions, batch {o.batch_size} on {self.dist.world} x {self.device}; "
                f"phases C {o.iters_c} / D {o.iters_d} / total {o.iters_total}; steps {self.step} -> {stop}"
            )
        last: dict[str, float] = {}
        if self.step >= stop:
            self.save()
            return {"step": self.step, "stopped": False, "losses": last}
        progress = None
        if self.dist.is_main and o.progress:
            from tqdm import tqdm

            progress = tqdm(total=stop, initial=self.step, unit="step", dynamic_ncols=True,
                            mininterval=1.0 if sys.stderr.isatty() else 30.0)
        log_file = open(self.out / LOG_FILE, "a", encoding="utf-8") if self.dist.is_main else None
        stopped = False
        try:
            with StopRequest() as stop_request:
                t_wait = time.perf_counter()
                for batch in self.make_loader(stop):
                    t0 = time.perf_counter()
                    phase = phase_of(self.step, o)
                    for index in batch[4].unique().tolist():
                        self.note_skipped(int(index))
                    last = self.train_step(batch)
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    t1 = time.perf_counter()
                    self.step += 1
                    self.elapsed += t1 - t_wait
                    if log_file is not None:
                        record = {"step": self.step, "phase": phase, "lr": self.opt_c.param_groups[0]["lr"],
                                  **{k: round(v, 6) for k, v in last.items()},
                                  "data_s": round(t0 - t_wait, 4), "step_s": round(t1 - t0, 4),
                                  "elapsed_s": round(self.elapsed, 2), "time": round(time.time(), 2)}
                        if self.skipped:
                            record["skipped_files"] = len(self.skipped)
                        log_file.write(json.dumps(record) + "\n")
                        log_file.flush()
                    if progress is not None:
                        progress.set_postfix(phase=phase, **{k: f"{v:.4g}" for k, v in last.items()}, refresh=False)
                        progress.update(1)
                    if o.sample_every and self.step % o.sample_every == 0:
                        self.write_samples()
                    self.after_step(last)
                    want_stop = stop_request.requested or self.should_stop()
                    if self.dist.world > 1:  # every process stops at the same step
                        flag = torch.tensor([1.0 if want_stop else 0.0])
                        dist.all_reduce(flag)
                        want_stop = bool(flag.item() > 0)
                    if self.step % o.save_every == 0 or self.step == stop or want_stop:
                        self.save(log_file)
                    if want_stop:
                        stopped = True
                        if self.dist.is_main and stop_request.requested:
                            self.log(f"stop requested: saved at step {self.step}; continue with --resume")
                        break
                    t_wait = time.perf_counter()
        finally:
            if progress is not None:
                progress.close()
            if log_file is not None:
                log_file.close()
        return {"step": self.step, "stopped": stopped, "losses": last}


def train(opts: TrainOptions, resume: Optional[str] = None, log=print) -> dict[str, Any]:
    """Train (or resume) a run; returns ``{"step", "stopped", "losses"}``."""
    trainer = Trainer(opts, resume=resume, log=log)
    try:
        return trainer.run()
    finally:
        if trainer.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


