"""`spinesense edge run`: the live loop, from the config file (interface 7)."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path
from typing import Any

from spinesense.cli import DEFAULT_SEED, CliError, add_common, add_hidden_alias, load_config
from spinesense.parsing import parse_duration, parse_seed, parse_speed

EMULATED_CHIPS = ("mpu6050", "mpu6500", "mpu9250", "lsm6ds3", "lsm6dso", "lsm6dsox",
                  "ism330dhcx")


def register(sub: argparse._SubParsersAction) -> None:
    edge = sub.add_parser("edge", help="the edge service on the Pi",
                          description="The edge service: sensor → pipeline → spool → MQTT.")
    edge.set_defaults(help_parser=edge)
    edge_sub = edge.add_subparsers(dest="edge_command", metavar="SUBCOMMAND")
    run = edge_sub.add_parser(
        "run", help="run the live loop (systemd runs this)",
        description="Read the IMU, detect slouching and prolonged sitting, buzz, and publish "
                    "events and metrics over MQTT through a durable spool. Stops cleanly on "
                    "SIGTERM/SIGINT (flush, drain, offline status).",
        epilog="Example (a simulated 2 h workday in a minute): spinesense edge run -c "
               "spinesense.toml --emulate mpu6050 --scenario workday --seed 1 --speed 120 "
               "--duration 2h")
    add_common(run)
    run.add_argument("--emulate", metavar="CHIP", choices=EMULATED_CHIPS,
                     help="use a register-level emulated IMU instead of I2C hardware "
                          f"({', '.join(EMULATED_CHIPS)})")
    run.add_argument("--scenario", metavar="NAME",
                     help="with --emulate: the simulated person (e.g. workday); default: a "
                          "sensor lying still")
    run.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED,
                     help=f"simulation seed (default: {DEFAULT_SEED})")
    run.add_argument("--faults", metavar="PLAN",
                     help="with --emulate: inject bus faults at virtual times, e.g. "
                          "'disconnect@600+5,eio@900x20,overflow@1200' (kinds: eio@TxN, "
                          "timeout@TxN, nack@T+S, disconnect@T+S, overflow@T, brownout@T)")
    add_hidden_alias(run, "--fault", dest="faults")
    run.add_argument("--speed", type=parse_speed, default=1.0,
                     help="with --emulate: run virtual time this many times faster than "
                          "real time (default: 1)")
    run.add_argument("--duration", type=parse_duration, metavar="TIME",
                     help="stop after this much (virtual) time, then drain the spool and "
                          "exit: 2h, 90m, 1h30m or seconds (default: run until stopped; with "
                          "--scenario, the scenario's length)")
    run.add_argument("--drain-timeout", type=parse_zero_ok, default=60.0, metavar="TIME",
                     help="after --duration, wait at most this long for the broker to "
                          "acknowledge the spool (default: 60s); exit code 3 if it did not")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.scenario and not args.emulate:
        raise CliError("--scenario needs --emulate CHIP (a simulated person drives an "
                       "emulated sensor)", 2)
    if args.faults and not args.emulate:
        raise CliError("--faults needs --emulate CHIP: faults are injected into the "
                       "emulated bus", 2)
    if args.faults:
        from spinesense.firmware.faults import FaultPlan, FaultSpecError

        try:
            FaultPlan.parse(args.faults)
        except FaultSpecError as exc:
            raise CliError(f"--faults: {exc}", 2) from None
    if args.speed != 1.0 and not args.emulate:
        raise CliError("--speed needs --emulate CHIP: a real sensor runs in real time", 2)
    cfg = load_config(args)
    check_state_paths(cfg)
    if args.scenario:
        from spinesense.firmware.scenarios import SCENARIOS

        if args.scenario not in SCENARIOS:
            raise CliError(f"--scenario {args.scenario!r} is unknown; one of "
                           f"{', '.join(SCENARIOS)}", 2)
    from spinesense.edge.service import EdgeService
    from spinesense.firmware import SensorError

    try:
        service = EdgeService(cfg, emulate=args.emulate, scenario=args.scenario,
                              seed=args.seed, speed=args.speed, duration_s=args.duration,
                              drain_timeout_s=args.drain_timeout, faults=args.faults)
    except SensorError as exc:
        # under systemd, Restart=always tries again until the sensor is plugged in
        raise CliError(f"sensor: {exc}") from None
    except Exception as exc:
        if type(exc).__module__ != "sqlite3":
            raise
        raise CliError(f"spool.path {spool_path(cfg)}: cannot open the spool ({exc}); "
                       "point spool.path at a writable file", 2) from None
    return service.run()


def parse_zero_ok(text: str) -> float:
    return parse_duration(text, allow_zero=True)


_RUN_AS = ("run as the user the service runs as (sudo -u spinesense ...) or point it at a "
           "folder you own")


def check_folder(path: Path, key: str) -> None:
    """Create a folder the config names (it is the command's output), or say in one line
    which key to fix and how."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CliError(f"{key} {path}: is a file, not a folder; point {key} at a "
                       "folder", 2) from None
    except OSError as exc:
        raise CliError(f"{key} {path}: cannot create it ({exc.strerror}); {_RUN_AS}",
                       2) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CliError(f"{key} {path}: not writable by user {getpass.getuser()}; {_RUN_AS}",
                       2)


def spool_path(cfg: Any) -> Path:
    return Path(os.path.expanduser(cfg.spool.path or str(cfg.state_dir / "spool.sqlite3")))


def check_state_paths(cfg: Any) -> None:
    """Before anything starts: the state folder, the spool file and the recordings folder
    can be written (a forgotten `sudo -u spinesense` fails here, in one line)."""
    check_folder(cfg.state_dir, "device.state_dir")
    spool = spool_path(cfg)
    if spool.is_dir():
        raise CliError(f"spool.path {spool}: is a folder; give a file name, e.g. "
                       f"{spool / 'spool.sqlite3'}", 2)
    check_folder(spool.parent, "spool.path's folder")
    if spool.exists() and not os.access(spool, os.R_OK | os.W_OK):
        raise CliError(f"spool.path {spool}: not writable by user {getpass.getuser()}; "
                       f"{_RUN_AS}", 2)
    if cfg.recording.enabled:
        check_folder(Path(os.path.expanduser(cfg.recording.dir or
                                             str(cfg.state_dir / "recordings"))),
                     "recording.dir")
