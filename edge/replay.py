"""Replaying recordings through the live pipeline (DESIGN A2), and the human summary.

The recording is streamed block by block from `spinesense.edge.csvread`, so a replay
holds one block of samples at a time, not the whole file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spinesense.config import Config
from spinesense.edge.calibration import Calibration
from spinesense.edge.csvread import RecordingError, iter_csv, read_csv
from spinesense.samples import SampleChunk

__all__ = ["RecordingError", "iter_csv", "read_csv", "replay", "summary"]


def replay(source: str | Path | SampleChunk, cfg: Config | None = None, *,
           calibrate: tuple[float, float] | None = None,
           calibration: Calibration | None = None, chunk_size: int | None = None,
           states: bool = False) -> list[dict[str, Any]]:
    """Run a recording through the pipeline; return all records in order.

    ``chunk_size`` feeds the samples in pieces of that many (as the live loop does);
    the result is the same as feeding everything at once.
    """
    from spinesense.config import Config as _Config
    from spinesense.edge.pipeline import Pipeline

    cfg = cfg or _Config()
    chunks = [source] if isinstance(source, SampleChunk) else iter_csv(source)
    pipe = Pipeline(cfg, calibration, states=states, calibrate_window=calibrate)
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        n = len(chunk)
        step = n if not chunk_size else int(chunk_size)
        for i in range(0, n, max(step, 1)):
            out += pipe.process(chunk[i:i + step])
    out += pipe.flush()
    return out


def summary(records: list[dict[str, Any]], name: str = "") -> str:
    """The human summary of a replay: calibration, slouching, bouts and breaks."""
    lines = [f"{name}:" if name else "replay:"]
    cal = next((r for r in records if r["type"] == "calibrated"), None)
    if cal is not None:
        conf = f", confidence {cal['confidence']}" if "confidence" in cal else ""
        lines.append(f"  calibrated at t={cal['t']:g} s: upright from {cal['method']}, "
                     f"forward axis {cal['forward_method']}{conf}")
    else:
        lines.append("  calibration: stored")
    for r in [r for r in records if r["type"] == "calibrated"][1:]:
        lines.append(f"  from t={r['t']:g} s: forward axis {r['forward_method']}, "
                     f"confidence {r.get('confidence', '?')}")
    for r in records:
        if r["type"] == "mount_warning":
            lines.append(f"  MOUNT WARNING at t={r['t']:g} s: {r['message']} (agreement "
                         f"{r['agreement']:+.2f} over {r['n_evidence']} pieces of evidence)")
        elif r["type"] == "clip_moved":
            lines.append(f"  clip moved at t={r['t']:g} s by {r['shift_deg']}°: re-anchored "
                         f"on {r['reanchored']}")
    ends = [r for r in records if r["type"] == "slouch_end"]
    slouched = sum(r["t"] - r["alert_t"] for r in ends)
    lines.append(f"  slouch episodes: {len(ends)} ({slouched / 60:.1f} min slouched after "
                 "the alerts)")
    for r in ends[:20]:
        lines.append(f"    onset {r['onset']:9.2f} s  alert {r['alert_t']:9.2f} s  "
                     f"end {r['t']:9.2f} s  peak {r['peak_deg']:5.1f}°  "
                     f"mean {r['mean_deg']:5.1f}°")
    if len(ends) > 20:
        lines.append(f"    ... {len(ends) - 20} more (use --jsonl)")
    alerts = [r for r in records if r["type"] == "sitting_alert"]
    reminders = [r for r in records if r["type"] == "sitting_reminder"]
    breaks = [r for r in records if r["type"] == "sitting_break"]
    lines.append(f"  sitting alerts: {len(alerts)}, reminders: {len(reminders)}")
    lines.append(f"  sitting bouts ended by a break: {len(breaks)}")
    for r in breaks[:20]:
        lines.append(f"    bout {r['bout_start']:9.1f} s to {r['bout_end']:9.1f} s "
                     f"({r['bout_s'] / 60:.1f} min), break recognised at {r['t']:.1f} s")
    metrics = [r for r in records if r["type"] == "metric"]
    if metrics:
        total = {p: sum(m[f"{p}_s"] for m in metrics)
                 for p in ("sitting", "standing", "walking", "lying", "unknown")}
        lines.append("  time: " + ", ".join(f"{p} {s / 60:.1f} min" for p, s in total.items()))
        lines.append(f"  steps: {sum(m['steps'] for m in metrics)}")
    stale = [r for r in records if r["type"] == "calibration_stale"]
    if stale:
        lines.append(f"  calibration looks stale from t={stale[0]['t']:g} s (walking "
                     f"{stale[0]['angle_deg']}° from upright; re-anchored on walking): "
                     "recalibrate")
    gaps = [r for r in records if r["type"] == "gap"]
    if gaps:
        lines.append(f"  gaps: {len(gaps)} ({sum(g['duration_s'] for g in gaps):.1f} s)")
    return "\n".join(lines)
