"""Benchmark: a 20 x 10 slouch sweep over an 8-hour, 100 Hz recording.

Tuning computes the pipeline's features once per recording and runs only the slouch
detector per setting. The baseline is what tuning would cost without that: one whole
replay per setting. It is measured in the same run: one full replay of the same 8 hours
(the cost of one setting), times the number of settings.

    .venv/bin/python bench/bench_tune.py [--hours 8] [--thresholds 20] [--delays 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from spinesense.analysis import dataset, tune
from spinesense.config import load
from spinesense.edge.replay import replay
from spinesense.firmware.simulator import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--thresholds", type=int, default=20)
    ap.add_argument("--delays", type=int, default=10)
    args = ap.parse_args()
    cfg = load(None)
    print(f"machine: {platform.machine()}, nproc={os.cpu_count()}, "
          f"Python {platform.python_version()}")
    t = time.perf_counter()
    sim = simulate("workday", seed=1, rate_hz=100, duration_s=args.hours * 3600)
    cal = (sim.truth["calibration"]["start"], sim.truth["calibration"]["end"])
    print(f"simulated {args.hours:g} h at 100 Hz ({len(sim.t):,} samples) in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path, truth_file = sim.write(Path(tmp) / "bench.csv")
        labels = dataset.load_truth(truth_file)
        settings = tune.slouch_settings(np.linspace(10, 30, args.thresholds),
                                        np.linspace(1, 10, args.delays), 3.0)

        t = time.perf_counter()
        feats = tune.compute_features(path, cfg, calibrate=cal)
        t_features = time.perf_counter() - t
        rec = tune.Recording(path.name, feats, labels, feats.hours)
        t = time.perf_counter()
        rows = tune.sweep([rec], settings, tune._run_slouch, tune.score_slouch,
                          progress=False)
        t_sweep = time.perf_counter() - t
        tune.finish_slouch(rows, feats.hours)

        t = time.perf_counter()
        replay(str(path), cfg, calibrate=cal)
        t_replay = time.perf_counter() - t

    n = len(settings)
    total = t_features + t_sweep
    baseline = n * t_replay
    best, _ = tune.recommend(rows, None, prefer={"threshold_deg": 15.0, "delay_s": 5.0})
    print(f"features once: {t_features:.2f} s; {n} settings swept: {t_sweep:.2f} s "
          f"({1000 * t_sweep / n:.1f} ms per setting); total {total:.2f} s")
    print(f"baseline, one whole replay per setting: {t_replay:.2f} s x {n} = "
          f"{baseline:.0f} s")
    print(f"speedup: {baseline / total:.0f}x (recommended {best['threshold_deg']:.3g}°, "
          f"{best['delay_s']:g} s against truth labelled at 15°, 5 s; F1 {best['f1']:.3f})")


if __name__ == "__main__":
    main()
