"""`spinesense replay`, `spinesense calibrate` and `spinesense evaluate`."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from spinesense.cli import EXIT_USAGE, CliError, add_common, load_config

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
    p.add_argument("--chunk", type=int, metavar="N",
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
    e.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="seeds per scenario (default 3)")
    e.add_argument("--first-seed", type=int, default=0, metavar="S",
                   help="seeds S, S+1, ... (default 0; use fresh ones for held-out figures)")
    e.add_argument("--accel-only", action="store_true", help="no gyro")
    e.add_argument("--self-calibrate", action="store_true",
                   help="learn upright from the data too (default: the truth's still window, "
                        "as --calibrate would)")
    e.add_argument("--duration", type=float, metavar="S", help="cut scenarios to S seconds")
    e.add_argument("--json", action="store_true", help="print the summaries as JSON")
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
    try:
        window = parse_window(args.calibrate) if args.calibrate else None
        stored = Calibration.load(args.calibration) if args.calibration else None
        recording = open_recording(args.file, Units.from_args(args))
        records = replay(recording, cfg, calibrate=window, calibration=stored,
                         states=args.states, chunk_size=args.chunk)
    except (RecordingError, CalibrationError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
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
