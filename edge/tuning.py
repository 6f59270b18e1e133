"""Features computed once, detectors re-run many times: the API for threshold tuning.

`compute_features` replays a recording through the real `Pipeline` (same filters, same
calibration logic) and keeps what the detectors consume: per-tick signed flexion and the
reason a tick is blocked (gap, walking, lying), per-second posture. `slouch_events` and
`sedentary_events` then run the pipeline's own state machines (`detect_slouch`,
`detect_sedentary`, not copies) over those arrays with any thresholds, so a 20x10 sweep
costs milliseconds per point instead of a full replay.

Caveat: posture (and with it the blocked mask) is computed once with the config's
``sitting.break_s`` (it decides how long a gap makes the posture unknown again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.config import Config
from spinesense.edge.activity import POSTURES, STANDING, WALKING
from spinesense.edge.calibration import Calibration
from spinesense.edge.filters import TICK_HZ
from spinesense.edge.recordings import Units
from spinesense.edge.sedentary import SedentaryParams, detect_sedentary
from spinesense.edge.slouch import SlouchParams, close_open, detect_slouch
from spinesense.samples import SampleChunk


@dataclass
class Features:
    """Per-tick (25 Hz grid) and per-second inputs of the detectors."""

    k: np.ndarray         # tick index; t = k / 25
    flexion: np.ndarray   # signed flexion, degrees (NaN on gap markers)
    lateral: np.ndarray   # lateral lean, degrees
    block: np.ndarray     # int8: 0 eligible, 1 gap, 2 walking, 3 lying (see BLOCK_REASONS)
    sec: np.ndarray       # seconds with data
    posture: np.ndarray   # int8 codes into POSTURES, per second
    walking: np.ndarray   # bool per second
    steps: np.ndarray     # steps per second
    calibration: Calibration
    records: list[dict[str, Any]]  # what the pipeline itself emitted with the config
    n_samples: int = 0    # rows of the recording (to check labels against it)
    t_first: float = 0.0  # first and last sample time, in the recording's time base
    t_last: float = 0.0
    idle_since: np.ndarray | None = None  # per second: when inactivity began (see classify)

    @property
    def t(self) -> np.ndarray:
        return self.k / TICK_HZ

    @property
    def gap(self) -> np.ndarray:
        """True on gap markers (a hole in the data follows)."""
        return self.block == 1

    @property
    def posture_names(self) -> np.ndarray:
        return np.asarray(POSTURES)[self.posture]


def compute_features(source: str | Path | SampleChunk, cfg: Config | None = None, *,
                     calibrate: tuple[float, float] | None = None,
                     calibration: Calibration | None = None,
                     units: Units | None = None) -> Features:
    """Replay once and keep the detectors' inputs (a recording: CSV, CSV.gz or .ssrec)."""
    from spinesense.edge.pipeline import Pipeline
    from spinesense.edge.recordings import read_samples

    cfg = cfg or Config()
    chunk = source if isinstance(source, SampleChunk) else read_samples(source, units)
    cap: list[dict[str, np.ndarray]] = []
    pipe = Pipeline(cfg, calibration, calibrate_window=calibrate, capture=cap)
    records = pipe.process(chunk) + pipe.flush()
    if not cap or pipe.calibration is None:
        raise ValueError("no data reached the detectors (recording too short?)")

    def cat(key: str) -> np.ndarray:
        return np.concatenate([c[key] for c in cap])

    return Features(cat("k"), cat("flex"), cat("lateral"), cat("block"), cat("sec"),
                    cat("posture"), cat("walking"), cat("steps"), pipe.calibration, records,
                    n_samples=len(chunk.t), t_first=float(chunk.t[0]),
                    t_last=float(chunk.t[-1]), idle_since=cat("idle_since"))


def slouch_events(f: Features, threshold_deg: float = 15.0, release_deg: float = 12.0,
                  delay_s: float = 5.0) -> list[dict[str, Any]]:
    """slouch_start/slouch_end records for these thresholds (as the pipeline would)."""
    params = SlouchParams(threshold_deg, release_deg, delay_s)
    res, st = detect_slouch(f.k, f.flexion, f.block, params)
    valid = f.block != 1
    end_k = int(f.k[valid][-1]) + 1 if valid.any() else 0
    return res.events + close_open(st, end_k)


def slouch_episodes(f: Features, **thresholds: float) -> list[dict[str, Any]]:
    """Episodes {onset, alert, end, peak_deg, mean_deg, reason} for these thresholds."""
    return [{"onset": e["onset"], "alert": e["alert_t"], "end": e["t"],
             "peak_deg": e["peak_deg"], "mean_deg": e["mean_deg"], "reason": e["reason"]}
            for e in slouch_events(f, **thresholds) if e["type"] == "slouch_end"]


def sedentary_events(f: Features, limit_s: float = 1800.0, break_s: float = 60.0,
                     repeat_s: float = 600.0) -> list[dict[str, Any]]:
    """sitting_alert / sitting_reminder / sitting_break records for these values."""
    active = (f.posture == STANDING) | (f.posture == WALKING)
    events, _bouts, _st = detect_sedentary(f.sec, active,
                                           SedentaryParams(limit_s, break_s, repeat_s),
                                           None, f.idle_since)
    return events
