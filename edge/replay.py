"""Replaying recordings through the live pipeline (DESIGN A2), and the human summary.

The recording is streamed chunk by chunk from `spinesense.edge.recordings` (CSV, CSV.gz
or .ssrec), so a replay holds one block of samples at a time, not the whole file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spinesense.config import Config
from spinesense.edge.calibration import Calibration
from spinesense.edge.csvread import RecordingError, iter_csv, read_csv
from spinesense.edge.recordings import RecordingReader, Units, open_recording, read_samples
from spinesense.samples import SampleChunk

__all__ = ["RecordingError", "Units", "iter_csv", "open_recording", "read_csv",
           "read_samples", "replay", "summary"]

log = logging.getLogger(__name__)

# records that say something may be wrong with the mounting or the calibration
WARNING_TYPES = ("mount_warning", "clip_moved", "calibration_stale")


def replay(source: str | Path | SampleChunk | Iterable[SampleChunk], cfg: Config | None = None,
           *, calibrate: tuple[float, float] | None = None,
           calibration: Calibration | None = None, chunk_size: int | None = None,
           states: bool = False, units: Units | None = None) -> list[dict[str, Any]]:
    """Run a recording (a path, a `RecordingReader`, or samples) through the pipeline;
    return all records in order. ``units``: those of a CSV path (default: checked).

    ``chunk_size`` feeds the samples in pieces of that many (as the live loop does);
    the result is the same as feeding everything at once. Dropped samples are logged
    as one warning at the end (and are in the records as ``samples_dropped``).
    """
    from spinesense.config import Config as _Config
    from spinesense.edge.pipeline import Pipeline

    cfg = cfg or _Config()
    if isinstance(source, SampleChunk):
        chunks: Iterable[SampleChunk] = [source]
    elif isinstance(source, (str, Path)):
        chunks = open_recording(source, units)
    else:
        chunks = source
    pipe = Pipeline(cfg, calibration, states=states, calibrate_window=calibrate)
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        n = len(chunk)
        step = n if not chunk_size else int(chunk_size)
        for i in range(0, n, max(step, 1)):
            out += pipe.process(chunk[i:i + step])
    out += pipe.flush()
    dropped = drop_summary(out)
    if dropped:
        name = chunks.path if isinstance(chunks, RecordingReader) else "replay"
        log.warning("%s: %s", name, dropped)
    return out


def drop_summary(records: list[dict[str, Any]]) -> str:
    """'dropped N samples: …' from the samples_dropped records, or '' when none were."""
    drops = [r for r in records if r["type"] == "samples_dropped"]
    if not drops:
        return ""
    by_reason: dict[str, int] = {}
    for r in drops:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + int(r["count"])
    total = sum(by_reason.values())
    reasons = ", ".join(f"{n} {reason}" for reason, n in by_reason.items())
    return (f"dropped {total} absurd sample{'s' if total != 1 else ''}: {reasons}; the "
            f"first at t={drops[0]['t']:g} s (the samples around them were kept)")


def summary(records: list[dict[str, Any]], name: str = "", *,
            calibration: Calibration | None = None, warnings: Iterable[str] = ()) -> str:
    """The human summary of a replay: calibration (always with its confidence), input
    problems, mount and slip warnings, slouching, bouts and breaks."""
    lines = [f"{name}:" if name else "replay:"]
    cals = [r for r in records if r["type"] == "calibrated"]
    if calibration is not None:
        lines.append(f"  calibration: stored, {calibration.summary()}, confidence "
                     f"{calibration.info.get('confidence', 'not recorded')}")
        revisions = cals
    elif cals:
        cal = cals[0]
        lines.append(f"  calibrated at t={cal['t']:g} s: upright from {cal['method']}, "
                     f"forward axis {cal['forward_method']}, confidence "
                     f"{cal.get('confidence', 'not reported')}")
        revisions = cals[1:]
    else:
        lines.append("  calibration: stored")
        revisions = []
    for r in revisions:
        lines.append(f"  from t={r['t']:g} s: forward axis {r['forward_method']}, "
                     f"confidence {r.get('confidence', '?')}")
    for text in warnings:
        lines.append(f"  warning: {text}")
    dropped = drop_summary(records)
    if dropped:
        lines.append(f"  warning: {dropped}")
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
