"""`spinesense replay`, `spinesense calibrate` and `spinesense evaluate`."""

from __future__ import annotations

import argparse
import json
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
    input_path,
    load_config,
    unreadable,
)
from spinesense.parsing import parse_count, parse_duration, parse_seed

DEFAULT_EVAL_SCENARIOS = ("calibration", "slouch_short", "reaches", "recline", "walking",
                          "sitting_long", "mixed")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="run a recording through the edge pipeline",
        description="Replay a DESIGN A1 CSV (.csv or .csv.gz) through the same pipeline as "
                    "the live loop. Without --jsonl, print a summary: slouch episodes, "
                    "minutes slouched, sitting bouts, breaks, and how it calibrated.")
    p.add_argument("file", metavar="FILE",
                   help="recording: t,ax,ay,az,gx,gy,gz (- reads standard input)")
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
    e.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED, metavar="S",
                   help=f"seeds S, S+1, ... (default {DEFAULT_SEED}; use fresh ones for "
                        "held-out figures)")
    e.add_argument("--count", type=parse_count, default=3, metavar="N",
                   help="seeds per scenario (default 3)")
    add_hidden_alias(e, "--first-seed", dest="seed", type=parse_seed)
    add_hidden_alias(e, "--seeds", dest="count", type=parse_count)
    e.add_argument("--accel-only", action="store_true", help="no gyro")
    e.add_argument("--self-calibrate", action="store_true",
                   help="learn upright from the data too (default: the truth's still window, "
                        "as --calibrate would)")
    e.add_argument("--duration", type=parse_duration, metavar="TIME",
                   help="cut scenarios to this long: 600, 10m, 1h30m")
    e.add_argument("--json", action="store_true", help="print the summaries as JSON")
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
    if args.chunk is not None and args.chunk < 1:
        raise CliError(f"--chunk {args.chunk}: must be at least 1 sample", EXIT_USAGE)
    if args.calibration:
        check_text_input(args.calibration, "--calibration")
    try:
        window = parse_window(args.calibrate) if args.calibrate else None
        cal = Calibration.load(args.calibration) if args.calibration else None
    except (CalibrationError, ValueError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        with input_path(args.file) as path:
            records = replay(path, cfg, calibrate=window, calibration=cal,
                             states=args.states, chunk_size=args.chunk)
    except (RecordingError, CalibrationError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except READ_ERRORS as exc:
        raise unreadable(args.file, exc) from None
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
    if args.count < 1:
        raise CliError(f"--count {args.count}: must be at least 1 seed", EXIT_USAGE)
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
