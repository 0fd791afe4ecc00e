"""One measurement per process, printed as one JSON line on stdout.

    python benchmarks/pipelines.py NAME --root DATA --runs RUNS [--batch 64] [--batches N] [--target-acc A] ...

NAME is one of:
  chapter     (a) chapter 6.1's loop over chapter 5.1's pipeline (torchvision MNIST, ToTensor + Normalize per sample)
  tensors     (b) the same loop over a DataLoader of an in-memory TensorDataset
  engine      (c) trainconsole headless: engine.training.trainer.Trainer, the MNIST fast path
  console     (d) trainconsole inside the console: the Textual app, headless, run started with keys 3 then s
  lightning   (e) PyTorch Lightning's Trainer over the TensorDataset loader
  matmul      the hardware bound: 2048x2048 fp32 matmul FLOP/s
  digits-memory  RSS over a long run of the default settings (digits), headless or (--console) in the console

Each measurement runs in its own process so that VmHWM is that pipeline's own peak.
samples/s counts the training phase only: from the first batch to the last of the epoch (or of --batches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

CONSOLE_TIMEOUT_S = 600
STEADY_EPOCHS = 4  # --steady: the first epoch warms up; the median of the others is the steady rate


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=sorted(PIPELINES))
    p.add_argument("--root", default="", help="folder holding MNIST/raw (benchmarks/mnist_files.py)")
    p.add_argument("--runs", default="runs-bench", help="runs_dir for the engine's run folders")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=0, help="stop after this many batches (0: one epoch)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (chapter)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: the pipeline's own choice)")
    p.add_argument(
        "--steady",
        action="store_true",
        help=f"engine, console: train {STEADY_EPOCHS} epochs and also report the median rate of all but the first "
        "(steady_samples_per_s)",
    )
    p.add_argument(
        "--target-acc", type=float, default=0.0, help="train until this validation accuracy and report the time"
    )
    p.add_argument("--max-epochs", type=int, default=5, help="give up on --target-acc after this many epochs")
    p.add_argument("--epochs", type=int, default=500, help="digits-memory, console-ab: epochs to run")
    p.add_argument("--every", type=int, default=50, help="digits-memory: sample RSS every this many epochs")
    p.add_argument(
        "--console",
        action="store_true",
        help="digits-memory: train inside the console (headless), which draws every epoch",
    )
    p.add_argument("--seconds", type=float, default=2.0, help="matmul: how long to measure")
    return p.parse_args(argv)


def _status_mb(key: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the chapter's code (sections 4.2, 5.1 and 6.1) -------------------------------


def chapter_model():
    import torch.nn as nn
    import torch.nn.functional as F

    class ReseauMNIST(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 256)
            self.dropout1 = nn.Dropout(0.3)
            self.fc2 = nn.Linear(256, 128)
            self.dropout2 = nn.Dropout(0.3)
            self.fc3 = nn.Linear(128, 10)

        def forward(self, x):
            x = x.view(x.size(0), -1)
            x = self.dropout1(F.relu(self.fc1(x)))
            x = self.dropout2(F.relu(self.fc2(x)))
            return self.fc3(x)

    return ReseauMNIST()


def chapter_loaders(args):
    """Section 5.1: torchvision's MNIST, decoded and normalised one sample at a time."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train = datasets.MNIST(args.root, train=True, download=False, transform=transform)
    test = datasets.MNIST(args.root, train=False, download=False, transform=transform)
    pin = torch.cuda.is_available()
    return (
        DataLoader(train, batch_size=args.batch, shuffle=True, num_workers=args.workers, pin_memory=pin),
        DataLoader(test, batch_size=256, shuffle=False, num_workers=args.workers, pin_memory=pin),
    )


def tensor_loaders(args):
    """The same samples, normalised once into an in-memory TensorDataset."""
    from torch.utils.data import DataLoader, TensorDataset
    from torchvision import datasets

    def split(train: bool) -> TensorDataset:
        raw = datasets.MNIST(args.root, train=train, download=False)
        return TensorDataset(((raw.data.float() / 255 - 0.1307) / 0.3081).unsqueeze(1), raw.targets)

    return DataLoader(split(True), batch_size=args.batch, shuffle=True), DataLoader(split(False), batch_size=256)


def train_phase(model, loader, criterion, optimizer, device, max_batches: int = 0) -> tuple[int, float]:
    """Section 6.1's training phase as written (two .item() per batch); returns (samples, seconds)."""
    model.train()
    train_loss_total, train_correct, train_total = 0.0, 0, 0
    start = time.perf_counter()
    for i, (batch_X, batch_y) in enumerate(loader, start=1):
        batch_X = batch_X.to(device)
        batch_y = batch_y.to(device)
        predictions = model(batch_X)
        loss = criterion(predictions, batch_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss_total += loss.item() * batch_X.size(0)
        _, predicted = predictions.max(1)
        train_total += batch_y.size(0)
        train_correct += predicted.eq(batch_y).sum().item()
        if i == max_batches:
            break
    return train_total, time.perf_counter() - start


def val_phase(model, loader, device) -> float:
    """Section 6.1's validation phase; returns the accuracy."""
    import torch

    model.eval()
    correct = total = 0
    with torch.no_grad():
        for batch_X, batch_y in loader:
            batch_X, batch_y = batch_X.to(device), batch_y.to(device)
            _, predicted = model(batch_X).max(1)
            total += batch_y.size(0)
            correct += predicted.eq(batch_y).sum().item()
    return correct / total


def _template_loop(args, make_loaders) -> dict:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()  # time to accuracy includes building the data, as the engine's does
    torch.manual_seed(0)
    train, val = make_loaders(args)
    model = chapter_model().to(device)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    result = {"threads": torch.get_num_threads()}
    if args.target_acc:
        for epoch in range(1, args.max_epochs + 1):
            train_phase(model, train, criterion, optimizer, device)
            acc = val_phase(model, val, device)
            if acc >= args.target_acc:
                return {
                    **result,
                    "time_to_acc_s": time.perf_counter() - started,
                    "epochs_to_acc": epoch,
                    "val_acc": acc,
                }
        return {**result, "time_to_acc_s": None, "epochs_to_acc": None, "val_acc": acc}
    samples, seconds = train_phase(model, train, criterion, optimizer, device, args.batches)
    return {**result, "samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}


def chapter(args) -> dict:
    return _template_loop(args, chapter_loaders)


def tensors(args) -> dict:
    return _template_loop(args, tensor_loaders)


# -- trainconsole ---------------------------------------------------------------------


def engine_settings(args, epochs: int):
    from engine.settings.config import from_dict

    return from_dict(
        {
            "run": {"name": "bench", "runs_dir": args.runs},
            "device": {"threads": args.threads},
            "data": {"dataset": "mnist", "root": args.root, "batch_size": args.batch, "val_fraction": 0.0},
            "training": {"epochs": epochs},
        },
        "benchmark settings",
    )


def engine(args) -> dict:
    """The headless engine (what `trainconsole run` drives), measured from its own events."""
    from engine.events import BatchProgressed, EpochCompleted, RunFailed, RunStarted
    from engine.api import Run
    from engine.training.control import RunControl

    started = time.perf_counter()
    control = RunControl()
    out: dict = {}

    def emit(e) -> None:
        if isinstance(e, RunStarted):
            out["threads"] = e.threads
        elif isinstance(e, BatchProgressed) and args.batches and e.batch >= args.batches and "samples_per_s" not in out:
            out.update(samples=e.batch * args.batch, samples_per_s=e.samples_per_s)
            control.stop("benchmark: enough batches")
        elif isinstance(e, EpochCompleted):
            out.setdefault("samples_per_s", e.samples_per_s)
            out.setdefault("samples", round(e.samples_per_s * e.seconds))  # approximate; the rate is what counts
            if e.epoch > 1:
                steady.append(e.samples_per_s)
            if args.target_acc and e.val_acc >= args.target_acc and "time_to_acc_s" not in out:
                out.update(time_to_acc_s=time.perf_counter() - started, epochs_to_acc=e.epoch, val_acc=e.val_acc)
                control.stop("benchmark: accuracy reached")
            out["last_val_acc"] = e.val_acc

    steady: list[float] = []
    epochs = args.max_epochs if args.target_acc else STEADY_EPOCHS if args.steady else 1
    final = Run(engine_settings(args, epochs), emit, control).run()
    if steady:
        out["steady_samples_per_s"] = statistics.median(steady)
    if isinstance(final, RunFailed):
        raise RuntimeError(final.error)
    if args.target_acc and "time_to_acc_s" not in out:
        out.update(time_to_acc_s=None, epochs_to_acc=None, val_acc=out.get("last_val_acc"))
    return out


def console(args) -> dict:
    """The console app, headless (App.run_test): keys 3 (training screen) then s (start), one epoch.

    samples/s and threads come from the run's own events.jsonl (its EpochCompleted and RunStarted).
    With --steady it trains STEADY_EPOCHS epochs: the later ones count what the
    console draws for the one before (table row, charts, badge) while they train.
    """
    try:
        from tui.app import TrainConsole

        app = TrainConsole(
            engine_settings(args, epochs=STEADY_EPOCHS if args.steady else 1), Path(args.runs) / "settings.toml"
        )
    except Exception as e:  # the console is written by someone else and may not be there yet
        return {"unavailable": f"console not available: {type(e).__name__}: {e}"}

    screen = asyncio.run(_train_in_console(app))
    run_dir = getattr(screen, "run_dir", None)
    if not run_dir:
        return {
            "unavailable": f"console not available: keys 3, s started no run (screen {type(screen).__name__}, "
            f"outcome {getattr(screen, 'outcome', '?')})"
        }
    events = [json.loads(line) for line in open(Path(run_dir) / "events.jsonl", encoding="utf-8")]
    started = next(e for e in events if e["type"] == "RunStarted")
    epochs = [e for e in events if e["type"] == "EpochCompleted"]
    if not epochs:
        return {"unavailable": f"console run ended without an epoch (outcome {screen.outcome})"}
    out = {
        "threads": started["threads"],
        "samples_per_s": epochs[0]["samples_per_s"],
        "samples": started["train_samples"],
    }
    if len(epochs) > 1:
        out["steady_samples_per_s"] = statistics.median(e["samples_per_s"] for e in epochs[1:])
    return out


async def _train_in_console(app, look=None, poll_s: float = 0.05):
    """Keys 3 (training screen) then s (start) in the headless app; every poll_s, look(screen) until the run ends.

    The training screen, at its end (its outcome says how the run went).
    """
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.press("s")
        screen = app.screen
        deadline = time.monotonic() + CONSOLE_TIMEOUT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
            if look is not None:
                look(screen)  # once more after the end: the run's end draws its last epochs
            if getattr(screen, "outcome", None) not in ("idle", "starting", "running", "paused"):
                break
        return screen


def console_ab(args) -> dict:
    """What the console's drawing costs training, measured in one process: no machine drift between the halves.

    The engine trains in a thread beside the console (as the console runs
    it), and its events reach the training screen on alternate epochs only:
    an "on" epoch carries its own progress ticks and the drawing of the epoch
    before it, an "off" epoch nothing. Returns the median on/off ratio of
    adjacent epochs.
    """
    import threading

    from engine.training.control import RunControl
    from engine.api import Run
    from tui.app import TrainConsole
    from tui.messages import EngineEvent
    from tui.runner import console_threads
    from tui.widgets.epoch_progress import EpochProgress

    settings = engine_settings(args, epochs=args.epochs)
    rates: dict[bool, list[float]] = {True: [], False: []}
    state = {"on": True, "screen": None}

    def emit(e) -> None:
        if type(e).__name__ == "EpochCompleted":
            rates[state["on"]].append(e.samples_per_s)
            state["on"] = not state["on"]  # this epoch's own draw falls in the next one
        if state["on"] and state["screen"] is not None:
            state["screen"].post_message(EngineEvent(e))

    async def drive():
        app = TrainConsole(settings, Path(args.runs) / "settings.toml")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            while not app.torch_ready:
                await asyncio.sleep(0.05)
            state["screen"] = app.screen
            import torch

            torch.set_num_threads(console_threads(settings.device.threads))  # as tui.runner starts a run
            trainer = Run(
                settings, emit, RunControl(), set_threads=False, progress_interval_s=EpochProgress.MIN_INTERVAL_S
            )
            thread = threading.Thread(target=trainer.run)
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.1)
            return trainer.threads

    threads = asyncio.run(drive())
    pairs = [on / off for on, off in zip(rates[True][1:], rates[False][1:])]  # the first epoch warms up
    return {
        "threads": threads,
        "ratio": statistics.median(pairs) if pairs else None,
        "pairs": [round(p, 3) for p in pairs],
        "on": rates[True],
        "off": rates[False],
    }


# -- the contrast -----------------------------------------------------------------------


def lightning(args) -> dict:
    import warnings

    import lightning as L
    import torch

    warnings.filterwarnings("ignore")  # the num_workers hint and friends
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train, _ = tensor_loaders(args)

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = chapter_model()
            self.criterion = torch.nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self.model(x)
            loss = self.criterion(out, y)
            self.log("train_loss", loss, prog_bar=True)
            self.log("train_acc", (out.argmax(1) == y).float().mean(), prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    class Clock(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.seconds = time.perf_counter() - self.start

    clock = Clock()
    trainer = L.Run(
        max_epochs=1,
        limit_train_batches=args.batches or 1.0,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
        callbacks=[clock],
    )
    trainer.fit(Classifier(), train)
    samples = min(len(train.dataset), (args.batches or len(train)) * args.batch)
    return {
        "threads": torch.get_num_threads(),
        "samples": samples,
        "seconds": clock.seconds,
        "samples_per_s": samples / clock.seconds,
    }


# -- the machine and the long run ---------------------------------------------------------


def matmul(args) -> dict:
    """Best FLOP/s of 2048x2048 fp32 matmuls over --seconds (TF32 off on GPUs: fp32 is what the loops run)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    per_window = 50 if cuda else 1
    best, end = 0.0, time.perf_counter() + args.seconds
    for _ in range(2):
        torch.mm(a, b, out=c)  # warm-up
    while time.perf_counter() < end:
        sync()
        t = time.perf_counter()
        for _ in range(per_window):
            torch.mm(a, b, out=c)
        sync()
        best = max(best, 2 * n**3 * per_window / (time.perf_counter() - t))
    name = torch.cuda.get_device_name(0) if cuda else "cpu"
    return {"threads": torch.get_num_threads(), "flops": best, "device": name, "torch": torch.__version__}


def digits_memory(args) -> dict:
    """The default settings (digits, batch 64) for --epochs epochs; RSS sampled every --every epochs."""
    from engine.settings.config import from_dict
    from engine.events import EpochCompleted, RunFailed
    from engine.api import Run

    rss: dict[int, float] = {}

    def emit(e) -> None:
        if isinstance(e, EpochCompleted) and e.epoch % args.every == 0:
            rss[e.epoch] = round(_status_mb("VmRSS"), 1)

    settings = from_dict(
        {"run": {"name": "digits-memory", "runs_dir": args.runs}, "training": {"epochs": args.epochs}},
        "benchmark settings",
    )
    started = time.perf_counter()
    if args.console:
        rss = _console_memory(settings, args.every)
    else:
        final = Run(settings, emit).run()
        if isinstance(final, RunFailed):
            raise RuntimeError(final.error)
    return {"rss_mb": rss, "seconds": time.perf_counter() - started}


def _console_memory(settings, every: int) -> dict[int, float]:
    """RSS every `every` epochs of a run inside the console (headless, keys 3 then s): table rows, charts, history."""
    from tui.app import TrainConsole

    app = TrainConsole(settings, Path(settings.run.runs_dir) / "settings.toml")
    rss: dict[int, float] = {}

    def look(screen) -> None:
        mark = (
            screen.query_one("#epoch-table").row_count // every * every
        )  # epochs come drawn in twos and tens: the first look past each mark
        if mark and mark not in rss:
            rss[mark] = round(_status_mb("VmRSS"), 1)

    asyncio.run(_train_in_console(app, look, poll_s=0.02))
    if not rss:
        raise RuntimeError("the console run drew no epoch")
    return rss


PIPELINES = {
    "chapter": chapter,
    "tensors": tensors,
    "engine": engine,
    "console": console,
    "console-ab": console_ab,
    "lightning": lightning,
    "matmul": matmul,
    "digits-memory": digits_memory,
}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.name in ("engine", "console", "console-ab", "digits-memory"):
        from engine.device import apply_openmp_defaults

        apply_openmp_defaults()  # as `trainconsole` does, before torch loads
    result = PIPELINES[args.name](args)
    result.update(
        name=args.name,
        batch=args.batch,
        peak_rss_mb=round(_status_mb("VmHWM"), 1),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"),
        gomp_spincount=os.environ.get("GOMP_SPINCOUNT", "unset"),
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
