"""Pictures of a run's progress: losses, D's outputs, the sample grids' diversity and (when scored)
the sliced Wasserstein distance and, for faces, the Fréchet face distance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inpaint.fileio import atomic_path


def plot_losses(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Plot the stats lines of a run against step; None when there is nothing to plot yet."""
    rows = [r for r in records if all(key in r for key in ("loss_d", "loss_g", "d_real", "d_fake"))]
    scores = [r for r in records if r.get("event") == "eval" and ("frechet" in r or "swd" in r)]
    spreads = [r for r in records if r.get("event") == "diversity" and "diversity" in r]
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 + bool(spreads) + bool(scores)
    figure, axes = plt.subplots(panels, 1, figsize=(8, 3 * panels), sharex=True)
    steps = [r["step"] for r in rows]
    axes[0].plot(steps, [r["loss_d"] for r in rows], label="D loss")
    axes[0].plot(steps, [r["loss_g"] for r in rows], label="G loss")
    axes[0].set_ylabel("loss")
    axes[0].legend()
    axes[1].plot(steps, [r["d_real"] for r in rows], label="D(x) real")
    axes[1].plot(steps, [r["d_fake"] for r in rows], label="D(G(z)) fake")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("mean probability")
    axes[1].legend()
    if spreads:
        axes[2].plot([r["step"] for r in spreads], [r["diversity"] for r in spreads], ".-", label="sample diversity")
        axes[2].axhline(1.0, color="grey", linewidth=0.8, linestyle=":", label="real images")
        axes[2].set_ylim(bottom=0)
        axes[2].set_ylabel("diversity (near 0: collapse)")
        axes[2].legend()
    if scores:
        _plot_scores(axes[-1], scores)
    axes[-1].set_xlabel("step")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return path


SCORES = (("frechet", "Fréchet face distance"), ("swd", "sliced Wasserstein distance ×10⁻³"))


def _plot_scores(axes, scores: list[dict[str, Any]]) -> None:
    """Each score over training, shown G solid and raw G (under EMA) dashed, on a log scale; the
    SWD is drawn ÷1000 so both fit one axis."""
    for key, label in SCORES:
        rows = [r for r in scores if key in r]
        if not rows:
            continue
        scale = 1e-3 if key == "swd" else 1.0
        steps = [r["step"] for r in rows]
        (line,) = axes.plot(steps, [r[key] * scale for r in rows], "o-", label=f"{label} (shown G)")
        if all(f"{key}_raw" in r for r in rows):
            raw = [r[f"{key}_raw"] * scale for r in rows]
            axes.plot(steps, raw, "s--", color=line.get_color(), label="raw G (without EMA)")
    axes.set_yscale("log")
    axes.set_ylabel("distance (lower is better)")
    axes.legend()
