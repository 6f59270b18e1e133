"""Measurement: how many feedback presses a week `tune --feedback` needs.

A simulated wearer (tests/feedback_wearer.py) whose own threshold is 20° wears the
device for a week of simulated 8-hour workdays (seeds 1..N). Two cases:

* the device runs at 15° (too sensitive): the wearer marks false alarms (short press);
* the device runs at 25° (too lax): the wearer presses "slouching now" on misses.

Each miss/false alarm gets a press with probability p; for each p, several wearers
(random press choices) are tuned (threshold grid 10..30° in 1° steps, delay fixed at
the device's 5 s) and the error |recommended − 20°| is reported against the number of
presses that week. The baseline is the device's own setting (an error of 5°).

    .venv/bin/python bench/bench_feedback.py [--days 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from feedback_wearer import wearer_feedback

from spinesense.analysis import feedback_labels as fl
from spinesense.analysis import tune
from spinesense.config import Config
from spinesense.edge.tuning import compute_features, slouch_events
from spinesense.firmware.simulator import simulate

WEARER = {"threshold_deg": 20.0, "release_deg": 17.0, "delay_s": 5.0}
DEVICES = {"15° (false alarms)": (15.0, 12.0), "25° (misses)": (25.0, 22.0)}
PROBABILITIES = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)


def week(days: int) -> list[tuple[tune.PipelineFeatures, dict]]:
    cfg = Config()
    out = []
    for seed in range(1, days + 1):
        sim = simulate("workday", seed=seed, rate_hz=25)
        cal = (sim.truth["calibration"]["start"], sim.truth["calibration"]["end"])
        feats = compute_features(sim.chunk(), cfg, calibrate=cal)
        out.append((tune.PipelineFeatures(feats, float(len(np.unique(feats.sec)) / 3600),
                                          600.0), sim.relabel(**WEARER)))
    return out


def recommend(days, device: tuple[float, float], p: float, rep: int) -> tuple[float, int]:
    recs, presses = [], 0
    for i, (feats, truth) in enumerate(days):
        records = slouch_events(feats.features, device[0], device[1], 5.0)
        fb = wearer_feedback(records, truth, seed=1000 * rep + i, p_false=p, p_missed=p)
        presses += len(fb)
        episodes = [r for r in records if r["type"] == "slouch_end"]
        labels = fl.build(fb, episodes, [], straighten_s=60.0)
        recs.append(tune.Recording(str(i), feats, labels, feats.hours))
    settings = tune.slouch_settings(np.arange(10.0, 31.0), np.array([5.0]), 3.0)
    rows = tune.sweep(recs, settings, lambda f, s: f.slouch(s), fl.score, progress=False)
    hours = sum(r.hours for r in recs)
    tune.finish_slouch(rows, hours)
    fl.finish(rows, hours)
    best, _ = tune.recommend(rows, 20.0, prefer={"threshold_deg": device[0], "delay_s": 5.0})
    return best["threshold_deg"], presses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    days = week(args.days)
    print(f"{args.days} simulated 8-hour workdays, features in {time.perf_counter() - t0:.0f} s "
          f"({platform.machine()}, Python {platform.python_version()})")
    for name, device in DEVICES.items():
        print(f"\ndevice at {name}; the wearer's truth: 20°")
        print(f"{'p':>5} {'presses/week':>14} {'thresholds recommended':>30} "
              f"{'median |err|':>13} {'within 2°':>10}")
        for p in PROBABILITIES:
            got = [recommend(days, device, p, rep) for rep in range(args.repeats)]
            ths = [t for t, _ in got]
            errs = np.abs(np.array(ths) - WEARER["threshold_deg"])
            presses = [n for _, n in got]
            print(f"{p:5.2f} {min(presses):>6}–{max(presses):<7} "
                  f"{', '.join(f'{t:g}' for t in ths):>30} {np.median(errs):>12.1f}° "
                  f"{np.mean(errs <= 2.0):>9.0%}")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
