"""An overview picture of a simulation: the true flexion with the slouch truth, the
postures, and the sitting bouts with their alerts and breaks, for eyeballing scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"sitting": "tab:blue", "standing": "tab:green", "walking": "tab:orange",
          "lying": "tab:purple"}


def plot_simulation(sim, path: str | Path, *, force: bool = True) -> Path:  # sim: Simulation
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = sim.truth
    p = tr["label_params"]
    hours = tr["duration_s"] > 3 * 3600
    unit, scale = ("h", 3600.0) if hours else ("min", 60.0)
    step = max(1, len(sim.t) // 200_000)  # plenty of points for a picture
    t = sim.t[::step] / scale
    fig, (ax, bar) = plt.subplots(2, 1, figsize=(14, 5.5), sharex=True,
                                  gridspec_kw={"height_ratios": [4, 1]})
    ax.plot(t, sim.flexion_true[::step], lw=0.5, color="k", label="true flexion")
    ax.axhline(p["threshold_deg"], color="tab:red", lw=0.8, label="threshold")
    ax.axhline(p["release_deg"], color="tab:red", lw=0.8, ls="--", label="release")
    for i, ep in enumerate(tr["slouch_episodes"]):
        ax.axvspan(ep["onset"] / scale, ep["end"] / scale, color="tab:red", alpha=0.2,
                   label="slouch episode" if i == 0 else None)
    for i, reach in enumerate(tr["reaches"]):
        ax.axvline(reach["start"] / scale, color="tab:gray", lw=0.5, alpha=0.6,
                   label="reach" if i == 0 else None)
    ax.set_ylabel("flexion (°)")
    ax.set_ylim(max(-95.0, float(np.min(sim.flexion_true)) - 5), 60)
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax.set_title(f"{tr['scenario']} seed {tr['seed']}: {len(tr['slouch_episodes'])} slouch "
                 f"episodes, {len(tr['sitting_bouts'])} sitting bouts, "
                 f"{len(tr['sitting_alerts'])} alerts, {len(tr['breaks'])} breaks")
    for seg in tr["segments"]:
        bar.axvspan(seg["start"] / scale, seg["end"] / scale, ymin=0.5, ymax=1.0,
                    color=COLORS[seg["posture"]], lw=0)
    for bout in tr["sitting_bouts"]:
        bar.plot([bout["start"] / scale, bout["end"] / scale], [0.3, 0.3], color="tab:blue",
                 lw=4, solid_capstyle="butt")
    for alert in tr["sitting_alerts"]:
        bar.plot(alert["t"] / scale, 0.3, "v", color="tab:red", ms=7)
    for brk in tr["breaks"]:
        bar.plot(brk["t"] / scale, 0.3, "|", color="tab:green", ms=12, mew=2)
    bar.set_ylim(0, 1)
    bar.set_yticks([0.3, 0.75], ["bouts ▼alert |break", "posture"], fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    bar.legend(handles, list(COLORS), loc="lower right", fontsize=7, ncol=4)
    bar.set_xlabel(f"time ({unit})")
    fig.tight_layout()
    path = Path(path)
    from spinesense.outputs import atomic_output

    with atomic_output(path, force=force, binary=True) as fh:
        fig.savefig(fh, dpi=90, format=path.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return path
