"""`spinesense simulate`: write a simulated recording (DESIGN A1 CSV) and its truth JSON."""

from __future__ import annotations

import argparse
import sys
import time

from spinesense.cli import DEFAULT_SEED, CliError, add_common, add_output, load_config
from spinesense.parsing import (
    parse_count,
    parse_duration,
    parse_non_negative,
    parse_number,
    parse_positive,
    parse_seed,
)

PLOT_FORMATS = (".png", ".svg", ".pdf")


def _zero_ok(text: str) -> float:
    return parse_duration(text, allow_zero=True)


def _gap(text: str) -> tuple[float, float]:
    start, sep, length = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"bad gap {text!r}: use START:LENGTH, e.g. 600:30")
    return parse_duration(start, allow_zero=True), parse_duration(length)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "simulate", help="write a simulated upper-back IMU recording with ground truth",
        description="Simulate a scenario (default: an 8-hour workday) as the DESIGN A1 CSV "
                    "(gzip if FILE ends in .gz) plus FILE.truth.json beside it: slouch "
                    "episodes, sitting bouts, alerts, breaks, walking, segments, mounting. "
                    "Deterministic from --seed. Label defaults come from --config's [slouch] "
                    "and [sitting] sections; --label-* options override them.")
    add_common(p)
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--model", choices=("scripted", "independent"), default="scripted",
                   help="scripted: the scenarios below (default); independent: the "
                        "independent simulator's day types (firmware.worldsim), whose rate, "
                        "facing, accel-only, timestamps and slip are drawn from the seed "
                        "unless given")
    p.add_argument("--scenario", default="workday", metavar="NAME",
                   help="scenario name (see --list; default workday)")
    p.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED,
                   help=f"random seed (default {DEFAULT_SEED})")
    add_output(p, metavar="FILE.csv", help="output CSV (.csv or .csv.gz; - for standard "
               "output, without the truth file); with --count, put {seed} in the name")
    p.add_argument("--count", type=parse_count, default=1, metavar="N",
                   help="write N recordings, seeds SEED..SEED+N-1 (default 1)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw the true flexion, slouch truth, postures and sitting "
                        "bouts ({seed} is replaced with --count)")
    p.add_argument("--rate", type=parse_positive, metavar="HZ",
                   help="sample rate in Hz (default 100; independent: drawn, 25–400)")
    p.add_argument("--accel-only", action="store_true",
                   help="accelerometer only: the gyro columns stay empty")
    p.add_argument("--duration", type=parse_duration, metavar="D",
                   help="cut or extend the scenario to D (e.g. 600, 20m, 2h)")
    p.add_argument("--mounting", default="random",
                   choices=("random", "normal", "flipped", "aligned"),
                   help="sensor mounting on the back (default random: any in-plane "
                        "rotation, a few degrees of tilt, a quarter of seeds flipped)")
    p.add_argument("--mount-slip", type=parse_non_negative, default=0.0, metavar="DEG",
                   help="let the clip turn this far on the back over the recording, while "
                        "the wearer moves (a stale calibration; default 0)")
    p.add_argument("--knocks", type=parse_non_negative, default=4.0, metavar="PER_H",
                   help="bumps (desk, chair, cable tug: 0.2–1 g for a fraction of a second) "
                        "per hour of still activity (default 4; 0 for none)")
    p.add_argument("--ideal-sensor", action="store_true",
                   help="no noise, bias, scale error or quantisation")
    p.add_argument("--t0", type=parse_number, default=0.0, metavar="S",
                   help="time of the first sample, in seconds (default 0)")
    p.add_argument("--gap", action="append", type=_gap, default=[], metavar="START:LENGTH",
                   help="drop the samples from START for LENGTH (seconds or 90s/2m/1h "
                        "from the first sample), as a lost sensor would; repeatable")
    p.add_argument("--jitter", type=parse_non_negative, default=0.0, metavar="MS",
                   help="timestamp jitter, σ in milliseconds (default 0)")
    p.add_argument("--stamps", choices=("clean", "jitter", "logger"),
                   help="independent model: timestamps (logger: 10–40 ms ticks, repeated "
                        "stamps; default drawn from the seed)")
    p.add_argument("--slip", choices=("yes", "no"),
                   help="independent model: a clip slip mid-day (default drawn)")
    g = p.add_argument_group("truth labels (defaults from the config)")
    g.add_argument("--label-threshold", type=parse_positive, metavar="DEG", help="slouch threshold")
    g.add_argument("--label-release", type=parse_non_negative, metavar="DEG", help="slouch release")
    g.add_argument("--label-delay", type=_zero_ok, metavar="TIME",
                   help="slouch delay (5, 5s)")
    g.add_argument("--label-sitting-limit", type=parse_duration, metavar="TIME",
                   help="continuous sedentary time before sitting_alert (1800, 30m)")
    g.add_argument("--label-break", type=parse_duration, metavar="TIME",
                   help="standing/walking time that ends a sitting bout (60, 1m)")
    g.add_argument("--label-repeat", type=_zero_ok, metavar="TIME",
                   help="time between reminders after the alert (600, 10m; 0: none)")
    p.set_defaults(func=run)


def _labels(args: argparse.Namespace) -> dict[str, float]:
    cfg = load_config(args)
    labels = {"threshold_deg": cfg.slouch.threshold_deg, "release_deg": cfg.slouch.release_deg,
              "delay_s": cfg.slouch.delay_s, "sitting_limit_s": cfg.sitting.limit_min * 60.0,
              "break_s": cfg.sitting.break_s, "repeat_s": cfg.sitting.repeat_min * 60.0}
    for key, opt in (("threshold_deg", "label_threshold"), ("release_deg", "label_release"),
                     ("delay_s", "label_delay"), ("sitting_limit_s", "label_sitting_limit"),
                     ("break_s", "label_break"), ("repeat_s", "label_repeat")):
        if getattr(args, opt) is not None:
            labels[key] = getattr(args, opt)
    return labels


def run(args: argparse.Namespace) -> int:
    from spinesense.firmware.simulator import SCENARIOS

    if args.model == "independent":
        from spinesense.firmware.worldsim_cli import run_independent
        return run_independent(args, _labels)
    if args.rate is None:
        args.rate = 100.0
    if args.list:
        width = max(map(len, SCENARIOS))
        for name, spec in SCENARIOS.items():
            print(f"{name:<{width}}  {spec.default_s / 60:6.1f} min  {spec.description}")
        return 0
    if not args.out:
        raise CliError("simulate needs --out FILE.csv (or --list to see the scenarios)", 2)
    if args.scenario not in SCENARIOS:
        raise CliError(f"unknown scenario {args.scenario!r}: choose one of "
                       f"{', '.join(SCENARIOS)} (see --list)", 2)
    if args.out != "-" and not args.out.endswith((".csv", ".csv.gz")):
        raise CliError(f"--out {args.out!r} must end in .csv or .csv.gz (or - for standard "
                       "output)", 2)
    if args.out == "-" and (args.count > 1 or args.plot):
        raise CliError("--out - writes one recording to standard output: no --count, no "
                       "--plot", 2)
    if args.count < 1:
        raise CliError(f"--count must be at least 1, got {args.count}", 2)
    if args.count > 1 and "{seed}" not in args.out:
        raise CliError("with --count, --out needs {seed} in the name, e.g. day-{seed}.csv", 2)
    if not 25.0 <= args.rate <= 400.0:
        raise CliError(f"--rate {args.rate:g} is outside DESIGN A1's 25..400 Hz", 2)
    if not 0.0 <= args.jitter < 400.0 / args.rate:
        raise CliError(f"--jitter {args.jitter:g} ms must be between 0 and 0.4 sample "
                       f"periods ({400.0 / args.rate:g} ms at {args.rate:g} Hz)", 2)
    if args.count > 1 and args.plot and "{seed}" not in args.plot:
        raise CliError("with --count, --plot needs {seed} in the name, e.g. day-{seed}.png", 2)
    if args.plot and not args.plot.lower().endswith(PLOT_FORMATS):
        raise CliError(f"--plot {args.plot!r} must end in {', '.join(PLOT_FORMATS)}", 2)
    labels = _labels(args)
    seeds = range(args.seed, args.seed + args.count)
    for seed in seeds:  # every output checked before the first is simulated
        _check_outputs(args, seed)
    for seed in seeds:
        _one(args, seed, labels)
    return 0


def _check_outputs(args: argparse.Namespace, seed: int) -> None:
    from spinesense.firmware.simulator import truth_path_for
    from spinesense.outputs import check_output_path

    out = args.out.replace("{seed}", str(seed))
    paths = [out] if out == "-" else [out, truth_path_for(out)]
    if args.plot:
        paths.append(args.plot.replace("{seed}", str(seed)))
    for path in paths:
        check_output_path(path, force=args.force)


def _one(args: argparse.Namespace, seed: int, labels: dict[str, float]) -> None:
    from spinesense.firmware.simulator import SensorModel, simulate

    started = time.perf_counter()
    sensor = SensorModel.ideal() if args.ideal_sensor else None
    out = args.out.replace("{seed}", str(seed))
    try:
        sim = simulate(args.scenario, seed, rate_hz=args.rate, accel_only=args.accel_only,
                       duration_s=args.duration, labels=labels, mounting=args.mounting,
                       sensor=sensor, t0=args.t0, gaps=args.gap, jitter_s=args.jitter / 1000.0,
                       mount_slip_deg=args.mount_slip, knocks_per_h=args.knocks)
        if out == "-":
            from spinesense.firmware.csvfast import write_csv

            write_csv(out, sim.t, sim.acc, sim.gyro)
            csv_path, truth_path = "standard output", "no truth file"
        else:
            csv_path, truth_path = sim.write(out, force=args.force)
        plot = ""
        if args.plot:
            from spinesense.firmware.simplot import plot_simulation
            drawn = plot_simulation(sim, args.plot.replace("{seed}", str(seed)),
                                    force=args.force)
            plot = f", {drawn}"
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    tr = sim.truth
    print(f"wrote {csv_path} ({len(sim.t)} samples, {tr['duration_s'] / 3600:.2f} h at "
          f"{args.rate:g} Hz, {args.scenario} seed {seed}"
          f"{', accel only' if args.accel_only else ''}) and {truth_path}{plot}: "
          f"{len(tr['slouch_episodes'])} slouch episodes, {len(tr['sitting_bouts'])} sitting "
          f"bouts, {len(tr['sitting_alerts'])} sitting alerts, {len(tr['breaks'])} breaks, "
          f"{len(tr['walking'])} walks in {time.perf_counter() - started:.1f} s",
          file=sys.stderr if out == "-" else sys.stdout)
