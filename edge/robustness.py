"""Robustness evaluation: the pipeline over hundreds of independently simulated days.

Each seed draws a day from `firmware.worldsim` (day type, length 20–90 min, facing,
mounting tilt and turn, rate, accelerometer-only, logger timestamps, clip slip), replays
it through `edge.replay.replay` (the code path of ``spinesense replay``), with the truth's
upright window as ``--calibrate`` or self-calibrating, and scores it against the truth.
The report is the distribution over runs (worst, 5th percentile, median, share of runs
meeting each target), never a mean of a few, and names the worst seeds so that each
failure can be reproduced with ``spinesense simulate --model independent``.

Per-run metrics (NaN where the day gives no basis, e.g. no slouch in a walking day):

* ``slouch_f1``, ``slouch_recall``: episodes matched as in `edge.evaluate` (overlap).
* ``forward_corr``: correlation of the detector's per-second ``flexion_deg`` with the true
  flexion over sitting and standing seconds; the forward sign is right when it is > 0.
* ``false_per_sit_h``: unmatched slouch alerts per hour of true sedentary time.
* ``sit_recall``, ``break_recall``: sitting alerts and breaks (tolerances of `evaluate`).
* ``walk_acc``: per-second walking vs not walking; ``sitstand_acc``: sitting vs
  standing over the seconds where the truth is one of them and the detector decided one.
* ``slip_f1``, ``slip_false_per_h``: the same after a clip slip (from its end on).
* ``slouch_as_recline``: the detector's flexion during true slouches has a negative
  median (slouches read as reclines).
* for reference, not targets: ``naive_walk_acc`` (the rule "std of |a| over 2 s >
  0.05 g" on the same samples: how detectable the simulated walking is) and
  ``flexion_gain`` (the slope of the detector's flexion against the truth).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spinesense.config import Config
from spinesense.edge.evaluate import score

# name, "min" (at least) or "max" (at most), threshold, required share of runs (or
# "median"), description
TARGETS: list[tuple[str, str, float, Any, str]] = [
    ("slouch_f1", "min", 0.95, 0.99, "slouch F1"),
    ("slouch_recall", "min", 0.95, 0.99, "slouch recall"),
    ("forward_corr", "min", 0.0, 1.0, "flexion vs truth correlation (forward sign)"),
    ("false_per_sit_h", "max", 0.5, "median", "false slouch alerts per sitting hour"),
    ("sit_recall", "min", 0.95, 0.95, "sitting-alert recall"),
    ("break_recall", "min", 0.95, 0.95, "break recall"),
    ("walk_acc", "min", 0.97, 0.95, "per-second walking accuracy"),
    ("sitstand_acc", "min", 0.90, 0.95, "sit vs stand accuracy when decided"),
    ("slip_f1", "min", 0.90, 0.95, "slouch F1 after a clip slip"),
    ("slip_false_per_h", "max", 1.0, 0.95, "false alerts per hour after a slip"),
    ("slouch_as_recline", "max", 0.0, 1.0, "slouches read as reclines (1 = yes)"),
]
# reported beside the targets, for reference: the naive walking rule on the same days
REFERENCE = [("naive_walk_acc", "min", 0.97, 0.95, "naive walking rule: std |a| over 2 s "
              "> 0.05 g"),
             ("flexion_gain", "min", 0.85, 0.95, "slope of the detector's flexion against "
              "the truth (1 = right; a skewed forward axis gives cos(skew))")]
CONDITIONS = ("day", "facing", "accel_only", "stamps", "slip", "rate_hz", "minutes")


@dataclass
class RobustRun:
    seed: int
    day: str
    facing: str
    mount: str
    calibration: str
    rate_hz: float
    accel_only: bool
    stamps: str
    slip: bool
    minutes: float
    calibrated: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def reproduce(self) -> str:
        return f"spinesense simulate --model independent --scenario {self.day} " \
               f"--seed {self.seed} --out day.csv"


def labels_of(cfg: Config) -> dict[str, float]:
    """The truth definition from a config's [slouch] and [sitting] sections."""
    return {"threshold_deg": cfg.slouch.threshold_deg, "release_deg": cfg.slouch.release_deg,
            "delay_s": cfg.slouch.delay_s, "sitting_limit_s": cfg.sitting.limit_min * 60.0,
            "break_s": cfg.sitting.break_s, "repeat_s": cfg.sitting.repeat_min * 60.0}


def with_mount(cfg: Config, mount: str) -> tuple[Config, bool]:
    """``cfg`` with ``[sensor] mount`` set, and whether the detector has that key at all
    (it is new: an older detector is evaluated without it)."""
    names = {f.name for f in dataclasses.fields(cfg.sensor)}
    if "mount" not in names:
        return cfg, False
    return dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, mount=mount)), True


def day_for_seed(seed: int) -> str:
    from spinesense.firmware.worldsim import DAY_TYPES

    names = sorted(DAY_TYPES)
    return names[int(np.random.default_rng([int(seed), 0xDA7]).integers(len(names)))]


def _f1(res: Any) -> tuple[float, float]:
    if res.slouch_truth == 0 and res.slouch_det == 0:
        return math.nan, math.nan
    p = res.slouch_tp / res.slouch_det if res.slouch_det else 0.0
    r = res.slouch_tp / res.slouch_truth if res.slouch_truth else math.nan
    if res.slouch_truth == 0:
        return 0.0, math.nan  # alerts on a day without slouches
    return (2 * p * r / (p + r) if p + r > 0 else 0.0), r


def _truth_posture(truth: dict[str, Any], ts: np.ndarray) -> np.ndarray:
    segs = truth["segments"]
    starts = np.array([s["start"] for s in segs])
    post = np.array([s["posture"] for s in segs])
    return post[np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, None)]


def naive_walk_acc(t: np.ndarray, acc: np.ndarray, truth: dict[str, Any]) -> float:
    """Per-second walking accuracy of the naive rule "std of |a| over 2 s > 0.05 g": a
    reference for how detectable the simulated walking is (not a target)."""
    if len(t) < 2:
        return math.nan
    sec = np.floor(t - t[0]).astype(np.int64)
    mag = np.linalg.norm(acc, axis=1)
    n = np.bincount(sec).astype(float)
    s1, s2 = np.bincount(sec, mag), np.bincount(sec, mag * mag)
    cnt, m1, m2 = n[:-1] + n[1:], s1[:-1] + s1[1:], s2[:-1] + s2[1:]
    ok = cnt > 4
    std = np.sqrt(np.clip(m2[ok] / cnt[ok] - (m1[ok] / cnt[ok]) ** 2, 0.0, None))
    mids = t[0] + np.flatnonzero(ok) + 1.0
    walking = _truth_posture(truth, mids) == "walking"
    return float(((std > 0.05) == walking).mean()) if len(mids) else math.nan


def score_run(records: list[dict[str, Any]], truth: dict[str, Any], flexion_t: np.ndarray,
              flexion: np.ndarray, cfg: Config) -> dict[str, float]:
    """All per-run metrics (see the module doc) from the replay's records, the truth and
    the true flexion per sample (``flexion_t`` in the file's time base)."""
    nan = math.nan
    res = score(records, truth, cfg)
    f1, recall = _f1(res)
    sed_h = sum(b["end"] - b["start"] for b in truth["sitting_bouts"]) / 3600.0
    m: dict[str, float] = {
        "slouch_f1": f1, "slouch_recall": recall,
        "false_per_sit_h": res.false_alerts / sed_h if sed_h > 0.05 else nan,
        "sit_recall": res.sit_tp / res.sit_truth if res.sit_truth else nan,
        "break_recall": res.brk_tp / res.brk_truth if res.brk_truth else nan,
        "walk_acc": res.walk_ok / res.seconds if res.seconds else nan,
        # counts, for the figures pooled over all runs
        "n_slouch_tp": res.slouch_tp, "n_slouch_det": res.slouch_det,
        "n_slouch_truth": res.slouch_truth, "n_false": res.false_alerts,
        "n_sit_tp": res.sit_tp, "n_sit_truth": res.sit_truth,
        "n_brk_tp": res.brk_tp, "n_brk_truth": res.brk_truth, "sed_h": sed_h,
    }
    states = [r for r in records if r["type"] == "state"]
    ts = np.array([r["t"] for r in states], float) + 0.5
    got = np.array([r["posture"] for r in states])
    det_flex = np.array([r.get("flexion_deg") for r in states], dtype=float)
    true_post = _truth_posture(truth, ts) if len(ts) else np.array([])
    true_flex = np.interp(ts, flexion_t, flexion) if len(ts) else np.array([])
    upright = np.isin(true_post, ("sitting", "standing")) & np.isfinite(det_flex)
    m["forward_corr"] = m["flexion_gain"] = nan
    if upright.sum() > 30 and np.std(true_flex[upright]) > 1.0:
        x, y = true_flex[upright], det_flex[upright]
        m["flexion_gain"] = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1))
        m["forward_corr"] = float(np.corrcoef(y, x)[0, 1]) if np.std(y) > 1e-6 else 0.0
    decided = np.isin(true_post, ("sitting", "standing")) & np.isin(got, ("sitting", "standing"))
    m["sitstand_acc"] = float((got[decided] == true_post[decided]).mean()) \
        if decided.sum() > 30 else nan
    in_slouch = np.zeros(len(ts), bool)
    for ep in truth["slouch_episodes"]:
        in_slouch |= (ts >= ep["alert"]) & (ts <= ep["end"])
    in_slouch &= np.isfinite(det_flex)
    m["slouch_as_recline"] = float(np.median(det_flex[in_slouch]) < 0.0) \
        if in_slouch.sum() >= 5 else nan
    m["slip_f1"] = m["slip_false_per_h"] = nan
    if truth.get("slips"):
        after = truth["slips"][0]["end"]
        post = {**truth,
                "slouch_episodes": [e for e in truth["slouch_episodes"] if e["onset"] > after],
                "sitting_alerts": [], "breaks": [], "reaches": [
                    r for r in truth.get("reaches", []) if r["start"] > after]}
        kept = [r for r in records if r["type"] in ("slouch_start", "slouch_end")
                and r.get("onset", r["t"]) > after]
        if kept and kept[0]["type"] == "slouch_end":
            kept = kept[1:]
        hours = (truth["t0"] + truth["duration_s"] - after) / 3600.0
        post_res = score(kept, post, cfg)
        m["slip_f1"] = _f1(post_res)[0]
        m["slip_false_per_h"] = post_res.false_alerts / hours if hours > 0.05 else nan
    return m


def run_seed(seed: int, cfg: Config, *, mount: str = "right", calibration: str = "window",
             truth_cfg: Config | None = None, minutes: float | None = None,
             via: str = "csv") -> RobustRun:
    """Simulate the seed's day, replay it with ``cfg`` and score it. ``mount`` is
    ``right`` (the true facing), ``auto``, or ``config`` (leave cfg's); ``calibration``
    is ``window`` (the truth's upright window, as ``--calibrate``) or ``self``; the truth
    is labelled by ``truth_cfg`` (default: ``cfg``). ``via="csv"`` writes the day as a
    DESIGN A1 file and replays the file, as ``spinesense replay`` would (the reader's
    checks included); ``"memory"`` hands the samples over directly (faster)."""
    from spinesense.edge.replay import replay
    from spinesense.firmware.worldsim import simulate_world

    day = day_for_seed(seed)
    sim = simulate_world(day, seed, labels=labels_of(truth_cfg or cfg), minutes=minutes)
    tr = sim.truth
    setting = {"right": tr["facing"], "auto": "auto"}.get(mount)
    run_cfg, has_mount = with_mount(cfg, setting) if setting else (cfg, True)
    run = RobustRun(seed, day, tr["facing"], mount if has_mount else f"{mount} (ignored)",
                    calibration, tr["rate_hz"], tr["accel_only"], tr["stamps"],
                    bool(tr["slips"]), round(tr["duration_s"] / 60.0, 1))
    cal = tr["calibration"]
    window = (cal["start"], cal["end"]) if calibration == "window" else None
    try:
        if via == "csv":
            with tempfile.TemporaryDirectory(prefix="spinesense-robust-") as tmp:
                path, _ = sim.write(Path(tmp) / "day.csv")
                records = replay(path, run_cfg, calibrate=window, states=True)
        else:
            records = replay(sim.chunk(), run_cfg, calibrate=window, states=True)
    except Exception as exc:  # a crash is a finding, not the end of the evaluation
        msg = str(exc).replace(str(Path(tempfile.gettempdir())), "")
        run.calibrated = f"failed: {type(exc).__name__}: {msg}"[:240]
        run.metrics = {name: (0.0 if kind == "min" else 1.0) for name, kind, *_ in TARGETS}
        return run
    first = next((r for r in records if r["type"] == "calibrated"), None)
    if first is not None:
        conf = f", {first['confidence']}" if "confidence" in first else ""
        run.calibrated = f"{first['method']}; {first['forward_method']}{conf}"
    true_t, blocked = sim.labelling["t"], sim.labelling.get("blocked")
    if blocked is not None:  # recording gaps: the samples kept
        true_t = true_t[~blocked]
    run.metrics = score_run(records, tr, true_t, sim.flexion_true, cfg)
    run.metrics["naive_walk_acc"] = naive_walk_acc(sim.t, sim.acc, tr)
    return run


def _job(args: tuple[int, Config, str, str, Config | None, float | None, str]) -> RobustRun:
    seed, cfg, mount, calibration, truth_cfg, minutes, via = args
    return run_seed(seed, cfg, mount=mount, calibration=calibration, truth_cfg=truth_cfg,
                    minutes=minutes, via=via)


def run_suite(seeds: range | list[int], cfg: Config, *, mount: str = "right",
              calibration: str = "window", jobs: int = 1, truth_cfg: Config | None = None,
              minutes: float | None = None, progress: Any = None,
              via: str = "csv") -> list[RobustRun]:
    """`run_seed` over ``seeds``, in ``jobs`` processes; results in seed order."""
    work = [(s, cfg, mount, calibration, truth_cfg, minutes, via) for s in seeds]
    if jobs <= 1:
        out = []
        for item in work:
            out.append(_job(item))
            if progress:
                progress(out[-1])
        return out
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        out = []
        for run in pool.imap(_job, work):
            out.append(run)
            if progress:
                progress(run)
        return out
