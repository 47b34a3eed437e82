"""``glcic-fast train``: the paper's three-phase training from a folder of photographs
(the library is ``glcic_fast.train``).

    glcic-fast train --data photos/ --out runs/places            # the paper's settings
    glcic-fast train --data photos/ --out runs/small --image-size 64 --local-size 32 \\
        --hole-min 24 --hole-max 32 --iters-c 2000 --iters-d 200 --iters-total 2500 --batch-size 16
    glcic-fast train --data photos/ --out runs/small --resume     # continue where it stopped
    torchrun --nproc-per-node 4 -m glcic_fast.cli train ...       # several GPUs (DDP)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import error

NAME = "train"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where it tells something: not for on/off flags or unset options."""

    def _get_help_string(self, action):
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or action.default is None:
            return action.help
        return super()._get_help_string(action)


def add_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="train a completion network (the paper's three phases)",
        description="Train GLCIC from a folder of images (jpg/png/webp, searched recursively): phase 1 the "
        "completion network on the hole MSE, phase 2 the context discriminator alone, phase 3 both. "
        "Defaults are the paper's (256px crops, holes 96-128 in a 128px local region, 90k/10k/500k "
        "iterations, batch 96, ADADELTA). Writes OUT/train_state.safetensors (to resume) and OUT/model.safetensors "
        "(load it with glcic_fast.load or --model) every --save-every steps, at the end and on Ctrl-C; a run "
        "killed at any point resumes from its last save. Unreadable images are skipped with a warning.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder of training images (recursive)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.jsonl, samples/")
    p.add_argument("--image-size", type=int, default=256, help="training crop size (multiple of 64)")
    p.add_argument("--local-size", type=int, default=128, help="local discriminator region (multiple of 32)")
    p.add_argument("--hole-min", type=int, default=96, help="smallest hole side")
    p.add_argument("--hole-max", type=int, default=128, help="largest hole side")
    p.add_argument("--scale-min", type=int, default=None, help="smallest short side before cropping (default: image size)")
    p.add_argument("--scale-max", type=int, default=None, help="largest short side before cropping (default: 1.5 x image size)")
    p.add_argument("--iters-c", type=int, default=None,
                   help="phase 1 steps (completion network, MSE); default 90000, or the resumed run's")
    p.add_argument("--iters-d", type=int, default=None,
                   help="phase 2 steps (discriminator alone); default 10000, or the resumed run's")
    p.add_argument("--iters-total", type=int, default=None,
                   help="total steps, phase 3 being the rest; default 500000, or the resumed run's")
    p.add_argument("--batch-size", type=int, default=96, help="global batch (split over torchrun processes)")
    p.add_argument("--alpha", type=float, default=0.0004, help="weight of the adversarial loss in phase 3")
    p.add_argument("--optimizer", choices=("adadelta", "adam"), default="adadelta", help="the paper uses ADADELTA")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: 1.0 ADADELTA, 1e-4 Adam; with --resume: the run's, or this from now on)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="STATE",
                   help="continue a run: OUT/train_state.safetensors, or the given state file")
    p.add_argument("--workers", type=int, default=4, help="data-loading worker processes (0: load in the main process)")
    p.add_argument("--device", default="auto", help="auto (one GPU per process if there are enough, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on the GPU (default: bf16/fp16 autocast)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic GPU kernels, so a resumed run matches an uninterrupted one bit for bit on CUDA "
                   "too (CPU runs always do); somewhat slower")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--save-every", type=int, default=1000, help="checkpoint every N steps")
    p.add_argument("--sample-every", type=int, default=1000, help="sample grid every N steps (0: never)")
    p.add_argument("--keep-snapshots", action="store_true", help="also keep OUT/snapshots/model_step*.safetensors")
    p.add_argument("--stop-after", type=int, default=None, help="stop (saving) at this step, e.g. to split a run")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, crops and holes")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (default: shown)")
    budget = p.add_argument_group(
        "time-budgeted run (photos decoded once and kept on the device; steps planned to end in time)")
    budget.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="train for this many seconds: measure the speed, plan the steps, stop in time; "
                        "--iters-* are then planned (MSE only unless --adversarial-share)")
    budget.add_argument("--val-data", default=None, help="validation photos (another package than --data): the best "
                        "snapshot by hole PSNR is exported")
    budget.add_argument("--export", default=None, help="folder for the best snapshot (fp16), log.jsonl and summary.json, "
                        "rewritten as the run goes")
    budget.add_argument("--val-every", type=float, default=60.0, metavar="SECONDS", help="validate this often")
    budget.add_argument("--adversarial-share", type=float, default=0.0,
                        help="share of the planned steps for phases 2+3 (discriminator alone: a fifth of it)")
    budget.add_argument("--compile", action="store_true", help="torch.compile the completion network")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..errors import TrainStateError
    from ..train.trainer import LEGACY_STATE_FILE, STATE_FILE, TrainOptions, train  # imports torch: only when training

    opts = TrainOptions(
        data=args.data, out=args.out, image_size=args.image_size, local_size=args.local_size,
        hole_min=args.hole_min, hole_max=args.hole_max, scale_min=args.scale_min, scale_max=args.scale_max,
        iters_c=args.iters_c, iters_d=args.iters_d, iters_total=args.iters_total, batch_size=args.batch_size,
        alpha=args.alpha, optimizer=args.optimizer, lr=args.lr, workers=args.workers, device=args.device,
        amp=args.amp, deterministic=args.deterministic, save_every=args.save_every, sample_every=args.sample_every,
        keep_snapshots=args.keep_snapshots, seed=args.seed, stop_after=args.stop_after,
        threads=args.threads, progress=args.progress,
    )
    resume = None
    if args.resume is not None:
        resume = str(Path(args.out) / STATE_FILE) if args.resume == "auto" else args.resume
        legacy = Path(args.out) / LEGACY_STATE_FILE
        if args.resume == "auto" and not Path(resume).is_file() and legacy.is_file():
            resume = str(legacy)  # refused with an explanation below, never unpickled
        if not Path(resume).is_file():
            return error(NAME, f"nothing to resume: {resume} does not exist (start without --resume)")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if args.time_budget is not None:
        return run_budget(args, opts, resume, log)
    try:
        if resume is None:
            opts.validate()
        result = train(opts, resume=resume, log=log)
    except (TrainStateError, ValueError, FileNotFoundError) as e:
        return error(NAME, str(e))
    print(f"step {result['step']}: {Path(args.out) / 'model.safetensors'}")
    return 130 if result["stopped"] else 0


def run_budget(args, opts, resume, log) -> int:
    import time

    from ..train.budget import BudgetTrainer

    if resume is not None:
        return error(NAME, "--time-budget starts a new run; it cannot --resume")
    if not 0 <= args.adversarial_share < 1:
        return error(NAME, "--adversarial-share must be in [0, 1)")
    share = args.adversarial_share
    try:
        trainer = BudgetTrainer(
            opts, deadline=time.time() + args.time_budget, val_data=args.val_data, export=args.export,
            val_every_s=args.val_every, measure_s=min(30.0, 0.1 * args.time_budget),
            phase_shares=(1.0 - share, share / 5), compile=args.compile, log=log,
        )
        # keep a little of the budget for the last validation, export and state save
        result = trainer.run_budget(reserve_s=min(20.0, 0.1 * args.time_budget))
    except (ValueError, FileNotFoundError) as e:
        return error(NAME, str(e))
    best = result["best"]
    print(f"step {result['step']}: best {best if best else 'not validated'}; export: {args.export or '-'}")
    return 0
