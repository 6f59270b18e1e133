"""Accuracy of the pipeline on simulated recordings with known truth.

Matching rules (also in docs/pipeline.md):

* slouch episodes: a detected episode [onset, end] and a truth episode match when they
  overlap in time; each truth episode takes the unused overlapping detection whose alert
  is closest to its own. Precision = matched / detected, recall = matched / truth.
* alert latency: detected alert time − (truth onset + delay), over matched episodes.
* false alerts per hour: unmatched detected slouch alerts per hour of data; alerts that
  fall in a reach (or up to ``delay`` after it) or in a recline are also counted apart.
* sitting alerts: matched when within ``SIT_TOL_S`` of a truth alert; breaks when within
  ``BREAK_TOL_S`` of a truth break (one-to-one, nearest first).
* posture: per-second state against the truth posture at the middle of the second;
  ``unknown`` counts as wrong. Walking accuracy: walking vs not walking per second.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.config import Config

SIT_TOL_S = 60.0
BREAK_TOL_S = 30.0


@dataclass
class RunResult:
    scenario: str
    seed: int
    accel_only: bool
    hours: float
    slouch_tp: int = 0
    slouch_det: int = 0
    slouch_truth: int = 0
    latencies: list[float] = field(default_factory=list)
    false_alerts: int = 0
    reach_alerts: int = 0
    recline_alerts: int = 0
    sit_tp: int = 0
    sit_det: int = 0
    sit_truth: int = 0
    brk_tp: int = 0
    brk_det: int = 0
    brk_truth: int = 0
    posture_ok: int = 0
    walk_ok: int = 0
    seconds: int = 0
    unknown_s: int = 0
    calibrated: str = ""


def _episodes(records: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(onset, alert, end) of each detected episode."""
    out, open_ = [], None
    for r in records:
        if r["type"] == "slouch_start":
            open_ = (r["onset"], r["t"])
        elif r["type"] == "slouch_end" and open_ is not None:
            out.append((open_[0], open_[1], r["t"]))
            open_ = None
    if open_ is not None:
        out.append((open_[0], open_[1], float("inf")))
    return out


def _match_times(det: list[float], truth: list[float], tol: float) -> int:
    used: set[int] = set()
    tp = 0
    for tt in truth:
        best = None
        for i, d in enumerate(det):
            if i not in used and abs(d - tt) <= tol and (best is None or
                                                         abs(d - tt) < abs(det[best] - tt)):
                best = i
        if best is not None:
            used.add(best)
            tp += 1
    return tp


def score(records: list[dict[str, Any]], truth: dict[str, Any], cfg: Config,
          accel_only: bool = False) -> RunResult:
    delay = cfg.slouch.delay_s
    res = RunResult(truth["scenario"], truth["seed"], accel_only,
                    truth["duration_s"] / 3600.0)
    det = _episodes(records)
    tru = truth["slouch_episodes"]
    res.slouch_det, res.slouch_truth = len(det), len(tru)
    used: set[int] = set()
    for ep in tru:
        best = None
        for i, (on, al, end) in enumerate(det):
            if i in used or on > ep["end"] or end < ep["onset"]:
                continue
            if best is None or abs(al - ep["alert"]) < abs(det[best][1] - ep["alert"]):
                best = i
        if best is not None:
            used.add(best)
            res.slouch_tp += 1
            res.latencies.append(det[best][1] - (ep["onset"] + delay))
    reaches = [(r["start"], r["end"] + delay) for r in truth.get("reaches", [])]
    reclines = [(r["start"], r["end"]) for r in truth.get("reclines", [])]
    for i, (_on, al, _end) in enumerate(det):
        if i in used:
            continue
        res.false_alerts += 1
        res.reach_alerts += any(a <= al <= b for a, b in reaches)
        res.recline_alerts += any(a <= al <= b for a, b in reclines)
    sit = [r["t"] for r in records if r["type"] == "sitting_alert"]
    res.sit_det, res.sit_truth = len(sit), len(truth["sitting_alerts"])
    res.sit_tp = _match_times(sit, [a["t"] for a in truth["sitting_alerts"]], SIT_TOL_S)
    brk = [r["t"] for r in records if r["type"] == "sitting_break"]
    res.brk_det, res.brk_truth = len(brk), len(truth["breaks"])
    res.brk_tp = _match_times(brk, [b["t"] for b in truth["breaks"]], BREAK_TOL_S)
    states = [r for r in records if r["type"] == "state"]
    if states:
        segs = truth["segments"]
        starts = np.array([s["start"] for s in segs])
        tpost = np.array([s["posture"] for s in segs])
        ts = np.array([r["t"] for r in states]) + 0.5
        truth_p = tpost[np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, None)]
        got = np.array([r["posture"] for r in states])
        res.seconds = len(states)
        res.posture_ok = int((got == truth_p).sum())
        res.walk_ok = int(((got == "walking") == (truth_p == "walking")).sum())
        res.unknown_s = int((got == "unknown").sum())
    cal = next((r for r in records if r["type"] == "calibrated"), None)
    res.calibrated = "" if cal is None else f"{cal['method']}; {cal['forward_method']}"
    return res


def run_one(scenario: str, seed: int, cfg: Config, *, accel_only: bool = False,
            duration_s: float | None = None, self_calibrate: bool = False,
            chunk_size: int | None = None) -> tuple[RunResult, list[dict[str, Any]]]:
    from spinesense.edge.replay import replay
    from spinesense.firmware.simulator import simulate

    sim = simulate(scenario, seed, accel_only=accel_only, duration_s=duration_s,
                   labels={"threshold_deg": cfg.slouch.threshold_deg,
                           "release_deg": cfg.slouch.release_deg,
                           "delay_s": cfg.slouch.delay_s,
                           "sitting_limit_s": cfg.sitting.limit_min * 60.0,
                           "break_s": cfg.sitting.break_s,
                           "repeat_s": cfg.sitting.repeat_min * 60.0})
    cal = sim.truth["calibration"]
    window = None if self_calibrate else (cal["start"], cal["end"])
    if cfg.sensor.mount != "auto":  # the wearer sets mount right (board z: body x = back)
        cfg = copy.deepcopy(cfg)
        cfg.sensor.mount = "back-out" if sim.mounting[0, 2] < 0 else "back-in"
    records = replay(sim.chunk(), cfg, calibrate=window, states=True, chunk_size=chunk_size)
    return score(records, sim.truth, cfg, accel_only), records


@dataclass
class Summary:
    scenario: str
    runs: int
    hours: float
    precision: float
    recall: float
    f1: float
    latency_median: float
    latency_p90: float
    false_per_hour: float
    reach_alerts: int
    recline_alerts: int
    sit_precision: float
    sit_recall: float
    brk_precision: float
    brk_recall: float
    posture_acc: float
    walk_acc: float
    unknown_share: float

    def row(self) -> list[str]:
        def f(x: float) -> str:
            return "-" if x != x else f"{x:.3f}"
        return [self.scenario, str(self.runs), f"{self.hours:.2f}", f(self.precision),
                f(self.recall), f(self.f1), f(self.latency_median), f(self.latency_p90),
                f"{self.false_per_hour:.2f}", str(self.reach_alerts), str(self.recline_alerts),
                f(self.sit_precision), f(self.sit_recall), f(self.brk_precision),
                f(self.brk_recall), f(self.posture_acc), f(self.walk_acc),
                f(self.unknown_share)]


HEADER = ["scenario", "runs", "hours", "ep_prec", "ep_rec", "ep_F1", "lat_med_s", "lat_p90_s",
          "false/h", "reach", "recline", "sit_prec", "sit_rec", "brk_prec", "brk_rec",
          "posture", "walking", "unknown"]


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def summarise(name: str, results: list[RunResult]) -> Summary:
    tp = sum(r.slouch_tp for r in results)
    p = _ratio(tp, sum(r.slouch_det for r in results))
    rc = _ratio(tp, sum(r.slouch_truth for r in results))
    f1 = (2 * p * rc / (p + rc)) if p == p and rc == rc and p + rc > 0 else float("nan")
    if sum(r.slouch_det for r in results) == 0 and sum(r.slouch_truth for r in results) == 0:
        p = rc = f1 = float("nan")
    lat = np.array([x for r in results for x in r.latencies])
    hours = sum(r.hours for r in results)
    secs = sum(r.seconds for r in results)
    return Summary(
        name, len(results), hours, p, rc, f1,
        float(np.median(lat)) if len(lat) else float("nan"),
        float(np.percentile(lat, 90)) if len(lat) else float("nan"),
        sum(r.false_alerts for r in results) / hours if hours else 0.0,
        sum(r.reach_alerts for r in results), sum(r.recline_alerts for r in results),
        _ratio(sum(r.sit_tp for r in results), sum(r.sit_det for r in results)),
        _ratio(sum(r.sit_tp for r in results), sum(r.sit_truth for r in results)),
        _ratio(sum(r.brk_tp for r in results), sum(r.brk_det for r in results)),
        _ratio(sum(r.brk_tp for r in results), sum(r.brk_truth for r in results)),
        _ratio(sum(r.posture_ok for r in results), secs),
        _ratio(sum(r.walk_ok for r in results), secs),
        _ratio(sum(r.unknown_s for r in results), secs))


def format_table(rows: list[Summary]) -> str:
    table = [HEADER] + [s.row() for s in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True))
                     for r in table)
