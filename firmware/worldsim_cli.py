"""`spinesense simulate --model independent`: days from `firmware.worldsim`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from spinesense.cli import CliError

FACING_OF_MOUNTING = {"normal": "back-out", "flipped": "back-in", "random": None}


def run_independent(args: argparse.Namespace,
                    labels_of: Callable[[argparse.Namespace], dict[str, float]]) -> int:
    from spinesense.firmware.worldsim import DAY_TYPES

    if args.list:
        width = max(map(len, DAY_TYPES))
        for name, spec in DAY_TYPES.items():
            lo, hi = spec.minutes
            print(f"{name:<{width}}  {lo:3.0f}–{hi:3.0f} min  {spec.description}")
        return 0
    day = "office" if args.scenario == "workday" else args.scenario
    if day not in DAY_TYPES:
        raise CliError(f"unknown day type {day!r} for --model independent: choose one of "
                       f"{', '.join(DAY_TYPES)} (see --list)", 2)
    if not args.out:
        raise CliError("simulate needs --out FILE.csv (or --list to see the day types)", 2)
    if not args.out.endswith((".csv", ".csv.gz")):
        raise CliError(f"--out {args.out!r} must end in .csv or .csv.gz", 2)
    if args.count < 1 or (args.count > 1 and "{seed}" not in args.out):
        raise CliError("--count must be at least 1, and with --count > 1 --out needs {seed} "
                       "in the name, e.g. day-{seed}.csv", 2)
    if args.mounting not in FACING_OF_MOUNTING:
        raise CliError(f"--mounting {args.mounting} is not available with --model "
                       "independent: use random, normal (back-out) or flipped (back-in)", 2)
    for opt, name in ((args.gap, "--gap"), (args.jitter, "--jitter"),
                      (args.mount_slip, "--mount-slip")):
        if opt:
            raise CliError(f"{name} is for the scripted model; with --model independent "
                           "use --stamps and --slip", 2)
    labels = labels_of(args)
    for seed in range(args.seed, args.seed + args.count):
        _one(args, day, seed, labels)
    return 0


def _one(args: argparse.Namespace, day: str, seed: int, labels: dict[str, float]) -> None:
    from spinesense.firmware.worldsim import simulate_world

    started = time.perf_counter()
    out = args.out.replace("{seed}", str(seed))
    try:
        sim = simulate_world(
            day, seed, minutes=None if args.duration is None else args.duration / 60.0,
            rate_hz=args.rate, facing=FACING_OF_MOUNTING[args.mounting],
            accel_only=True if args.accel_only else None, stamps=args.stamps,
            slip=None if args.slip is None else args.slip == "yes", labels=labels,
            t0=args.t0 if args.t0 else None, ideal_sensor=args.ideal_sensor)
        csv_path, truth_path = sim.write(out)
        plot = ""
        if args.plot:
            from spinesense.firmware.simplot import plot_simulation
            plot = f", {plot_simulation(sim, args.plot.replace('{seed}', str(seed)))}"
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    tr = sim.truth
    slip = f", slip {tr['slips'][0]['angle_deg']:.0f}° at {tr['slips'][0]['t']:.0f} s" \
        if tr["slips"] else ""
    print(f"wrote {csv_path} ({len(sim.t)} samples, {tr['duration_s'] / 60:.1f} min at "
          f"{tr['rate_hz']:g} Hz, independent {day} seed {seed}, {tr['facing']}, tilt "
          f"{tr['mount_tilt_deg']:.0f}°{', accel only' if tr['accel_only'] else ''}, "
          f"stamps {tr['stamps']}{slip}) and {truth_path}{plot}: "
          f"{len(tr['slouch_episodes'])} slouch episodes, {len(tr['sitting_bouts'])} sitting "
          f"bouts, {len(tr['sitting_alerts'])} sitting alerts, {len(tr['breaks'])} breaks, "
          f"{len(tr['walking'])} walks in {time.perf_counter() - started:.1f} s")
