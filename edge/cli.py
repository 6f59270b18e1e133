"""`spinesense replay`, `spinesense calibrate` and `spinesense evaluate`."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from spinesense.cli import (
    DEFAULT_SEED,
    EXIT_USAGE,
    READ_ERRORS,
    CliError,
    add_common,
    add_hidden_alias,
    add_output,
    check_text_input,
    load_config,
    unreadable,
)
from spinesense.parsing import parse_count, parse_duration, parse_positive, parse_seed

DEFAULT_EVAL_SCENARIOS = ("calibration", "slouch_short", "reaches", "recline", "walking",
                          "sitting_long", "mixed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="run a recording through the edge pipeline",
        description="Replay a recording (the DESIGN A1 CSV, .csv or .csv.gz, or a .ssrec "
                    "from `spinesense record`) through the same pipeline as the live loop. "
                    "Without --jsonl, print a summary: slouch episodes, minutes slouched, "
                    "sitting bouts, breaks, how it calibrated and with what confidence, "
                    "and anything wrong with the input.")
    p.add_argument("file", metavar="FILE",
                   help="recording: CSV t,ax,ay,az,gx,gy,gz (.gz too) or .ssrec; - reads stdin")
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
    p.add_argument("--chunk", type=parse_count, metavar="N",
                   help="feed N samples at a time, as the live loop does (same result)")
    add_unit_options(p)
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
    c.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED,
                   help=f"seed of the simulated wearer (with --emulate; default {DEFAULT_SEED})")
    c.add_argument("--yes", "-y", action="store_true",
                   help="do not wait for Enter between steps (non-interactive)")
    c.add_argument("--still-s", type=parse_duration, default=8.0, metavar="TIME",
                   help="length of the still, upright step (default 8s)")
    c.add_argument("--lean-s", type=parse_duration, default=8.0, metavar="TIME",
                   help="length of the lean-forward step (default 8s)")
    add_output(c, help="write the calibration here instead of "
                       "<device.state_dir>/calibration.json (which it replaces)")
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
    e.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED, metavar="S",
                   help=f"seeds S, S+1, ... (default {DEFAULT_SEED}; use fresh ones for "
                        "held-out figures)")
    e.add_argument("--count", type=parse_count, metavar="N",
                   help="seeds per scenario (default 3; robust: number of days, default 200)")
    add_hidden_alias(e, "--first-seed", dest="seed", type=parse_seed)
    add_hidden_alias(e, "--seeds", dest="count", type=parse_count)
    e.add_argument("--accel-only", action="store_true", help="no gyro")
    e.add_argument("--self-calibrate", action="store_true",
                   help="learn upright from the data too (default: the truth's still window, "
                        "as --calibrate would)")
    e.add_argument("--duration", type=parse_duration, metavar="TIME",
                   help="cut scenarios to this long: 600, 10m, 1h30m")
    e.add_argument("--json", action="store_true", help="print the summaries as JSON")
    r = e.add_argument_group("robust suite")
    r.add_argument("--mount", choices=("right", "auto", "config"), default="right",
                   help="[sensor] mount given to the detector: the true facing (default), "
                        "auto, or whatever --config says")
    r.add_argument("--calibration", choices=("window", "self"), default="window",
                   help="upright from the truth's still window, as --calibrate (default), "
                        "or self-calibration")
    r.add_argument("--jobs", type=parse_count, default=1, metavar="N",
                   help="processes to run days in (default 1)")
    r.add_argument("--minutes", type=parse_positive, metavar="M",
                   help="fix every day's length (default: drawn, 20–90 min)")
    r.add_argument("--in-memory", action="store_true",
                   help="hand the samples to the pipeline directly instead of writing and "
                        "reading each day's CSV (faster; skips the reader's checks)")
    e.set_defaults(func=_evaluate)


def add_unit_options(parser: argparse.ArgumentParser) -> None:
    """--accel-unit / --time-unit / --gyro-unit: read a CSV not in g, seconds and deg/s."""
    parser.add_argument("--accel-unit", default="auto", choices=("auto", "g", "m/s2", "mg"),
                        help="unit of ax..az in a CSV (default auto: g, and a file that "
                             "looks like m/s2 or mg is refused with a hint)")
    parser.add_argument("--time-unit", default="auto", choices=("auto", "s", "ms", "us"),
                        help="unit of t in a CSV (default auto: seconds, and t that steps "
                             "like ms or us is refused with a hint)")
    parser.add_argument("--gyro-unit", default="auto", choices=("auto", "dps", "rad/s"),
                        help="unit of gx..gz in a CSV (default auto: deg/s, and a gyro that "
                             "turns like rad/s is refused with a hint)")


def _jsonable(x: Any) -> Any:
    return float(x) if hasattr(x, "__float__") else str(x)


def _finite(x: Any) -> Any:
    """The record with every non-finite number as null (NaN and Infinity are not JSON)."""
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        x = x.tolist()
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if hasattr(x, "__float__") and not isinstance(x, (bool, int)):
        f = float(x)
        return f if math.isfinite(f) else None
    return x


def json_line(rec: dict[str, Any]) -> str:
    """One record as standard JSON (never NaN or Infinity)."""
    try:
        return json.dumps(rec, default=_jsonable, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):  # NaN or inf somewhere, or a numpy array
        return json.dumps(_finite(rec), default=_jsonable, separators=(",", ":"),
                          allow_nan=False)


def _replay(args: argparse.Namespace) -> int:
    from spinesense.edge.calibration import Calibration, CalibrationError
    from spinesense.edge.replay import (
        WARNING_TYPES,
        RecordingError,
        Units,
        open_recording,
        replay,
        summary,
    )
    from spinesense.parsing import parse_window

    cfg = load_config(args)
    if args.states and not args.jsonl:
        raise CliError("--states needs --jsonl", EXIT_USAGE)
    if args.chunk is not None and args.chunk < 1:
        raise CliError(f"--chunk {args.chunk}: must be at least 1 sample", EXIT_USAGE)
    if args.calibration:
        check_text_input(args.calibration, "--calibration")
    try:
        window = parse_window(args.calibrate) if args.calibrate else None
        stored = Calibration.load(args.calibration) if args.calibration else None
    except (CalibrationError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        recording = open_recording(args.file, Units.from_args(args))
        records = replay(recording, cfg, calibrate=window, calibration=stored,
                         states=args.states, chunk_size=args.chunk)
    except (RecordingError, CalibrationError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except READ_ERRORS as exc:
        raise unreadable(args.file, exc) from None
    if args.jsonl:
        out = sys.stdout
        for rec in records:
            out.write(json_line(rec) + "\n")
        return 0
    cal = next((r for r in records if r["type"] == "calibrated"), None)
    if cal is not None:
        print(f"spinesense: calibrated at t={cal['t']:g} s: upright from {cal['method']}, "
              f"forward axis {cal['forward_method']}, confidence "
              f"{cal.get('confidence', 'not reported')}", file=sys.stderr)
    for rec in records:  # seen even when stdout is piped
        if rec["type"] in WARNING_TYPES:
            print(f"spinesense: warning: {rec['type']} at t={rec['t']:g} s", file=sys.stderr)
    print(summary(records, args.file, calibration=stored, warnings=recording.warnings))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from spinesense.edge.guided import run_guided
    from spinesense.edge.service_cli import check_folder
    from spinesense.outputs import check_output_path, write_text

    cfg = load_config(args)
    # fail now, not after the wearer has sat still and leant forward
    if args.out == "-":
        raise CliError("--out -: the guided steps print to standard output; give a file",
                       EXIT_USAGE)
    if args.out:
        check_output_path(args.out, force=args.force)
        path, force = args.out, args.force
    else:
        check_folder(cfg.state_dir, "device.state_dir")
        path, force = str(cfg.state_dir / "calibration.json"), True  # the device's own: replaced
    cal = run_guided(cfg, emulate=args.emulate, seed=args.seed, interactive=not args.yes,
                     still_s=args.still_s, lean_s=args.lean_s)
    write_text(path, json.dumps(cal.to_dict(), indent=2) + "\n", force=force)
    print(f"calibration saved to {path}: {cal.summary()}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from spinesense.edge.evaluate import format_table, run_one, summarise
    from spinesense.firmware.simulator import SCENARIOS

    cfg = load_config(args)
    if args.suite == "robust":
        args.seeds = 200 if args.count is None else args.count
        args.first_seed = args.seed
        return _evaluate_robust(args, cfg)
    args.count = 3 if args.count is None else args.count
    names = args.scenario or list(DEFAULT_EVAL_SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            raise CliError(f"unknown scenario {n!r}; choose from {', '.join(SCENARIOS)}",
                           EXIT_USAGE)
    rows = []
    t0 = time.perf_counter()
    for name in names:
        results = []
        for seed in range(args.seed, args.seed + args.count):
            res, _ = run_one(name, seed, cfg, accel_only=args.accel_only,
                             duration_s=args.duration, self_calibrate=args.self_calibrate)
            results.append(res)
        rows.append(summarise(name, results))
    if args.json:
        print(json.dumps([r.__dict__ for r in rows], default=_jsonable, indent=1))
    else:
        mode = "accelerometer only" if args.accel_only else "accelerometer + gyro"
        cal = "self-calibrated" if args.self_calibrate else "upright from the still window"
        print(f"{len(names)} scenarios x {args.count} seeds (from {args.seed}), random "
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
