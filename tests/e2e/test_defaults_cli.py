"""`trainconsole run` with the defaults that follow the data: an image folder trains a CNN in runs/folder-cnn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.runs.records import run_settings
from tests.e2e.test_cli import TINY, cli, runs_in

pytestmark = pytest.mark.slow


def _write_pngs(root: Path) -> Path:
    """Two classes of tiny PNGs, most 12x10 and one 9x10 (the reader resizes it to the most common size)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 40, (9 if i == 0 else 12, 10, 3), dtype=np.uint8)
            pixels[:, :, k] = 250
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_run_on_an_image_folder_trains_a_cnn_into_runs_folder_cnn(tmp_path):
    pets = _write_pngs(tmp_path / "pets")
    sets = ("--set", "data.dataset=image-folder", "--set", "data.path=pets", "--set", "data.val_fraction=0.25",
            "--set", "data.batch_size=4", "--set", "model.channels=[4]")
    result = cli(tmp_path, "run", *TINY, *sets)
    assert result.returncode == 0, result.stderr
    assert runs_in(tmp_path) == [tmp_path / "runs" / "folder-cnn"]
    header = next(line for line in result.stdout.splitlines() if line.startswith("Model "))
    assert header.startswith("Model      : cnn (auto: an image folder), ")
    run_dir = tmp_path / "runs" / "folder-cnn"
    recorded = run_settings(run_dir / "settings.toml")
    assert (recorded.model.name, recorded.run.name, recorded.data.path) == ("cnn", "folder-cnn", str(pets))

    evaluated = cli(tmp_path, "eval", str(run_dir))  # the record rebuilds the CNN its weights belong to
    assert evaluated.returncode == 0, evaluated.stderr
    again = cli(tmp_path, "run", *TINY, *sets, "--set", "model.name=mlp")  # named by the user: the MLP
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "runs" / "folder-mlp" / "checkpoints" / "last.pth").is_file()
    assert "Model      : mlp, " in again.stdout
