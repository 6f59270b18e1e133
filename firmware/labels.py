"""Ground-truth labels by the DESIGN A3 definitions, with overridable parameters.

Slouching is labelled per sample on the noiseless flexion: an *onset* is the first
sample above ``threshold_deg``; if flexion stays above the threshold until the first
sample at least ``delay_s`` later, that sample is the *alert*; the episode *ends* at the
first later sample below ``release_deg``. A dip below the threshold before the alert
cancels the onset. Only sitting and standing samples are eligible: walking and lying
never start an episode and end one in progress. Reclining (negative flexion) never
qualifies.

Sedentary time is sitting or lying (stand-to-sit counts as sitting, sit-to-stand as
standing). A *bout* runs from the first sedentary moment until a *break*: a stretch of
standing/walking lasting at least ``break_s``; shorter stand-ups stay inside the bout.
The bout ends when that stretch starts; the break is recognised ``break_s`` later. The
*alert* is at bout start + ``sitting_limit_s`` if the bout lasts that long, reminders
every ``repeat_s`` after it until the bout ends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinesense.firmware.timeline import Segment

EPS = 1e-9


@dataclass(frozen=True)
class LabelParams:
    threshold_deg: float = 15.0
    release_deg: float = 12.0
    delay_s: float = 5.0
    sitting_limit_s: float = 1800.0
    break_s: float = 60.0
    repeat_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.release_deg < self.threshold_deg:
            raise ValueError(f"label release_deg {self.release_deg} must be below "
                             f"threshold_deg {self.threshold_deg}")
        for name in ("delay_s", "break_s", "repeat_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"label {name} must not be negative")
        if self.sitting_limit_s <= 0:
            raise ValueError("label sitting_limit_s must be positive")

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


DEFAULT_LABELS = LabelParams()


def label_params(overrides: dict[str, float] | None = None) -> LabelParams:
    """`DEFAULT_LABELS` with ``overrides``; unknown keys are an error naming the valid ones."""
    unknown = set(overrides or {}) - set(DEFAULT_LABELS.to_dict())
    if unknown:
        raise ValueError(f"unknown label parameter(s) {', '.join(sorted(unknown))}; valid: "
                         f"{', '.join(DEFAULT_LABELS.to_dict())}")
    return dataclasses.replace(DEFAULT_LABELS, **(overrides or {}))


def _r(x: float) -> float:
    return round(float(x), 6)


def label_slouches(t: np.ndarray, flexion: np.ndarray, eligible: np.ndarray,
                   p: LabelParams) -> list[dict[str, Any]]:
    """Slouch episodes ``{onset, alert, end, peak_deg, open}`` (see the module doc)."""
    above = (flexion > p.threshold_deg) & eligible
    edges = np.diff(above.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    release_idx = np.flatnonzero((flexion < p.release_deg) | ~eligible)
    episodes: list[dict[str, Any]] = []
    busy_until = 0
    for s, e in zip(starts, stops, strict=True):
        if s < busy_until:
            continue
        j = int(np.searchsorted(t, t[s] + p.delay_s - EPS, side="left"))
        if j >= e:
            continue  # fell below the threshold (or the data ended) before the delay
        r = int(np.searchsorted(release_idx, j, side="left"))
        k = int(release_idx[r]) if r < len(release_idx) else len(t)
        end_t = t[k] if k < len(t) else t[-1]
        episodes.append({"onset": _r(t[s]), "alert": _r(t[j]), "end": _r(end_t),
                         "peak_deg": round(float(flexion[s:k].max()), 3),
                         "open": k >= len(t)})
        busy_until = k
    return episodes


def _runs(segments: list[Segment]) -> list[tuple[bool, float, float]]:
    """Merge segments into alternating (sedentary?, start, end) runs."""
    runs: list[tuple[bool, float, float]] = []
    for seg in segments:
        sed = seg.posture in ("sitting", "lying")
        if runs and runs[-1][0] == sed:
            runs[-1] = (sed, runs[-1][1], seg.end)
        else:
            runs.append((sed, seg.start, seg.end))
    return runs


def label_sitting(segments: list[Segment], duration: float, p: LabelParams,
                  t0: float = 0.0) -> dict[str, list[dict[str, Any]]]:
    """Sitting bouts, alerts, reminders and breaks (see the module doc)."""
    bouts: list[dict[str, Any]] = []
    breaks: list[dict[str, Any]] = []
    start: float | None = None
    for sed, s, e in _runs(segments):
        if sed:
            start = s if start is None else start
        elif start is not None and e - s >= p.break_s - EPS:
            bouts.append({"start": start, "end": s, "open": False})
            breaks.append({"t": _r(s + p.break_s + t0), "bout_start": _r(start + t0),
                           "bout_end": _r(s + t0)})
            start = None
    if start is not None:
        bouts.append({"start": start, "end": duration, "open": True})
    alerts, reminders = [], []
    for b in bouts:
        first = b["start"] + p.sitting_limit_s
        if first <= b["end"] + EPS:
            alerts.append({"t": _r(first + t0), "bout_start": _r(b["start"] + t0)})
            k = 1
            while p.repeat_s > 0 and first + k * p.repeat_s < b["end"] - EPS:
                reminders.append({"t": _r(first + k * p.repeat_s + t0),
                                  "bout_start": _r(b["start"] + t0), "n": k})
                k += 1
    return {"sitting_bouts": [{"start": _r(b["start"] + t0), "end": _r(b["end"] + t0),
                               "open": b["open"]} for b in bouts],
            "sitting_alerts": alerts, "sitting_reminders": reminders, "breaks": breaks}


def label_truth(*, t: np.ndarray, flexion: np.ndarray, posture: np.ndarray,
                segments: list[Segment], calibration: dict[str, Any], params: LabelParams,
                duration: float, t0: float,
                blocked: np.ndarray | None = None) -> dict[str, Any]:
    """All truth keys of a simulation (interface 2). ``posture`` indexes
    ("sitting", "standing", "walking", "lying") per sample; ``blocked`` marks samples
    (recording gaps) where no slouch can start or continue."""
    out: dict[str, Any] = {}
    cal = dict(calibration)
    for key in ("start", "end"):
        if key in cal:
            cal[key] = _r(cal[key] + t0)
    if "lean" in cal:
        cal["lean"] = {**cal["lean"], "start": _r(cal["lean"]["start"] + t0),
                       "end": _r(cal["lean"]["end"] + t0)}
    out["calibration"] = cal
    eligible = posture <= 1
    if blocked is not None:
        eligible &= ~blocked
    out["slouch_episodes"] = label_slouches(t, flexion, eligible, params)
    out |= label_sitting(segments, duration, params, t0)
    out["segments"] = [{**s.to_dict(), "start": _r(s.start + t0), "end": _r(s.end + t0)}
                       for s in segments]
    walking: list[dict[str, Any]] = []
    for s in segments:
        if s.posture == "walking":
            if walking and abs(walking[-1]["end"] - (s.start + t0)) < EPS:
                walking[-1]["end"] = _r(s.end + t0)
            else:
                walking.append({"start": _r(s.start + t0), "end": _r(s.end + t0),
                                "step_hz": s.info.get("step_hz")})

    def extreme(seg: Segment, fn: Any) -> float:
        a, b = np.searchsorted(t, [seg.start + t0, seg.end + t0])
        return round(float(fn(flexion[a:max(b, a + 1)])), 3) if a < len(t) else 0.0

    out["walking"] = walking
    out["reaches"] = [{"start": _r(s.start + t0), "end": _r(s.end + t0),
                       "peak_deg": extreme(s, np.max)}
                      for s in segments if s.activity == "reach"]
    out["reclines"] = [{"start": _r(s.start + t0), "end": _r(s.end + t0),
                        "min_deg": extreme(s, np.min)}
                       for s in segments if s.activity == "recline"]
    return out
