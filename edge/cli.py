"""`spinesense replay`, `spinesense calibrate` and `spinesense evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from spinesense.cli import EXIT_USAGE, CliError, add_common, load_config

DEFAULT_EVAL_SCENARIOS = ("calibration", "slouch_short", "reaches", "recline", "walking",
                          "sitting_long", "mixed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="run a recording through the edge pipeline",
        description="Replay a DESIGN A1 CSV (.csv or .csv.gz) through the same pipeline as "
                    "the live loop. Without --jsonl, print a summary: slouch episodes, "
                    "minutes slouched, sitting bouts, breaks, and how it calibrated.")
    p.add_argument("file", metavar="FILE", help="recording: t,ax,ay,az,gx,gy,gz")
    add_common(p)
    p.add_argument("--calibrate", metavar="START:END",
                   help="take upright from this still window (seconds, the file's time base); "
                        "default: learn it from the data")
    p.add_argument("--calibration", metavar="FILE",
                   help="use a stored calibration JSON (from `spinesense calibrate`)")
    p.add_argument("--jsonl", action="store_true",
                   help="one JSON object per event/metric on stdout")
    p.add_argument("--states", action="store_true",
                   help="with --jsonl: also one state line per second")
    p.add_argument("--chunk", type=int, metavar="N",
                   help="feed N samples at a time, as the live loop does (same result)")
    p.set_defaults(func=_replay)

    c = sub.add_parser(
        "calibrate", help="guided calibration: sit upright, then lean forward",
        description="Guided calibration. Sit (or stand) upright and still while the sensor "
                    "learns which way is up, then lean forward slowly and come back, so it "
                    "learns which way is forward. The result goes to "
                    "<device.state_dir>/calibration.json, which the live loop loads.")
    add_common(c)
    c.add_argument("--emulate", metavar="CHIP",
                   help="use an emulated chip fed by a simulated calibration (no hardware)")
    c.add_argument("--seed", type=int, default=0, help="seed of the simulated wearer "
                   "(with --emulate)")
    c.add_argument("--yes", "-y", action="store_true",
                   help="do not wait for Enter between steps (non-interactive)")
    c.add_argument("--still-s", type=float, default=8.0, metavar="S",
                   help="length of the still, upright step (default 8)")
    c.add_argument("--lean-s", type=float, default=8.0, metavar="S",
                   help="length of the lean-forward step (default 8)")
    c.add_argument("--out", metavar="FILE", help="write here instead of the state dir")
    c.set_defaults(func=_calibrate)

    e = sub.add_parser(
        "evaluate", help="accuracy of the pipeline on simulated scenarios",
        description="Simulate scenarios with random sensor mountings, replay them and "
                    "compare with the truth: slouch episode precision/recall/F1, alert "
                    "latency, false alerts per hour, sitting-alert and break "
                    "precision/recall, per-second posture and walking accuracy.")
    add_common(e)
    e.add_argument("--scenario", action="append", metavar="NAME",
                   help="scenario (repeatable; default: all short ones)")
    e.add_argument("--suite", choices=("scenarios", "robust"), default="scenarios",
                   help="scenarios: the scripted scenarios (default); robust: days from "
                        "the independent simulator, one per seed, reported as a "
                        "distribution (worst, 5th percentile, median, share meeting each "
                        "target); see docs/simulator.md")
    e.add_argument("--seeds", type=int, metavar="N",
                   help="seeds per scenario (default 3; robust: number of days, default 200)")
    e.add_argument("--first-seed", type=int, default=0, metavar="S",
                   help="seeds S, S+1, ... (default 0; use fresh ones for held-out figures)")
    e.add_argument("--accel-only", action="store_true", help="no gyro")
    e.add_argument("--self-calibrate", action="store_true",
                   help="learn upright from the data too (default: the truth's still window, "
                        "as --calibrate would)")
    e.add_argument("--duration", type=float, metavar="S", help="cut scenarios to S seconds")
    e.add_argument("--json", action="store_true", help="print the summaries as JSON")
    r = e.add_argument_group("robust suite")
    r.add_argument("--mount", choices=("right", "auto", "config"), default="right",
                   help="[sensor] mount given to the detector: the true facing (default), "
                        "auto, or whatever --config says")
    r.add_argument("--calibration", choices=("window", "self"), default="window",
                   help="upright from the truth's still window, as --calibrate (default), "
                        "or self-calibration")
    r.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="processes to run days in (default 1)")
    r.add_argument("--minutes", type=float, metavar="M",
                   help="fix every day's length (default: drawn, 20–90 min)")
    r.add_argument("--in-memory", action="store_true",
                   help="hand the samples to the pipeline directly instead of writing and "
                        "reading each day's CSV (faster; skips the reader's checks)")
    e.set_defaults(func=_evaluate)


def _jsonable(x: Any) -> Any:
    return float(x) if hasattr(x, "__float__") else str(x)


def _replay(args: argparse.Namespace) -> int:
    from spinesense.edge.calibration import Calibration, CalibrationError
    from spinesense.edge.replay import RecordingError, replay, summary
    from spinesense.parsing import parse_window

    cfg = load_config(args)
    if args.states and not args.jsonl:
        raise CliError("--states needs --jsonl", EXIT_USAGE)
    try:
        window = parse_window(args.calibrate) if args.calibrate else None
        cal = Calibration.load(args.calibration) if args.calibration else None
        records = replay(args.file, cfg, calibrate=window, calibration=cal, states=args.states,
                         chunk_size=args.chunk)
    except (RecordingError, CalibrationError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.jsonl:
        out = sys.stdout
        for rec in records:
            out.write(json.dumps(rec, default=_jsonable, separators=(",", ":")) + "\n")
        return 0
    cal = next((r for r in records if r["type"] == "calibrated"), None)
    if cal is not None:
        print(f"spinesense: calibrated at t={cal['t']:g} s: upright from {cal['method']}, "
              f"forward axis {cal['forward_method']}", file=sys.stderr)
    print(summary(records, args.file))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from spinesense.edge.guided import run_guided

    cfg = load_config(args)
    path = args.out or str(cfg.state_dir / "calibration.json")
    cal = run_guided(cfg, emulate=args.emulate, seed=args.seed, interactive=not args.yes,
                     still_s=args.still_s, lean_s=args.lean_s)
    cal.save(path)
    print(f"calibration saved to {path}: {cal.summary()}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spinesense.edge.evaluate import format_table, run_one, summarise
    from spinesense.firmware.simulator import SCENARIOS

    cfg = load_config(args)
    if args.suite == "robust":
        return _evaluate_robust(args, cfg)
    args.seeds = 3 if args.seeds is None else args.seeds
    names = args.scenario or list(DEFAULT_EVAL_SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            raise CliError(f"unknown scenario {n!r}; choose from {', '.join(SCENARIOS)}",
                           EXIT_USAGE)
    rows = []
    t0 = time.perf_counter()
    for name in names:
        results = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            res, _ = run_one(name, seed, cfg, accel_only=args.accel_only,
                             duration_s=args.duration, self_calibrate=args.self_calibrate)
            results.append(res)
        rows.append(summarise(name, results))
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], default=_jsonable, indent=1))
    else:
        mode = "accelerometer only" if args.accel_only else "accelerometer + gyro"
        cal = "self-calibrated" if args.self_calibrate else "upright from the still window"
        print(f"{len(names)} scenarios x {args.seeds} seeds (from {args.first_seed}), random "
              f"mountings, {mode}, {cal} "
              f"({time.perf_counter() - t0:.0f} s)")
        print(format_table(rows))
        print("latency: detected alert - (truth onset + delay), seconds; unknown: share of "
              "seconds with posture unknown (counted as wrong in 'posture')")
    return 0


def _evaluate_robust(args: argparse.Namespace, cfg: Any) -> int:
    from spinesense.edge.robustness import run_suite
    from spinesense.edge.robustness_report import format_report

    seeds = 200 if args.seeds is None else args.seeds
    if seeds < 1 or args.jobs < 1:
        raise CliError("--seeds and --jobs must be at least 1", EXIT_USAGE)
    if args.scenario or args.accel_only or args.self_calibrate or args.duration:
        raise CliError("--scenario, --accel-only, --self-calibrate and --duration are for "
                       "--suite scenarios; the robust suite draws them per seed (use "
                       "--calibration self, --minutes)", EXIT_USAGE)
    if args.minutes is not None and not 1.0 <= args.minutes <= 600.0:
        raise CliError(f"--minutes {args.minutes:g} must be between 1 and 600", EXIT_USAGE)
    t0 = time.perf_counter()
    done: list[int] = []

    def progress(run: Any) -> None:
        done.append(run.seed)
        if len(done) % 20 == 0 and len(done) < seeds:
            print(f"spinesense: robust suite: {len(done)}/{seeds} days "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    runs = run_suite(range(args.first_seed, args.first_seed + seeds), cfg, mount=args.mount,
                     calibration=args.calibration, jobs=args.jobs, minutes=args.minutes,
                     progress=progress, via="memory" if args.in_memory else "csv")
    if args.json:  # standard JSON: undefined metrics (NaN) become null
        rows = [{**r.__dict__, "metrics": {k: (v if v == v else None)
                                           for k, v in r.metrics.items()}} for r in runs]
        print(json.dumps(rows, default=_jsonable, indent=1, allow_nan=False))
        return 0
    hours = sum(r.minutes for r in runs) / 60.0
    print(f"robust suite: {seeds} independent days (seeds {args.first_seed}.."
          f"{args.first_seed + seeds - 1}, {hours:.1f} h), mount {runs[0].mount}, "
          f"calibration {args.calibration}, {'in memory' if args.in_memory else 'via CSV'} "
          f"({time.perf_counter() - t0:.0f} s)")
    print(format_report(runs))
    return 0
