"""`spinesense demo`: a simulated workday through the real pipeline, end to end.

emulated sensor (register level) → edge pipeline → spool → Mosquitto → collector →
InfluxDB → summary and an HTML report. Private servers run under the work folder on
free loopback ports; everything started here is stopped again, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from spinesense.cli import DEFAULT_SEED, CliError, add_common
from spinesense.parsing import parse_duration, parse_seed, parse_speed

DEVICE = "demo-wearer"
DATABASE = "spinesense"
MARKER = ".spinesense-demo"  # marks a work folder the demo may empty again
PROGRESS_EVERY_S = 5.0
CHIPS = ("mpu6050", "mpu6500", "mpu9250", "lsm6ds3", "lsm6dso", "lsm6dsox", "ism330dhcx")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run a simulated workday end to end and print a summary",
        description="Start a private Mosquitto and InfluxDB on free loopback ports, run the "
                    "collector and the edge on an emulated sensor through a simulated workday "
                    "at accelerated time, then query InfluxDB, print a summary and write an "
                    "HTML report. Everything started is stopped again, also on Ctrl-C.")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help="folder for servers, config, "
                   "state and the report (a previous demo's folder is emptied first; any "
                   "other folder must be empty; default: %(default)s)")
    p.add_argument("--duration", default="2h", type=_duration,
                   help="simulated time: 20m, 2h, 1h30m (default: %(default)s)")
    p.add_argument("--speed", type=parse_speed, default=120.0,
                   help="times faster than real time (default: %(default)s)")
    p.add_argument("--chip", default="mpu6050", choices=CHIPS,
                   help="emulated IMU (default: %(default)s)")
    p.add_argument("--scenario", default="workday", help="simulator scenario")
    p.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED,
                   help=f"simulator seed (default: {DEFAULT_SEED})")
    p.add_argument("--keep", action="store_true",
                   help="leave the servers running until Enter is pressed (to explore)")
    add_common(p, config=False)
    p.set_defaults(func=run)


def _duration(text: str) -> str:
    parse_duration(text)  # refused here, with the option's name, not by the edge later
    return text


DEFAULT_WORKDIR = "work/demo"


def prepare_workdir(workdir: Path) -> None:
    """Empty a previous demo's folder (it carries MARKER); refuse any other non-empty one,
    so that a mistyped --workdir never deletes someone's files."""
    if workdir.exists() and not workdir.is_dir():
        raise CliError(f"--workdir {workdir}: is a file; choose a folder", 2)
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise CliError(f"--workdir {workdir}: not empty and not a demo folder; choose "
                           "another --workdir or empty it", 2)
        shutil.rmtree(workdir)
    if not workdir.parent.is_dir():
        raise CliError(f"--workdir {workdir}: folder {workdir.parent} does not exist; "
                       "create it first", 2)
    workdir.mkdir(exist_ok=True)
    (workdir / MARKER).write_text("written by `spinesense demo`; the next demo empties this "
                                  "folder\n")


def stored_counts(influx, device: str = DEVICE, db: str = DATABASE) -> tuple[int, int]:
    """Metrics and events of the device in InfluxDB so far (0 before the first write)."""
    where = f"\"device\" = '{device}' AND time > 0 AND time < now() + 3650d"
    counts = []
    for measurement in ("posture", "posture_event"):
        try:
            rows = influx.rows(f"SELECT count(seq) FROM {measurement} WHERE {where}", db)
        except Exception:  # the database may not answer yet: progress is best effort
            rows = []
        counts.append(int(rows[0]["count"]) if rows else 0)
    return counts[0], counts[1]


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def run_edge_with_progress(argv: list[str], log: Path, influx, duration_s: float,
                           speed: float) -> int:
    """Run `edge run` to its end, printing every few seconds how far the simulated day
    got and what reached InfluxDB (the demo is otherwise silent for a minute)."""
    started = time.monotonic()
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while True:
                try:
                    return proc.wait(PROGRESS_EVERY_S)
                except subprocess.TimeoutExpired:
                    pass
                simulated = (time.monotonic() - started) * speed  # the edge's target pace
                where = (f"~{_clock(simulated)} of {_clock(duration_s)} simulated"
                         if simulated < duration_s else
                         f"{_clock(duration_s)} simulated, the edge is catching up")
                metrics, events = stored_counts(influx)
                print(f"  {where}; stored so far: {metrics} metrics, {events} events",
                      flush=True)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)


@dataclass
class Summary:
    metric_points: int
    event_points: int
    slouch_episodes: int
    minutes_slouched: float
    minutes_sitting: float
    sitting_bouts: int
    sitting_alerts: int
    reminders: int
    breaks: int
    steps: int

    def lines(self) -> list[str]:
        return [
            f"points written     {self.metric_points + self.event_points} "
            f"({self.metric_points} metrics, {self.event_points} events)",
            f"slouch episodes    {self.slouch_episodes}",
            f"minutes slouched   {self.minutes_slouched:.1f}",
            f"minutes sitting    {self.minutes_sitting:.1f}",
            f"sitting bouts      {self.sitting_bouts} (ended by a break, or still open)",
            f"sitting alerts     {self.sitting_alerts} (+{self.reminders} reminders)",
            f"sitting breaks     {self.breaks}",
            f"steps              {self.steps}",
        ]


def write_config(path: Path, workdir: Path, mqtt_port: int, influx_url: str) -> None:
    path.write_text(f"""# written by `spinesense demo`
[device]
id = "{DEVICE}"
state_dir = "{workdir / 'state'}"

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}

[influx]
api = "v1"
url = "{influx_url}"
database = "{DATABASE}"

[collector]
dead_letter_file = "{workdir / 'dead-letters.jsonl'}"
flush_interval_s = 0.2
""")


@contextlib.contextmanager
def background(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process that is always stopped (SIGTERM, then SIGKILL) on the way out."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def query_summary(influx, device: str = DEVICE, db: str = DATABASE) -> Summary:
    """The day's numbers, straight from InfluxDB (wide time bounds: the clock may be ahead)."""
    where = f"\"device\" = '{device}' AND time > 0 AND time < now() + 3650d"

    def one(q: str, key: str) -> float:
        rows = influx.rows(q, db)
        return float(rows[0][key] or 0) if rows else 0.0

    def events(kind: str) -> int:
        return int(one(f"SELECT count(seq) FROM posture_event WHERE {where} "
                       f"AND \"type\" = '{kind}'", "count"))

    return Summary(
        metric_points=int(one(f"SELECT count(seq) FROM posture WHERE {where}", "count")),
        event_points=int(one(f"SELECT count(seq) FROM posture_event WHERE {where}", "count")),
        slouch_episodes=events("slouch_start"),
        minutes_slouched=one(f"SELECT sum(slouch_s) FROM posture WHERE {where}", "sum") / 60,
        minutes_sitting=one(f"SELECT sum(sitting_s) FROM posture WHERE {where}", "sum") / 60,
        sitting_bouts=events("sitting_break") + int(
            one(f"SELECT last(bout_s) FROM posture WHERE {where}", "last") > 0),
        sitting_alerts=events("sitting_alert"),
        reminders=events("sitting_reminder"),
        breaks=events("sitting_break"),
        steps=int(one(f"SELECT sum(steps) FROM posture WHERE {where}", "sum")),
    )


def time_range(influx, device: str = DEVICE, db: str = DATABASE) -> tuple[int, int]:
    """First and last metric timestamp (ms) of the device."""
    where = f"\"device\" = '{device}' AND time > 0 AND time < now() + 3650d"
    first = influx.rows(f"SELECT first(seq) FROM posture WHERE {where}", db)
    last = influx.rows(f"SELECT last(seq) FROM posture WHERE {where}", db)
    if not first or not last:
        raise CliError("no metrics reached InfluxDB; see the logs under the work folder")
    return int(first[0]["time"]), int(last[0]["time"])


def wait_until_stored(influx, timeout: float = 60.0) -> Summary:
    """Poll InfluxDB until the summary has not changed for 3 s (the collector is done)."""
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    while True:
        summary = query_summary(influx)
        now = time.monotonic()
        if summary != last:
            last, stable_since = summary, now
        elif now - stable_since > 3:
            return summary
        if now > deadline:
            return summary
        time.sleep(0.5)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def run(args: argparse.Namespace) -> int:
    from spinesense.devservers import InfluxD, Mosquitto
    from spinesense.firmware.scenarios import SCENARIOS

    if args.scenario not in SCENARIOS:
        raise CliError(f"--scenario {args.scenario!r} is unknown; one of "
                       f"{', '.join(SCENARIOS)}", 2)
    workdir = Path(args.workdir).resolve()
    if args.workdir == DEFAULT_WORKDIR:  # the checkout's git-ignored scratch folder
        workdir.parent.mkdir(exist_ok=True)
    prepare_workdir(workdir)
    exe = [sys.executable, "-m", "spinesense"]
    started = time.monotonic()
    print(f"spinesense demo: work folder {workdir}")
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(Mosquitto(workdir / "mosquitto"))
        influx = stack.enter_context(InfluxD(workdir / "influxdb"))
        influx.create_database(DATABASE)
        print(f"  mosquitto on 127.0.0.1:{broker.port}, influxd on {influx.url}")
        cfg = workdir / "spinesense.toml"
        write_config(cfg, workdir, broker.port, influx.url)
        collector = stack.enter_context(background(
            [*exe, "collector", "run", "-c", str(cfg)], workdir / "collector.log"))
        print(f"  collector running (pid {collector.pid}); edge: {args.scenario} day, "
              f"{args.duration} simulated at {args.speed:g}x on an emulated {args.chip}")
        code = run_edge_with_progress(
            [*exe, "edge", "run", "-c", str(cfg), "--emulate", args.chip,
             "--scenario", args.scenario, "--seed", str(args.seed), "--speed",
             str(args.speed), "--duration", args.duration],
            workdir / "edge.log", influx, parse_duration(args.duration), args.speed)
        if code != 0:
            raise CliError(f"edge run failed with exit code {code}; "
                           f"see {workdir / 'edge.log'}")
        summary = wait_until_stored(influx)
        if collector.poll() is not None:
            raise CliError(f"the collector died; see {workdir / 'collector.log'}")
        print(f"\nA simulated {args.duration} workday, stored in InfluxDB "
              f"({time.monotonic() - started:.0f} s wall time):")
        for line in summary.lines():
            print("  " + line)
        if summary.metric_points == 0 or summary.event_points == 0:
            raise CliError("nothing reached InfluxDB; see the logs under the work folder")
        start_ms, end_ms = time_range(influx)
        report = workdir / "report.html"
        res = subprocess.run([*exe, "report", "-c", str(cfg), "--device", DEVICE,
                              "--from", _iso(start_ms), "--to", _iso(end_ms + 1000),
                              "--out", str(report)], capture_output=True, text=True)
        if res.returncode != 0:
            raise CliError(f"report failed: {res.stderr.strip()}")
        print(f"\nReport: {report}")
        if args.keep:
            print(f"Servers stay up (mosquitto :{broker.port}, influxd {influx.url}, "
                  f"database {DATABASE}); press Enter to stop them.")
            with contextlib.suppress(EOFError):
                input()
    return 0
