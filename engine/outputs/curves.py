"""Chapter 8.1's figure: loss and accuracy, train and val, the overfitting onset marked; several runs overlaid."""

from __future__ import annotations

from pathlib import Path

from engine.outputs import require
from engine.outputs.compare import overlap_note, overlapping_runs
from engine.outputs.readers import Source
from engine.io.atomic import atomic_write
from engine.runs.records import run_settings
from engine.settings.config import DiagnosticsSettings
from engine.io.text import printable
from engine.training.diagnostics import overfitting_onset

FIGSIZE, DPI = (14, 5), 100  # the chapter's figure: 1400 x 500 pixels


def run_rules(run_dir: Path) -> DiagnosticsSettings:
    """The onset rules the run was trained with (its settings.toml), else the defaults."""
    try:
        return run_settings(run_dir / "settings.toml").diagnostics
    except Exception:  # an old or foreign run folder: the chapter's defaults
        return DiagnosticsSettings()


def save_curves(runs: list[Source], out: str | Path) -> Path:
    """The figure as a PNG at `out` (1400 x 500 pixels): a regular file replaced at once, never written through a
    symlink (NotARegularFile, an OSError, where one is in its place)."""
    require("matplotlib", "trainconsole plot")
    import matplotlib

    matplotlib.use("Agg")  # no display needed: a server reached by SSH
    import matplotlib.pyplot as plt

    fig = draw_curves(runs)
    out = Path(out)
    try:
        atomic_write(out, lambda fh: fig.savefig(fh, format="png", dpi=DPI), follow_symlinks=False)
    finally:
        plt.close(fig)
    return out


def draw_curves(runs: list[Source]):
    """Two panels, loss and accuracy (R² for regressions). One run: the chapter's colours (train blue, val red) and
    its onset in orange.
    Several: a colour per run named in the figure's legend, each onset dashed. Train is dotted and val solid
    either way, so the two differ in grey too. A run whose curves coincide with an earlier one's (the same seed)
    is drawn with x markers over it, and a note under the panels names both.

    Run names come from folders: shown through `printable` and never read as mathtext (a `$` is a dollar)."""
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    overlaps = overlapping_runs(runs)
    hidden = {later for _, later in overlaps}
    second = _second_panel(runs)
    for i, run in enumerate(runs):
        colour = colours[i % len(colours)]
        _draw_run(panels, run, colour if len(runs) > 1 else None, run.name in hidden, second)
    _finish(fig, panels, runs, colours, overlaps, second)
    return fig


def _second_panel(runs: list[Source]) -> tuple[str, str]:
    """The right panel's metric and title: accuracy, or R² where every run is a regression (no finite accuracy)."""
    def finite(run: Source, tag: str) -> bool:
        return any(v == v for _, v in run.tags.get(tag, []))

    if runs and all(finite(r, "val_r2") and not finite(r, "val_acc") for r in runs):
        return "r2", "R²"
    return "acc", "Accuracy"


def _draw_run(panels, run: Source, colour: str | None, over_another: bool, second: tuple[str, str]) -> None:
    """One run's four curves and its onset; `colour` None: the chapter's colours of a single run."""
    for ax, metric, title in zip(panels, ("loss", second[0]), ("Loss", "Acc" if second[0] == "acc" else "R²")):
        for split, own_colour, style in (("train", "tab:blue", ":"), ("val", "tab:red", "-")):
            points = run.tags.get(f"{split}_{metric}", [])
            # over another run's line: x markers alone (about 25 of them), so that line still shows between them
            marks = {"linestyle": "none", "marker": "x", "markevery": max(1, len(points) // 25)} if over_another else {}
            ax.plot([s for s, _ in points], [v for _, v in points], color=colour or own_colour,
                    label=f"{split.capitalize()} {title}", **{"linestyle": style, **marks})  # fmt: skip
    onset = overfitting_onset([v for _, v in run.tags.get("val_loss", [])], run_rules(run.path))
    if onset is not None:
        panels[0].axvline(onset, color=colour or "orange", linestyle="--",
                          label=f"Overfitting onset (epoch {onset})")  # fmt: skip


def _finish(fig, panels, runs: list[Source], colours: list[str], overlaps: list[tuple[str, str]],
            second: tuple[str, str]) -> None:
    """Axes, legends, the title, the overlap note."""
    from matplotlib.lines import Line2D

    note, hidden = overlap_note(overlaps), {later for _, later in overlaps}
    several = len(runs) > 1
    for ax, title in zip(panels, ("Loss", second[1])):
        ax.set_xlabel("Epoch")
        ax.set_ylabel(title)
        ax.set_title(f"{title} curves")
        ax.grid(True, alpha=0.3)
        if several:  # the line styles in each panel, the runs once for the figure
            styles = [Line2D([], [], color="grey", linestyle=":", label="train"),
                      Line2D([], [], color="grey", linestyle="-", label="val")]  # fmt: skip
            if ax is panels[0] and any(line.get_linestyle() == "--" for line in ax.get_lines()):
                styles.append(Line2D([], [], color="grey", linestyle="--", label="overfitting onset"))
            ax.legend(handles=styles)
        else:
            ax.legend()
    bottom = 0.06 if note else 0
    if note:
        fig.text(0.5, 0.01, printable(note), ha="center", va="bottom", parse_math=False)
    if several:
        drawn_as = {name: {"linestyle": "none", "marker": "x"} for name in hidden}  # a hidden run: its markers
        handles = [
            Line2D([], [], color=colours[i % len(colours)], label=printable(run.name), **drawn_as.get(run.name, {}))
            for i, run in enumerate(runs)
        ]
        legend = fig.legend(handles=handles, loc="upper center", ncol=min(len(runs), 6), frameon=False)
        for text in legend.get_texts():
            text.set_parse_math(False)
        fig.tight_layout(rect=(0, bottom, 1, 0.92))
    else:
        fig.suptitle(printable(runs[0].name) if runs else "", parse_math=False)
        fig.tight_layout(rect=(0, bottom, 1, 1))
