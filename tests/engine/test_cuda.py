"""The CUDA paths, on a machine that has a GPU (skipped elsewhere).

Device choice, the GPU report (`total_memory`), bf16 and fp16 autocast (the
latter with the grad scaler), device-resident batches with no per-batch
sync, the pinned-memory DataLoader, fused Adam, a mid-epoch resume, a GPU
checkpoint evaluated on the CPU, and the console's GPU memory line.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import engine.training.batches as batches_module
from engine.runs.checkpoints import load_checkpoint
from engine.settings.config import SettingsError, from_dict
from engine.device import environment_report, format_report, resolve_device
from engine.runs.evaluate import evaluate_checkpoint
from engine.events import BatchProgressed, EpochCompleted, RunFinished, RunStarted
from engine.api import Run
from engine.training.control import RunControl

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_settings(tmp_path: Path, **sections):
    base = {
        "run": {"runs_dir": str(tmp_path / "runs"), "name": "cuda", "seed": 3},
        "device": {"device": "cuda"},
        "data": {"dataset": "digits", "batch_size": 64},
        "model": {"name": "mlp", "hidden": [64], "dropout": 0.2},
        "training": {"epochs": 4, "lr": 3e-3},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return from_dict(base)


def train(settings, **kwargs):
    events: list = []
    trainer = Run(settings, events.append, kwargs.pop("control", None), **kwargs)
    final = trainer.run()
    assert isinstance(final, RunFinished), final
    return trainer, events, final


def test_device_names_resolve_to_the_gpus():
    assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("auto").type == "cuda"
    count = torch.cuda.device_count()
    with pytest.raises(SettingsError, match=f"has {count} CUDA device"):
        resolve_device(f"cuda:{count}")


def test_the_report_reads_total_memory_of_every_gpu():
    report = environment_report()
    assert report["cuda_available"] and len(report["gpus"]) == torch.cuda.device_count()
    gpu = report["gpus"][0]
    assert gpu["total_memory"] == torch.cuda.get_device_properties(0).total_memory > 0
    assert 0 < gpu["free_memory"] <= gpu["total_memory"]
    text = format_report(report)
    assert gpu["name"] in text and "VRAM" in text
    print(text)


def test_auto_precision_trains_in_bf16_on_device_resident_batches(tmp_path):
    trainer, events, final = train(cuda_settings(tmp_path))
    started = next(e for e in events if isinstance(e, RunStarted))
    expected = "bf16 autocast" if torch.cuda.is_bf16_supported() else "fp16 autocast + GradScaler"
    assert started.precision == expected
    assert "in-memory tensors on cuda" in started.data_path
    assert trainer.data.train.x.is_cuda and trainer.data.train.y.is_cuda
    assert all(p.is_cuda for p in trainer.model.parameters())
    assert trainer.optimizer.defaults.get("fused") is True
    epochs = [e for e in events if isinstance(e, EpochCompleted)]
    assert epochs[-1].val_acc > 0.85, epochs[-1]
    print(f"bf16: val_acc {epochs[-1].val_acc:.3f}, {epochs[-1].samples_per_s:,.0f} samples/s")


def test_fp16_uses_the_grad_scaler(tmp_path):
    trainer, events, _ = train(cuda_settings(tmp_path, training={"precision": "fp16"}))
    assert trainer.scaler.is_enabled()
    epochs = [e for e in events if isinstance(e, EpochCompleted)]
    assert all(torch.isfinite(torch.tensor(e.train_loss)) for e in epochs)
    assert epochs[-1].val_acc > 0.85, epochs[-1]


def test_the_dataloader_path_pins_memory(tmp_path):
    trainer, events, _ = train(cuda_settings(tmp_path, data={"in_memory": "false"}, training={"epochs": 2}))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert "pinned memory" in started.data_path
    xb, _ = next(iter(trainer.data.train))
    assert xb.is_pinned()


def test_an_epoch_syncs_only_at_progress_ticks(tmp_path, monkeypatch):
    """No `.item()` per batch: with progress ticks off, an epoch of many batches syncs a handful of times."""
    monkeypatch.setattr(batches_module, "PROGRESS_INTERVAL_S", 1e9)
    settings = cuda_settings(tmp_path, data={"batch_size": 16}, training={"epochs": 1})
    trainer = Run(settings, lambda e: None)
    trainer.setup()
    batches = len(trainer.data.train)
    trainer._train_epoch()  # warm-up: cuBLAS handles, autocast caches
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer._train_epoch()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        trainer.close()
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    print(f"{batches} batches, {len(syncs)} synchronizing calls: {sorted({str(w.message)[:80] for w in syncs})}")
    assert len(syncs) <= 4 < batches


def test_a_mid_epoch_resume_continues_the_run(tmp_path):
    """Stopped in the middle of epoch 2 and resumed: the same epochs as the uninterrupted run, to float noise."""
    settings = cuda_settings(tmp_path, training={"epochs": 3, "precision": "fp32"})
    _, whole, _ = train(settings.replace("run.name", "whole"))
    control = RunControl()
    first: list = []

    def stop_mid_epoch(e):
        first.append(e)
        if isinstance(e, BatchProgressed) and e.epoch == 2 and e.batch >= 5:
            control.stop("test")

    torch.manual_seed(0)
    stopped = Run(settings.replace("run.name", "split"), stop_mid_epoch, control, set_threads=False)
    assert stopped.run().status == "stopped"
    last = Path(stopped.run_dir) / "checkpoints" / "last.pth"
    assert load_checkpoint(last)["batch"] > 0
    _, resumed, _ = train(settings, resume_from=last)
    a = [e for e in whole if isinstance(e, EpochCompleted)]
    b = [e for e in first + resumed if isinstance(e, EpochCompleted)]
    assert [e.epoch for e in a] == [e.epoch for e in b] == [1, 2, 3]
    diff = max(abs(x.train_loss - y.train_loss) + abs(x.val_loss - y.val_loss) for x, y in zip(a, b))
    print(f"resume on cuda: max loss difference {diff:.3g}")
    assert diff < 1e-4


def test_a_gpu_checkpoint_evaluates_on_the_cpu(tmp_path):
    trainer, events, final = train(cuda_settings(tmp_path, training={"epochs": 2}))
    best = Path(final.run_dir) / "checkpoints" / "best.pth"
    state = load_checkpoint(best)
    assert all(t.device.type == "cpu" for t in state.values())
    result = evaluate_checkpoint(best, device="cpu")
    recorded = max(e.val_acc for e in events if isinstance(e, EpochCompleted))
    assert abs(result["accuracy"] - recorded) < 0.02, (result, recorded)


def test_the_console_shows_gpu_memory(tmp_path):
    import asyncio

    from textual.widgets import Static

    from tui.app import TrainConsole

    settings = cuda_settings(tmp_path)

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=(120, 40)) as pilot:
            for _ in range(400):
                await pilot.pause(0.05)
                text = str(app.screen.query_one("#gpu-memory", Static).render())
                if "GB free" in text:
                    break
            assert torch.cuda.get_device_name(0) in text and "GB free" in text, text
            print(text)

    asyncio.run(scenario())
