"""A picture of a run's losses over training (`losses.png` in the run folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpaint.fileio import atomic_path


def plot_losses(records: list[dict[str, Any]], path: Path) -> Path | None:
    """D and G losses and D's outputs against step; None when there is nothing to plot yet."""
    rows = [r for r in records if "loss_d" in r]
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    figure, (losses, outputs) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    losses.plot(steps, [r["loss_d"] for r in rows], label="D loss")
    losses.plot(steps, [r["loss_g"] for r in rows], label="G loss")
    losses.set_ylabel("loss")
    losses.legend()
    outputs.plot(steps, [r["d_real"] for r in rows], label="D(x) real")
    outputs.plot(steps, [r["d_fake"] for r in rows], label="D(G(z)) fake")
    outputs.set_ylim(0, 1)
    outputs.set_xlabel("step")
    outputs.set_ylabel("mean probability")
    outputs.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return path
