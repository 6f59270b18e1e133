"""Scoring and sweeping for `spinesense tune`: episode matching, P/R/F1, the sweep over
settings, the recommendation rule, and the detector inputs it runs on.

The expensive part of the pipeline (resampling, filtering, orientation, posture) does not
depend on the slouch threshold, the delay, the sitting limit or the break length. So each
recording goes through the real pipeline once, keeping the detectors' inputs (per-tick
flexion, per-second posture), and only the detectors (pure functions in
:mod:`spinesense.edge.slouch` and :mod:`spinesense.edge.sedentary`) run per setting.

Scoring is per episode: detected slouch episodes (onset → release) are matched one to
one with overlapping labelled ones; matched detections are true positives. Settings
within one episode's F1 of the best tie; ties go to the current config, else to the
closest alert delays (when the labels have alert times), then fewer alerts per hour.
Sitting alerts and breaks are matched by time, within a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.analysis.dataset import Labels
from spinesense.analysis.tune_checks import TuneError
from spinesense.config import Config
from spinesense.edge.recordings import Units

TIMING_CAP_S = 5.0  # alert-time errors are capped at this in the tie-break
TIMING_TIE_S = 0.5  # mean alert-time errors this close count as equal


# -------------------------------------------------------------------------------- scoring


def match_episodes(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of overlapping episodes: (pred index, true index) pairs.

    Both sets are sorted and disjoint in time (as episodes are), so a sweep in time order
    finds a maximum matching. One-to-one matters: a low threshold that merges three
    labelled episodes into one long detection has found one of them, not three."""
    pi: list[int] = []
    tj: list[int] = []
    i = j = 0
    while i < len(pred) and j < len(true):
        if pred[i, 1] <= true[j, 0]:
            i += 1
        elif true[j, 1] <= pred[i, 0]:
            j += 1
        else:
            pi.append(i)
            tj.append(j)
            i += 1
            j += 1
    return np.array(pi, int), np.array(tj, int)


def prf(tp_pred: int, n_pred: int, found: int, n_true: int) -> tuple[float, float, float]:
    precision = tp_pred / n_pred if n_pred else (1.0 if n_true == 0 else 0.0)
    recall = found / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def match_times(pred: np.ndarray, true: np.ndarray, tol: float) -> tuple[int, int]:
    """(predictions within tol of a true time, true times within tol of a prediction)."""
    if len(pred) == 0 or len(true) == 0:
        return 0, 0
    d = np.abs(pred[:, None] - true[None, :]) <= tol
    return int(d.any(axis=1).sum()), int(d.any(axis=0).sum())


@dataclass
class Episodes:
    """Detected slouch episodes: onset, alert time and end (NaN alert: none)."""

    onset: np.ndarray
    alert: np.ndarray
    end: np.ndarray

    def intervals(self) -> np.ndarray:
        return np.column_stack([self.onset, self.end]) if len(self.onset) else np.zeros((0, 2))


def score_slouch(ep: Episodes, labels: Labels) -> dict[str, float]:
    """Counts for one recording (summed over recordings before computing P/R/F1), and,
    when the labels have alert times (the simulator's truth), how far off the matched
    episodes' alert delays are (each error capped, so that one odd episode cannot
    dominate): the tie-break between settings of equal F1."""
    pred = ep.intervals()
    pi, tj = match_episodes(pred, labels.slouch)
    timing: list[float] = []
    if labels.slouch_alert is not None and len(pi):
        ok = np.isfinite(labels.slouch_alert[tj])
        pi, tj_ok = pi[ok], tj[ok]
        # how long after the crossing the alert came, against the labelled alert (the
        # onset itself is not compared: the filters see every crossing a little late)
        delay_err = np.abs((ep.alert[pi] - ep.onset[pi])
                           - (labels.slouch_alert[tj_ok] - labels.slouch[tj_ok, 0]))
        timing = np.minimum(delay_err, TIMING_CAP_S).tolist()
    return {"tp": len(tj), "n_pred": len(pred), "found": len(tj),
            "n_true": len(labels.slouch), "timing_sum": float(np.sum(timing)),
            "timing_n": len(timing)}


# --------------------------------------------------------------------------------- sweep


@dataclass
class Recording:
    """One recording's precomputed features and its labels."""

    name: str
    features: Any
    labels: Labels
    hours: float


@dataclass
class SweepResult:
    kind: str  # "slouch" or "sitting"
    axes: dict[str, np.ndarray]  # axis name → values (2 axes)
    table: list[dict[str, float]]  # one row per setting
    hours: float
    resolution_note: str = ""

    def grid(self, key: str) -> np.ndarray:
        (a, av), (b, bv) = self.axes.items()
        g = np.full((len(av), len(bv)), np.nan)
        for row in self.table:
            g[int(np.searchsorted(av, row[a])), int(np.searchsorted(bv, row[b]))] = row[key]
        return g


def parse_range(text: str, name: str) -> np.ndarray:
    """``LO:HI:N`` (N evenly spaced values), ``A,B,C`` (a list) or one value."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            count = int(n)
            if count < 1 or float(hi) < float(lo):
                raise ValueError
            return np.round(np.linspace(float(lo), float(hi), count), 6)
        return np.array(sorted(float(x) for x in text.split(",")), float)
    except ValueError:
        raise TuneError(f"--{name} {text!r}: use LO:HI:N (e.g. 10:30:21) or a list "
                        "A,B,C") from None


def parse_budget(text: str) -> float:
    t = text.strip().lower().removesuffix("/h")
    try:
        v = float(t)
    except ValueError:
        raise TuneError(f"--alert-budget {text!r}: use alerts per hour, e.g. 4/h") from None
    if v <= 0:
        raise TuneError(f"--alert-budget {text!r}: must be more than 0 alerts per hour")
    return v


def sweep(recordings: Sequence[Recording], settings: list[dict[str, float]],
          run: Callable[[Any, dict[str, float]], Any],
          score: Callable[[Any, Labels], dict[str, float]], *, progress: bool = True,
          desc: str = "sweep") -> list[dict[str, float]]:
    """Run ``run(features, setting)`` and ``score`` for each setting and recording and
    sum the counts; a tqdm bar shows on long sweeps (more than a few seconds)."""
    from tqdm import tqdm

    total = len(settings) * len(recordings)
    bar = tqdm(total=total, desc=desc, unit="run", disable=not progress or total < 20,
               mininterval=0.5, leave=False)
    rows = []
    try:
        for setting in settings:
            counts: dict[str, float] = {}
            for rec in recordings:
                for k, v in score(run(rec.features, setting), rec.labels).items():
                    counts[k] = counts.get(k, 0) + v
                bar.update()
            rows.append({**setting, **counts})
    finally:
        bar.close()
    return rows


def finish_slouch(rows: list[dict[str, float]], hours: float) -> None:
    """Add precision, recall, F1, alerts/hour and mean alert-time error to each row."""
    for r in rows:
        r["precision"], r["recall"], r["f1"] = prf(int(r["tp"]), int(r["n_pred"]),
                                                   int(r["found"]), int(r["n_true"]))
        r["alerts_per_h"] = r["n_pred"] / hours if hours else 0.0
        r["timing_s"] = r["timing_sum"] / r["timing_n"] if r["timing_n"] else math.nan


def recommend(rows: list[dict[str, float]], budget: float | None,
              rate_key: str = "alerts_per_h", prefer: dict[str, float] | None = None,
              current: dict[str, float] | None = None, timing_tie: float = TIMING_TIE_S
              ) -> tuple[dict[str, float], str]:
    """Best F1 within the alert budget, robust to one borderline episode; ties go to the
    current config.

    Settings whose F1 is within one labelled episode's worth of the best (1 / number of
    labelled episodes) count as equally good: such a difference is one borderline
    episode, noise. If ``current`` (the config's own row) is among them (and, when the
    labels have alert times, its alert delays are within ``timing_tie`` of the best's),
    it is kept.
    Otherwise: the closest alert delays, then the higher F1, then fewer alerts per hour,
    then the least change from ``prefer`` (the current config's values)."""
    allowed = [r for r in rows if budget is None or r[rate_key] <= budget + 1e-9]
    note = ""
    if not allowed:
        best = min(rows, key=lambda r: r[rate_key])
        return best, (f"no setting stays within {budget:g} alerts/h; the quietest gives "
                      f"{best[rate_key]:.2f}/h")
    top = max(r["f1"] for r in allowed)
    slack = 1.0 / max(1.0, max(r.get("n_true", 0.0) for r in allowed))
    near = [r for r in allowed if r["f1"] >= top - slack + 1e-9]

    def key(r: dict[str, float]) -> tuple[float, float, float, float]:
        timing = r.get("timing_s", math.nan)
        change = sum(abs(r[k] - v) / max(abs(v), 1e-9) for k, v in (prefer or {}).items()
                     if k in r)
        return (round(timing, 6) if math.isfinite(timing) else 1e9, -round(r["f1"], 6),
                round(r[rate_key], 9), change)

    best = min(near, key=key)
    if budget is not None:
        note = f"best F1 among settings with at most {budget:g} alerts/h"
    if current is not None and _ties(current, best, top - slack, budget, rate_key,
                                     timing_tie):
        return current, "no setting scores clearly better than your current config: keep it"
    return best, note


def _ties(current: dict[str, float], best: dict[str, float], f1_floor: float,
          budget: float | None, rate_key: str, timing_tie: float) -> bool:
    """The current config is as good as the best: within budget, F1 within one episode,
    and (when known) alert timing within ``timing_tie`` of the best's."""
    if budget is not None and current[rate_key] > budget + 1e-9:
        return False
    if current["f1"] < f1_floor + 1e-9 or current["f1"] <= 0:
        return False
    a, b = current.get("timing_s", math.nan), best.get("timing_s", math.nan)
    return not math.isfinite(b) or (math.isfinite(a) and a <= b + timing_tie + 1e-9)


# --------------------------------------------------------------- features from the pipeline


@dataclass
class PipelineFeatures:
    """One recording's detector inputs (``spinesense.edge.tuning.Features``, computed once
    by the real pipeline) and the sweep's view of them."""

    features: Any
    hours: float
    repeat_s: float

    def slouch(self, setting: dict[str, float]) -> Episodes:
        from spinesense.edge.tuning import slouch_episodes

        eps = slouch_episodes(self.features, threshold_deg=setting["threshold_deg"],
                              release_deg=setting["release_deg"], delay_s=setting["delay_s"])
        return Episodes(np.array([e["onset"] for e in eps], float),
                        np.array([e["alert"] for e in eps], float),
                        np.array([e["end"] for e in eps], float))

    def sitting(self, setting: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        from spinesense.edge.tuning import sedentary_events

        events = sedentary_events(self.features, limit_s=setting["limit_min"] * 60.0,
                                  break_s=setting["break_s"], repeat_s=self.repeat_s)
        return (np.array([e["t"] for e in events if e["type"] == "sitting_alert"], float),
                np.array([e["t"] for e in events if e["type"] == "sitting_break"], float))


def compute_features(path: str | Path, cfg: Config,
                     calibrate: tuple[float, float] | None = None,
                     units: Units | None = None) -> PipelineFeatures:
    """Replay a recording once through the real pipeline, keeping the detectors' inputs."""
    from spinesense.edge.replay import RecordingError
    from spinesense.edge.tuning import compute_features as edge_features
    from spinesense.samples import WindowError

    try:
        feats = edge_features(path, cfg, calibrate=calibrate, units=units)
    except RecordingError as exc:
        raise TuneError(str(exc)) from None
    except WindowError as exc:  # says already which window to pick
        raise TuneError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise TuneError(f"{path}: {exc}; pass --calibrate START:END (a still, upright "
                        "window) or a longer recording") from None
    return PipelineFeatures(feats, float(len(np.unique(feats.sec)) / 3600),
                            cfg.sitting.repeat_min * 60.0)


# ----------------------------------------------------------------------- slouch settings


def slouch_settings(thresholds: np.ndarray, delays: np.ndarray, gap_deg: float
                    ) -> list[dict[str, float]]:
    """Threshold x delay; the release keeps the config's hysteresis gap below threshold."""
    return [{"threshold_deg": float(th), "delay_s": float(d),
             "release_deg": float(max(0.0, th - gap_deg))}
            for th in thresholds for d in delays]


def sitting_settings(limits_min: np.ndarray, breaks_s: np.ndarray) -> list[dict[str, float]]:
    return [{"limit_min": float(lim), "break_s": float(b)} for lim in limits_min
            for b in breaks_s]


def score_sitting(alerts_breaks: tuple[np.ndarray, np.ndarray], labels: Labels,
                  tol_s: float = 90.0) -> dict[str, float]:
    """Sitting alerts and breaks matched by time (within ``tol_s``)."""
    alerts, breaks = alerts_breaks
    a_hit, a_found = match_times(alerts, labels.sitting_alerts, tol_s)
    b_hit, b_found = match_times(breaks, labels.breaks, tol_s)
    return {"tp": a_hit, "n_pred": len(alerts), "found": a_found,
            "n_true": len(labels.sitting_alerts), "b_tp": b_hit, "b_pred": len(breaks),
            "b_found": b_found, "b_true": len(labels.breaks)}


def finish_sitting(rows: list[dict[str, float]], hours: float) -> None:
    for r in rows:
        r["precision"], r["recall"], r["f1"] = prf(int(r["tp"]), int(r["n_pred"]),
                                                   int(r["found"]), int(r["n_true"]))
        r["break_precision"], r["break_recall"], r["break_f1"] = prf(
            int(r["b_tp"]), int(r["b_pred"]), int(r["b_found"]), int(r["b_true"]))
        r["alerts_per_h"] = r["n_pred"] / hours if hours else 0.0
        r["timing_s"] = -r["break_f1"]  # tie-break on break F1 (higher is better)


# ------------------------------------------------------------------------------- outputs


@dataclass
class MetricFeatures:
    """Per-interval flexion from stored metrics: the only signal without a recording."""

    t_end: np.ndarray
    interval_s: np.ndarray
    flexion: np.ndarray  # flexion_mean per interval
    hours: float


def metric_episodes(f: MetricFeatures, setting: dict[str, float]) -> Episodes:
    """Runs of consecutive intervals whose mean flexion is past the threshold, lasting at
    least the delay (and at least one interval): the metrics interval is the resolution."""
    with np.errstate(invalid="ignore"):
        above = f.flexion > setting["threshold_deg"]
    start = f.t_end - f.interval_s
    # a new run starts where the previous interval is not above or not adjacent in time
    adjacent = np.r_[False, np.abs(start[1:] - f.t_end[:-1]) < 0.5 * f.interval_s[1:]]
    first = above & ~(np.r_[False, above[:-1]] & adjacent)
    last = above & ~np.r_[(above[1:] & adjacent[1:]), False]
    onset, end = start[first], f.t_end[last]
    keep = end - onset >= max(setting["delay_s"], 1e-9)
    return Episodes(onset[keep], onset[keep] + setting["delay_s"], end[keep])


def influx_features(cfg: Config, device: str, start: Any, end: Any) -> MetricFeatures:
    from spinesense.analysis.dataset import from_influx

    ds = from_influx(cfg, device, start, end)
    return MetricFeatures(ds.metrics["t"], ds.column("interval_s"),
                          ds.metrics.get("flexion_mean", np.full(len(ds.metrics["t"]), np.nan)),
                          float(ds.column("interval_s").sum() / 3600))
