"""x on the checkpoints screen writes the selected run as RUN_FOLDER/train.py, never through a symlink."""

from __future__ import annotations

from textual.widgets import DataTable

from engine.api import Run
from pilot_helpers import SIZE, run, tiny_settings, wait_for
from tui.app import TrainConsole


def test_x_exports_the_selected_run_and_refuses_a_symlink(tmp_path):
    settings = tiny_settings(tmp_path, epochs=1)
    Run(settings, lambda event: None).run()
    (run_dir,) = (tmp_path / "runs").iterdir()

    async def scenario():
        app = TrainConsole(settings, tmp_path / "settings.toml")
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("4")
            screen = app.screen
            assert await wait_for(pilot, lambda: screen.query_one("#runs", DataTable).row_count == 1, timeout=10)
            await pilot.press("x")
            script = run_dir / "train.py"
            assert await wait_for(pilot, lambda: script.is_file(), timeout=30)
            compile(script.read_text(), str(script), "exec")
            assert "torch.save(model.state_dict(), \"best.pth\")" in script.read_text()
            script.unlink()
            (tmp_path / "target").write_text("keep")
            script.symlink_to(tmp_path / "target")
            await pilot.press("x")
            assert await wait_for(pilot, lambda: any("symlink" in str(n.message) or "link" in str(n.message)
                                                     for n in app._notifications), timeout=30)  # fmt: skip
            assert (tmp_path / "target").read_text() == "keep" and script.is_symlink()

    run(scenario())
