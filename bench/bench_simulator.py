"""Benchmark the motion simulator: an 8-hour, 100 Hz workday (2.88 M samples).

Prints generation speed against the bare cost of drawing and quantising the same number
of 6-axis noise samples (the floor for any simulator of this size), CSV writing against
`np.savetxt` on the same rows, and the peak RSS. Both baselines are measured in this run.

    .venv/bin/python bench/bench_simulator.py [--seed N] [--repeat K]
    .venv/bin/python bench/bench_simulator.py --independent   # firmware.worldsim

With ``--independent`` it times one hour of the independent simulator at 100 Hz
against the scripted simulator's same hour, and the replay of that day through the
pipeline: together the cost of one day of ``spinesense evaluate --suite robust``.
"""

from __future__ import annotations

import argparse
import io
import resource
import time

import numpy as np

from spinesense.firmware.csvfast import write_stream
from spinesense.firmware.simulator import simulate


def best_of(repeat: int, func) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--independent", action="store_true",
                        help="time the independent simulator (firmware.worldsim) instead")
    args = parser.parse_args()
    if args.independent:
        bench_independent(args.seed, args.repeat)
        return

    sim = simulate("workday", args.seed)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(sim.t)
    t_sim = best_of(args.repeat, lambda: simulate("workday", args.seed))

    def noise_floor() -> None:
        rng = np.random.default_rng(0)
        np.round(rng.standard_normal((n, 6)) * 8192.0)

    t_floor = best_of(args.repeat, noise_floor)
    print(f"simulate('workday'): {n} samples in {t_sim:.2f} s = {n / t_sim / 1e6:.2f} M "
          f"samples/s, {sim.truth['duration_s'] / t_sim:,.0f}x real time")
    print(f"  baseline (draw + quantise {n}x6 noise only): {t_floor:.2f} s; "
          f"simulation costs {t_sim / t_floor:.1f}x the noise floor")

    rows = slice(0, 360_000)  # one hour
    fmt = "%.5f,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f"
    data = np.column_stack([sim.t[rows], sim.acc[rows], sim.gyro[rows]])
    t_savetxt = best_of(1, lambda: np.savetxt(io.StringIO(), data, fmt=fmt))
    t_fast = best_of(args.repeat, lambda: write_stream(io.BytesIO(), sim.t[rows],
                                                       sim.acc[rows], sim.gyro[rows]))
    print(f"CSV of 1 h (360k rows): vectorised writer {t_fast:.2f} s vs np.savetxt "
          f"{t_savetxt:.2f} s = {t_savetxt / t_fast:.1f}x faster "
          f"({360_000 / t_fast / 1e6:.2f} M rows/s)")
    print(f"peak RSS of the process after simulating one 8-hour day: {rss_mb:.0f} MB")


def bench_independent(seed: int, repeat: int) -> None:
    from spinesense.edge.replay import replay
    from spinesense.firmware.worldsim import simulate_world

    def world():
        return simulate_world("office", seed, minutes=60.0, rate_hz=100.0, stamps="clean",
                              rate_switch=False, gaps=False)

    sim = world()
    n = len(sim.t)
    t_world = best_of(repeat, world)
    t_scripted = best_of(repeat, lambda: simulate("workday", seed, duration_s=3600.0))
    t_replay = best_of(repeat, lambda: replay(sim.chunk(), calibrate=(
        sim.truth["calibration"]["start"], sim.truth["calibration"]["end"]), states=True))
    print(f"simulate_world('office', 60 min, 100 Hz): {n} samples in {t_world:.2f} s = "
          f"{n / t_world / 1e6:.2f} M samples/s, {3600 / t_world:,.0f}x real time")
    print(f"  scripted simulate('workday', 1 h) for comparison: {t_scripted:.2f} s "
          f"(the independent model costs {t_world / t_scripted:.1f}x)")
    print(f"  replay of that day through the pipeline: {t_replay:.2f} s; one robust-suite "
          f"day of 1 h costs {t_world + t_replay:.2f} s")


if __name__ == "__main__":
    main()
