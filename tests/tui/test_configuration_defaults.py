"""The configuration screen says which model and run name `auto` gives, and why (engine.settings.defaults)."""

from __future__ import annotations

import numpy as np
from textual.widgets import Input, Static

from engine.settings.config import load_settings
from pilot_helpers import SIZE, run, wait_for
from tui.app import TrainConsole


def _image_folder(tmp_path):
    """Two classes of tiny 10x12 PNGs, and console settings that train on them."""
    from PIL import Image

    root = tmp_path / "pets"
    rng = np.random.default_rng(0)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            pixels = rng.integers(0, 40, (12, 10, 3), dtype=np.uint8)
            pixels[:, :, k] = 250
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    sets = (f"run.runs_dir={str(tmp_path / 'runs')!r}", "data.dataset=image-folder", f"data.path={str(root)!r}",
            "data.val_fraction=0.25", "model.channels=[4]")
    return load_settings(None, sets)


def test_the_screen_shows_the_model_and_run_name_auto_chose_and_why(tmp_path):
    settings = _image_folder(tmp_path)

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            label = app.screen.query_one("#param-count", Static)
            shown = lambda: str(label.render())  # noqa: E731
            assert await wait_for(pilot, lambda: "parameters (input (3, 12, 10), 2 classes)" in shown())
            assert shown().startswith("Model auto → cnn (an image folder): ")
            assert shown().endswith("; run name auto → folder-cnn")

            app.screen.show_section("model")  # the user names a model: it is shown as named, and the run follows
            assert await wait_for(pilot, lambda: bool(app.screen.query("#field-model-name")))
            app.screen.query_one("#field-model-name").query_one(Input).value = "mlp"
            assert await wait_for(pilot, lambda: shown().startswith("Model mlp: ") and "parameters (input" in shown())
            assert shown().endswith("; run name auto → folder-mlp")
            assert app.settings.model.name == "mlp"

    run(scenario())
