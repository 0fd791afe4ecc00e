"""Where a training step's time goes: the engine's own step, timed and profiled on this machine's device.

    python benchmarks/profile_step.py [--batch 64] [--precision auto] [--steps 200] [--autograd]

Builds the engine's Trainer on generated MNIST-shaped data (as `make bench`
does), times its steps with the loop's own code (`Trainer._train_epoch`, so
progress ticks and metric accumulation are included), then prints the
torch.profiler table of the ops that cost the most, on the CPU and, on a GPU,
on the device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precision", default="auto")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--autograd",
        action="store_true",
        help="the autograd step instead of the fused MLP step (training.fused_step = false)",
    )
    args = p.parse_args(argv)

    from engine.device import apply_openmp_defaults

    apply_openmp_defaults()  # as `trainconsole` does, before torch loads
    import torch
    from torch.profiler import ProfilerActivity, profile

    from engine.settings.config import from_dict
    from engine.api import Run
    from mnist_files import write_mnist

    with tempfile.TemporaryDirectory(prefix="trainconsole-profile-") as tmp:
        write_mnist(Path(tmp) / "data", args.samples, 1_000)
        settings = from_dict(
            {
                "run": {"runs_dir": f"{tmp}/runs", "name": "profile"},
                "device": {"threads": args.threads},
                "data": {"dataset": "mnist", "root": f"{tmp}/data", "batch_size": args.batch, "val_fraction": 0.0},
                "training": {"epochs": 1, "precision": args.precision, "fused_step": not args.autograd},
            }
        )
        trainer = Run(settings, lambda event: None)
        trainer.setup()
        cuda = trainer.device.type == "cuda"
        sync = torch.cuda.synchronize if cuda else (lambda: None)
        batches = len(trainer.data.train)
        print(
            f"device {trainer.device} ({trainer.precision}), {trainer.threads} threads, batch {args.batch}, "
            f"{batches} batches an epoch, step: {trainer.step.description}"
        )
        trainer._train_epoch()  # warm-up: allocator, cuBLAS handles, autocast caches
        sync()
        start = time.perf_counter()
        epochs = max(1, args.steps // batches)
        for _ in range(epochs):
            trainer._train_epoch()
        sync()
        seconds = time.perf_counter() - start
        steps = epochs * batches
        print(f"{steps} steps: {seconds / steps * 1e3:.3f} ms a step, {steps * args.batch / seconds:,.0f} samples/s")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            trainer._train_epoch()
            sync()
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
        if cuda:
            print(prof.key_averages().table(sort_by=sort, row_limit=12))
        trainer.close()


if __name__ == "__main__":
    main()
