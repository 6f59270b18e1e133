"""`spinesense report` and `spinesense tune` (argument parsing only; work is lazy)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spinesense.cli import (
    EXIT_USAGE,
    READ_ERRORS,
    CliError,
    add_common,
    add_output,
    check_text_input,
    input_path,
    load_config,
    unreadable,
)
from spinesense.edge.cli import add_unit_options

log = logging.getLogger("spinesense.analysis")


def register(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "report", help="write a self-contained HTML report of a day (or a range)",
        description="Write one self-contained HTML page (plots embedded as PNG): flexion over "
                    "the day with slouch episodes shaded, a timeline of sitting/standing/"
                    "walking/lying, hourly bars and the day's numbers. The data comes from "
                    "InfluxDB ([influx] in the config) for a device and a date range, or "
                    "from a recording replayed through the pipeline.",
        epilog="examples:\n  spinesense report -c spinesense.toml --device wearer1 "
               "--from 2026-11-25 --to 2026-11-25 --out today.html\n"
               "  spinesense report --recording day.csv.gz --calibrate 0:15 --out day.html",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(rep)
    src = rep.add_mutually_exclusive_group(required=True)
    src.add_argument("--device", "-d", help="device id (InfluxDB tag) to report on")
    src.add_argument("--recording", "-r", metavar="FILE",
                     help="a recording (CSV, DESIGN A1; .csv.gz or .ssrec too; - reads "
                          "standard input) to replay instead")
    rep.add_argument("--from", dest="start", metavar="WHEN",
                     help="start: YYYY-MM-DD (that day's 00:00) or an ISO date-time; "
                          "naive times are UTC (default: 24 h before --to)")
    rep.add_argument("--to", dest="end", metavar="WHEN",
                     help="end: YYYY-MM-DD (the end of that day) or an ISO date-time "
                          "(default: now)")
    rep.add_argument("--calibrate", metavar="START:END",
                     help="with --recording: take upright from this window (seconds in "
                          "the file's time base)")
    rep.add_argument("--tz", default="UTC",
                     help="time zone for clock times, e.g. Europe/Berlin (default: UTC)")
    rep.add_argument("--title", help="page title (default: spinesense daily report)")
    add_output(rep, metavar="FILE.html", required=True,
               help="the HTML file to write (- for standard output)")
    add_unit_options(rep)
    rep.set_defaults(func=_report)

    tune = sub.add_parser(
        "tune", help="sweep slouch/sitting thresholds over labelled recordings",
        description="Replay recordings once through the pipeline's feature stage, then sweep "
                    "the slouch threshold x delay (and the sitting limit x break length) "
                    "through the detectors alone. Per setting: episode precision, recall, "
                    "F1 and alerts per hour. Writes a CSV table, trade-off plots (PNG), "
                    "a summary and a TOML snippet with the recommended setting: the best "
                    "F1 within --alert-budget.",
        epilog="examples:\n  spinesense tune day1.csv.gz day2.csv.gz --truth --out tuning/\n"
               "  spinesense tune day.csv --labels day-labels.csv --alert-budget 4/h "
               "--out tuning/\n"
               "  spinesense tune --from-influx --device wearer1 --from 2026-11-20 "
               "--to 2026-11-25 --out tuning/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(tune)
    tune.add_argument("recordings", nargs="*", metavar="RECORDING",
                      help="recordings (CSV, DESIGN A1; .csv.gz or .ssrec too)")
    lab = tune.add_mutually_exclusive_group()
    lab.add_argument("--labels", nargs="+", metavar="LABELS.csv",
                     help="start,end,label CSV(s), one per recording in order (or one for "
                          "all with --from-influx); labels: slouch (intervals), "
                          "sitting_alert, break")
    lab.add_argument("--truth", nargs="*", metavar="TRUTH.json",
                     help="simulator truth JSON(s), one per recording; without files, "
                          "each recording's <name>.truth.json")
    lab.add_argument("--feedback", nargs="*", metavar="FEEDBACK.jsonl",
                     help="the wearer's feedback as labels (docs/tuning.md): JSON-lines "
                          "sidecars, one per recording; without files, each recording's "
                          "<name>.feedback.jsonl; with --from-influx, the stored feedback")
    tune.add_argument("--thresholds", default="10:30:21", metavar="LO:HI:N",
                      help="slouch thresholds in degrees (default: %(default)s, whole degrees)")
    tune.add_argument("--delays", default="1:10:10", metavar="LO:HI:N",
                      help="slouch delays in seconds (default: %(default)s)")
    tune.add_argument("--sitting-limits", metavar="LO:HI:N",
                      help="sitting limits in minutes to sweep (e.g. 20:60:9); needs "
                           "sitting_alert labels")
    tune.add_argument("--breaks", metavar="LO:HI:N",
                      help="break lengths in seconds to sweep (e.g. 30:120:7)")
    tune.add_argument("--alert-budget", default="6/h", metavar="N/h",
                      help="most slouch alerts per hour you accept (default: %(default)s)")
    tune.add_argument("--calibrate", metavar="START:END",
                      help="upright window (seconds) for every recording; default: the "
                           "truth file's calibration window, else self-calibration")
    tune.add_argument("--from-influx", action="store_true",
                      help="tune from the metrics stored in InfluxDB (no raw recording): "
                           "coarser, the metrics interval is the time resolution")
    tune.add_argument("--device", "-d", help="with --from-influx: the device id")
    tune.add_argument("--from", dest="start", metavar="WHEN", help="with --from-influx")
    tune.add_argument("--to", dest="end", metavar="WHEN", help="with --from-influx")
    tune.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_output(tune, metavar="DIR", required=True,
               help="output folder: created if missing; an existing one must be empty "
                    "(or --force)")
    add_unit_options(tune)
    tune.set_defaults(func=_tune)


def parse_window(text: str | None) -> tuple[float, float] | None:
    """--calibrate START:END, or None; a bad window is a usage error."""
    from spinesense.parsing import BadValue
    from spinesense.parsing import parse_window as parse

    try:
        return parse(text) if text else None
    except BadValue as exc:
        raise CliError(str(exc), 2) from None


def _tz(name: str):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--tz {name!r}: unknown time zone; use an IANA name such as "
                       "Europe/Berlin or UTC", 2) from None


def influx_range(args: argparse.Namespace):
    from datetime import UTC, datetime, timedelta

    from spinesense.analysis.dataset import parse_when

    end = parse_when(args.end, end=True) if args.end else datetime.now(UTC)
    start = parse_when(args.start) if args.start else end - timedelta(days=1)
    return start, end


def _report(args: argparse.Namespace) -> int:
    from spinesense.outputs import check_output_path, write_text

    cfg = load_config(args)
    tz = _tz(args.tz)
    if args.recording and (args.start or args.end):
        raise CliError("--from/--to apply to --device (InfluxDB); a recording is reported "
                       "whole", EXIT_USAGE)
    if args.calibrate and not args.recording:
        raise CliError("--calibrate applies to --recording only", EXIT_USAGE)
    window = parse_window(args.calibrate)
    if args.recording and args.recording != "-" and not Path(args.recording).is_file():
        what = "is a folder, not a recording" if Path(args.recording).is_dir() else \
            "recording not found"
        raise CliError(f"{args.recording}: {what}", EXIT_USAGE)
    check_output_path(args.out, force=args.force)  # before the work, not after it
    from spinesense.analysis import dataset, report
    from spinesense.edge.calibration import CalibrationError
    from spinesense.edge.recordings import Units

    if args.recording:
        try:
            ds = dataset.from_recording(args.recording, cfg, window,
                                        units=Units.from_args(args))
        except CalibrationError as exc:
            raise CliError(f"--calibrate {args.calibrate}: {exc}", EXIT_USAGE) from None
        except READ_ERRORS as exc:  # DataError, RecordingError and what a damaged file raises
            raise unreadable(args.recording, exc) from None
    else:
        try:
            start, end = influx_range(args)
        except dataset.DataError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        try:
            ds = dataset.from_influx(cfg, args.device, start, end)
        except dataset.DataError as exc:
            raise CliError(str(exc)) from None
    page = report.render(ds, cfg, tz=tz, title=args.title)
    write_text(args.out, page, force=args.force)
    s = report.summarize(ds, cfg)
    print(f"{'standard output' if args.out == '-' else args.out}: {s.hours_of_data:.1f} h "
          f"of data, {s.slouch_episodes} slouch episodes, "
          f"{s.minutes_slouched:.0f} min slouched ({s.pct_slouched:.1f} %), "
          f"{s.sedentary_bouts} bouts (longest {s.longest_bout_min:.0f} min), "
          f"{s.breaks} breaks, {s.steps} steps", file=sys.stderr if args.out == "-" else
          sys.stdout)
    return 0


def _tune(args: argparse.Namespace) -> int:
    from spinesense.outputs import output_folder

    cfg = load_config(args)
    if args.out == "-":
        raise CliError("tune writes several files; give --out a folder", EXIT_USAGE)
    if args.recordings.count("-") > 1:
        raise CliError("standard input (-) can be read once: give - at most once",
                       EXIT_USAGE)
    for option, files in (("--labels", args.labels), ("--truth", args.truth),
                          ("--feedback", args.feedback)):
        for path in files or []:
            check_text_input(path, option)
    output_folder(args.out, force=args.force)  # before the sweep, not after it
    from spinesense.analysis import dataset, tune

    stdin = "-" in args.recordings
    try:
        with input_path("-" if stdin else "") as path:
            if stdin:
                args.recordings = [path if r == "-" else r for r in args.recordings]
            return tune.main(args, cfg, progress=not args.no_progress)
    except (tune.TuneError, dataset.DataError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except BrokenPipeError:
        raise
    except READ_ERRORS as exc:
        raise unreadable(" ".join(args.recordings), exc) from None
