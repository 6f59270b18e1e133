"""What `spinesense tune` writes: the sweep tables, the trade-off plots, the TOML snippet.

Kept apart from the sweep itself so that matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spinesense.outputs import atomic_output

if TYPE_CHECKING:
    from spinesense.analysis.tune import SweepResult


def write_table(path: Path, rows: list[dict[str, float]], columns: Sequence[str]) -> None:
    """A CSV table, written atomically (the output folder was checked before the sweep)."""
    with atomic_output(path, force=True, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r.get(c, "")) for c in columns])


def _save(fig: Any, path: Path) -> None:
    """A figure as PNG, through a temporary file renamed on success."""
    import matplotlib.pyplot as plt

    with atomic_output(path, force=True, binary=True) as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def plot_slouch(result: SweepResult, best: dict[str, float] | None, budget: float | None,
                path: Path) -> bool:
    """Trade-off curves (F1 and precision/recall against alerts per hour, one line per
    delay) next to the F1 map over threshold x delay (with its budget contour when both
    axes have two values or more). One setting alone has no trade-off: nothing is drawn
    and False is returned."""
    ths, delays = result.axes["threshold_deg"], result.axes["delay_s"]
    if len(ths) == 1 and len(delays) == 1:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f1 = result.grid("f1")
    rate = result.grid("alerts_per_h")
    prec, rec = result.grid("precision"), result.grid("recall")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), dpi=100, layout="constrained")
    cmap = plt.get_cmap("viridis")
    for j, d in enumerate(delays):
        color = cmap(j / max(1, len(delays) - 1))
        axes[0].plot(rate[:, j], f1[:, j], "-o", color=color, markersize=2.5, linewidth=1,
                     label=f"{d:g} s")
        axes[1].plot(rec[:, j], prec[:, j], "-o", color=color, markersize=2.5, linewidth=1)
    for ax in axes[:2]:
        ax.grid(color="#e6e6e6")
    if budget is not None:
        axes[0].axvline(budget, color="#d9534f", linestyle="--", linewidth=1,
                        label=f"budget {budget:g}/h")
    if best:
        axes[0].plot(best["alerts_per_h"], best["f1"], "*", color="#d9534f", markersize=14,
                     label="recommended")
    axes[0].set(xlabel="slouch alerts per hour", ylabel="episode F1", ylim=(0, 1.02),
                title="F1 against alerts/hour (lines: delay; along a line: threshold)")
    axes[0].legend(title="delay", fontsize=7, ncols=2, loc="lower right")
    if best:
        axes[1].plot(best["recall"], best["precision"], "*", color="#d9534f", markersize=14)
    axes[1].set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
                title="precision against recall")
    low = float(np.nanmin(f1)) if np.isfinite(f1).any() else 0.0
    im = axes[2].pcolormesh(_edges(delays), _edges(ths), f1, cmap="viridis",
                            vmin=math.floor(low * 10) / 10, vmax=1)
    fig.colorbar(im, ax=axes[2], label="episode F1")
    if budget is not None and len(ths) > 1 and len(delays) > 1:
        axes[2].contour(delays, ths, rate, levels=[budget], colors="#d9534f",
                        linewidths=1.2, linestyles="--")
    if best:
        axes[2].plot(best["delay_s"], best["threshold_deg"], "*", color="#d9534f",
                     markersize=14)
    axes[2].set(xlabel="delay (s)", ylabel="threshold (°)",
                title="F1 over threshold x delay (dashed: alert budget)")
    _save(fig, path)
    return True


def plot_sitting(result: SweepResult, best: dict[str, float], path: Path) -> bool:
    """F1 maps over sitting limit x break length (False, nothing drawn, for one setting)."""
    lims, brks = result.axes["limit_min"], result.axes["break_s"]
    if len(lims) == 1 and len(brks) == 1:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100, layout="constrained")
    for ax, key, title in ((axes[0], "f1", "sitting-alert F1"),
                           (axes[1], "break_f1", "break F1")):
        im = ax.pcolormesh(_edges(brks), _edges(lims), result.grid(key), cmap="viridis",
                           vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, label=title)
        ax.plot(best["break_s"], best["limit_min"], "*", color="#d9534f", markersize=14)
        ax.set(xlabel="break length (s)", ylabel="sitting limit (min)",
               title=f"{title} over limit x break")
    _save(fig, path)
    return True


def _edges(v: np.ndarray) -> np.ndarray:
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.r_[v[0] - (mid[0] - v[0]), mid, v[-1] + (v[-1] - mid[-1])]


def snippet(slouch: dict[str, float] | None, sitting: dict[str, float] | None,
            header: list[str]) -> str:
    """A TOML snippet to paste into the config file. A delay the data could not resolve
    (``delay_unresolved``: tuned from metrics) is left out, with a comment saying why."""
    lines = [f"# {h}" for h in header]
    if slouch:
        lines += ["[slouch]", f"threshold_deg = {_num(slouch['threshold_deg'])}",
                  f"release_deg = {_num(slouch['release_deg'])}"]
        if "delay_unresolved" in slouch:
            lines.append(f"# delay_s: not recommended; delays under "
                         f"{slouch['delay_unresolved']:g} s cannot be told apart here")
        else:
            lines.append(f"delay_s = {_num(slouch['delay_s'])}")
        lines.append("")
    if sitting:
        lines += ["[sitting]", f"limit_min = {_num(sitting['limit_min'])}",
                  f"break_s = {_num(sitting['break_s'])}", ""]
    return "\n".join(lines)


def _num(v: float) -> str:
    """A TOML float: whole numbers as ``15.0``, others to 4 significant digits."""
    return f"{v:.1f}" if float(v).is_integer() else f"{v:.4g}"


# ----------------------------------------------------------------- metrics-only (InfluxDB)
