"""lr-find's curve as a PNG: the loss of each step and its smoothed curve against the learning rate, the
suggestion marked."""

from __future__ import annotations

from pathlib import Path

from engine.outputs import require
from engine.io.atomic import atomic_write
from engine.training.lr_find import loss_axis

FIGSIZE, DPI = (8, 5), 100


def save_lr_curve(result, out: str | Path) -> Path:
    """The figure at `out`: a regular file replaced at once, never written through a symlink (NotARegularFile)."""
    require("matplotlib", "trainconsole lr-find --png")
    import matplotlib

    matplotlib.use("Agg")  # no display needed: a server reached by SSH
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    try:
        lrs = [p.lr for p in result.points]
        ax.plot(lrs, [p.loss for p in result.points], color="tab:blue", alpha=0.3, label="loss of each step")
        ax.plot(lrs, [p.smoothed for p in result.points], color="tab:blue", label="smoothed loss")
        if result.index is not None:
            point = result.points[result.index]
            ax.axvline(point.lr, color="tab:red", linestyle="--")
            ax.plot([point.lr], [point.smoothed], "o", color="tab:red",
                    label=f"suggested {result.suggestion:.3g} ({result.method})")  # fmt: skip
        low, top = loss_axis(result.points)
        ax.set_ylim(low, top + 0.05 * (top - low))
        ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Training loss")
        ax.set_title("Learning-rate range test", parse_math=False)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = Path(out)
        atomic_write(out, lambda fh: fig.savefig(fh, format="png", dpi=DPI), follow_symlinks=False)
    finally:
        plt.close(fig)
    return out
