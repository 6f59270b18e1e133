"""Edge pipeline benchmark (DESIGN B5): an 8-hour 100 Hz day through the whole pipeline.

    .venv/bin/python bench/bench_edge.py [--hours 8] [--reference-min 10] [--repeat 3]

Prints, all measured in this run:
  - whole-pipeline replay of the day from memory (samples/s, multiple of real time),
    with a stored calibration and self-calibrating;
  - reading the day's DESIGN A1 CSV (read_csv) and the full `replay FILE` path;
  - the ratio against edge/reference.py, the straightforward per-sample Python version of
    the same per-tick work, run on a shorter slice (--reference-min) and scaled by its
    rate (it is linear in the samples);
  - the live loop's CPU share at 100 Hz fed in 10-sample chunks;
  - peak RSS of `spinesense replay FILE --jsonl` in a fresh process (budget 1 GB), and
    the memory the pipeline holds after an hour of live-style feeding.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from spinesense.config import Config
from spinesense.edge.calibration import Calibration
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.reference import run_reference
from spinesense.edge.replay import read_csv, replay
from spinesense.firmware.simulator import simulate


def best_of(n: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--reference-min", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--live-min", type=float, default=30.0,
                    help="minutes of data fed in 10-sample chunks for the CPU share")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {np.__version__}")
    t0 = time.perf_counter()
    sim = simulate("workday", 1, duration_s=args.hours * 3600.0)
    chunk = sim.chunk()
    n = len(chunk)
    print(f"simulated {args.hours:g} h at 100 Hz: {n:,} samples "
          f"({time.perf_counter() - t0:.1f} s, not counted)")
    cfg = Config()
    cal = Calibration(sim.up_sensor, -sim.forward_sensor, method="truth")

    def whole(calibration: Calibration | None):
        def run():
            pipe = Pipeline(cfg, calibration)
            return pipe.process(chunk) + pipe.flush()
        return run

    t_cal, recs = best_of(args.repeat, whole(cal))
    t_auto, recs_auto = best_of(args.repeat, whole(None))
    rate = n / t_cal
    print(f"pipeline, stored calibration: {t_cal:.3f} s = {rate / 1e6:.2f} M samples/s "
          f"= {args.hours * 3600 / t_cal:,.0f}x real time ({len(recs)} records)")
    print(f"pipeline, self-calibrating:   {t_auto:.3f} s = {n / t_auto / 1e6:.2f} M samples/s "
          f"({len(recs_auto)} records)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "day.csv"
        t0 = time.perf_counter()
        sim.write(path)
        print(f"wrote the day's CSV: {path.stat().st_size / 1e6:.0f} MB "
              f"({time.perf_counter() - t0:.1f} s, not counted)")
        t_read, _ = best_of(1, lambda: read_csv(path))
        t_file, _ = best_of(1, lambda: replay(path, cfg))
        print(f"read_csv: {t_read:.2f} s = {n / t_read / 1e6:.2f} M rows/s; "
              f"replay FILE (read + pipeline): {t_file:.2f} s = {n / t_file / 1e6:.2f} M "
              "samples/s")
        t_np, _ = best_of(1, lambda: np.loadtxt(path, delimiter=",", skiprows=1))
        print(f"baseline np.loadtxt on the whole file: {t_np:.2f} s = {n / t_np / 1e6:.2f} M "
              f"rows/s (read_csv: {t_np / t_read:.2f}x that, in bounded memory, with line "
              "numbers for errors)")
        # VmHWM of the child itself (ru_maxrss would include the parent's peak after fork)
        code = ("import sys; from spinesense.cli import main; "
                "rc = main(['replay', sys.argv[1], '--jsonl', '--states']); "
                "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')]; "
                "print(hwm[0].split()[1], file=sys.stderr); sys.exit(rc)")
        proc = subprocess.run([sys.executable, "-c", code, str(path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=True)
        rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
        print(f"peak RSS of `spinesense replay day.csv --jsonl --states`: {rss_mb:.0f} MB "
              f"(budget 1024 MB)")

    m = int(args.reference_min * 60 * 100)
    part = chunk[0:m]
    t_ref, _ = best_of(1, lambda: run_reference(part, cal))
    t_part, _ = best_of(args.repeat, lambda: Pipeline(cfg, cal).process(part))
    ref_rate = m / t_ref
    print(f"reference (per-sample Python) on {args.reference_min:g} min: {t_ref:.2f} s = "
          f"{ref_rate / 1e3:.0f} k samples/s; scaled to the day: {n / ref_rate:.0f} s")
    print(f"ratio: pipeline {rate / ref_rate:.0f}x faster than the per-sample reference "
          f"(same slice: {t_ref / t_part:.0f}x)")

    live_n = int(args.live_min * 60 * 100)
    live = chunk[0:live_n]
    pipe = Pipeline(cfg, cal)
    c0 = time.process_time()
    for i in range(0, live_n, 10):
        pipe.process(live[i:i + 10])
    cpu = time.process_time() - c0
    pipe = Pipeline(cfg, cal)
    tracemalloc.start()
    for i in range(0, live_n, 10):
        pipe.process(live[i:i + 10])
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    share = cpu / (live_n / 100.0)
    print(f"live loop, 100 Hz in 10-sample chunks: {cpu:.2f} CPU s for {args.live_min:g} min "
          f"of data = {share * 100:.2f}% of one core ({cpu / (live_n / 10) * 1e6:.0f} µs per "
          "call)")
    print(f"memory held by the pipeline after {args.live_min:g} min of live feeding: "
          f"{held / 1024:.0f} KiB")
    print(f"process peak RSS so far: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (holds the "
          "simulated day and its noiseless copy)")


if __name__ == "__main__":
    main()
