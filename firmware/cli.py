"""`spinesense sensor …` and `spinesense record …`: find, read and record the IMU.

Everything runs without hardware through ``--emulate CHIP`` (a register-level emulator on
an smbus2-shaped bus), optionally fed by a simulated scenario and injected faults.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from spinesense.cli import (
    DEFAULT_SEED,
    READ_ERRORS,
    CliError,
    add_common,
    add_hidden_alias,
    add_output,
    load_config,
    unreadable,
)
from spinesense.parsing import parse_bus, parse_duration, parse_seed

log = logging.getLogger(__name__)
CHIPS = ("mpu6050", "mpu6500", "mpu9250", "lsm6ds3", "lsm6dso", "lsm6dsox", "ism330dhcx")


def _emulate_arg(text: str) -> str:
    name = text.split("@")[0].lower()
    if name not in (*CHIPS, "none"):
        raise argparse.ArgumentTypeError(f"{text!r}: emulate one of {', '.join(CHIPS)} "
                                         "(or none for an empty bus), optionally CHIP@0x69")
    return text.lower()


def register(subparsers: argparse._SubParsersAction) -> None:
    sensor = subparsers.add_parser("sensor", help="find and read the IMU over I2C",
                                   description="Find, inspect and read the IMU.")
    sensor.set_defaults(help_parser=sensor)
    sub = sensor.add_subparsers(dest="sensor_command", metavar="SUBCOMMAND")

    probe = sub.add_parser("probe", help="list the IMUs that answer on the bus",
                           description="Probe 0x68, 0x69, 0x6A and 0x6B and identify each "
                                       "chip by its WHO_AM_I register.")
    info = sub.add_parser("info", help="configure the IMU and show its settings and a reading",
                          description="Configure the IMU from [sensor] (ranges, rate, low-pass) "
                                      "and print the settings it accepted and one reading.")
    read = sub.add_parser("read", help="print live readings (averaged per interval)",
                          description="Read the IMU through its FIFO and print one line of "
                                      "averaged acceleration (g) and rate (deg/s) per interval.")
    for p in (probe, info, read):
        add_common(p)
        p.add_argument("--bus", type=parse_bus, help="I2C bus number (default: sensor.bus, 1)")
        p.add_argument("--emulate", metavar="CHIP", type=_emulate_arg,
                       help=f"use an emulated chip instead of hardware: {', '.join(CHIPS)}, "
                            "or none (an empty bus); CHIP@0x69 picks the address")
    read.add_argument("--duration", type=parse_duration, default=5.0,
                      help="how long to read (default 5s)")
    read.add_argument("--every", type=parse_duration, default=0.5,
                      help="print one averaged line per interval (default 0.5s)")
    probe.set_defaults(func=cmd_probe)
    info.set_defaults(func=cmd_info)
    read.set_defaults(func=cmd_read)

    record = subparsers.add_parser(
        "record", help="record raw IMU data (crash-safe native format)",
        description="Record from the IMU (or an emulated one) into a crash-safe native file; "
                    "`record export FILE --out OUT` converts it to the interchange CSV.")
    add_common(record)
    add_output(record, help="recording file to create (e.g. day.ssrec)")
    record.add_argument("--duration", type=parse_duration,
                        help="stop after this long (default: until Ctrl-C)")
    record.add_argument("--bus", type=parse_bus, help="I2C bus number (default: sensor.bus)")
    record.add_argument("--emulate", metavar="CHIP", type=_emulate_arg,
                        help="record from an emulated chip")
    record.add_argument("--scenario", help="feed the emulated chip a simulated scenario "
                                           "(see `spinesense simulate --help`)")
    record.add_argument("--seed", type=parse_seed, default=DEFAULT_SEED,
                        help=f"scenario seed (default {DEFAULT_SEED})")
    record.add_argument("--faults", default="", metavar="PLAN",
                        help="inject faults into the emulated bus, e.g. "
                             "'eio@5x20,disconnect@10+3,overflow@20'")
    add_hidden_alias(record, "--fault", dest="faults")
    record.add_argument("--fast", action="store_true",
                        help="with --emulate: run on a virtual clock as fast as possible")
    record.set_defaults(func=cmd_record, help_parser=record)
    rsub = record.add_subparsers(dest="record_command", metavar="SUBCOMMAND")
    export = rsub.add_parser("export", help="convert a recording to the DESIGN A1 CSV",
                             description="Convert native recordings to the interchange CSV "
                                         "(t,ax,ay,az,gx,gy,gz) that replay and tune read.")
    add_common(export, config=False)
    export.add_argument("file", metavar="FILE", nargs="+",
                        help="recording(s) to convert; several files of one session are "
                             "joined in time order")
    add_output(export, metavar="OUT.csv",
               help="CSV to write (gzip-compressed if it ends in .gz; - for standard output)")
    add_hidden_alias(export, "--csv", dest="out")
    export.set_defaults(func=cmd_export)
    rinfo = rsub.add_parser("info", help="summarise a recording (and check it)",
                            description="Print a recording's header, duration, sample count "
                                        "and gaps, checking every block's CRC.")
    add_common(rinfo, config=False)
    rinfo.add_argument("file", metavar="FILE")
    rinfo.set_defaults(func=cmd_record_info)


# -- helpers ------------------------------------------------------------------------------
def _split_emulate(spec: str) -> tuple[str, int]:
    name, _, addr = spec.partition("@")
    try:
        return name, int(addr, 0) if addr else 0
    except ValueError:
        raise CliError(f"--emulate {spec}: {addr!r} is not an address; write e.g. "
                       f"{name}@0x69", 2) from None


def _sensor_cfg(args: argparse.Namespace) -> Any:
    cfg = load_config(args).sensor
    if getattr(args, "bus", None) is not None:
        cfg.bus = args.bus
    if getattr(args, "emulate", None):
        name, address = _split_emulate(args.emulate)
        if address:
            cfg.address = address
        if cfg.chip not in ("auto", name):
            cfg.chip = "auto"   # the emulated chip decides
    return cfg


def _open(args: argparse.Namespace, *, motion: Any = None, clock: Callable[[], float] =
          time.monotonic, faults: str = "") -> Any:
    from spinesense.firmware.reader import SensorError, open_sensor

    cfg = _sensor_cfg(args)
    emulate = args.emulate.partition("@")[0] if args.emulate else None
    if emulate == "none":
        raise CliError("--emulate none gives an empty bus: nothing to read", 2)
    try:
        return open_sensor(cfg, emulate=emulate, motion=motion, clock=clock,
                           faults=faults or None)
    except SensorError as exc:
        raise CliError(str(exc)) from None
    except ValueError as exc:        # a bad --faults plan
        raise CliError(str(exc), 2) from None


# -- sensor -------------------------------------------------------------------------------
def cmd_probe(args: argparse.Namespace) -> int:
    from spinesense.firmware import probe
    from spinesense.firmware.chips import PROBE_ADDRESSES
    from spinesense.firmware.reader import SensorError

    cfg = _sensor_cfg(args)
    if args.emulate:
        from spinesense.firmware.emulated_chips import make_chip
        from spinesense.firmware.emulator import EmulatedBus

        bus: Any = EmulatedBus(cfg.bus)
        name, address = _split_emulate(args.emulate)
        if name != "none":
            bus.attach(make_chip(name), address or None)
        where = f"emulated I2C bus {cfg.bus}"
    else:
        try:
            bus = probe.open_bus(cfg.bus)
        except SensorError as exc:
            raise CliError(str(exc)) from None
        where = f"I2C bus {cfg.bus} (/dev/i2c-{cfg.bus})"
    try:
        found = probe.scan(bus, PROBE_ADDRESSES)
    finally:
        bus.close()
    if not found:
        raise CliError(probe.nothing_answers(cfg.bus, PROBE_ADDRESSES))
    print(f"{where}:")
    for f in found:
        print("  " + f.line())
    if not any(f.supported for f in found):
        raise CliError("devices answered, but none is a supported IMU (" +
                       ", ".join(probe.NAMES.values()) + ")")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    reader = _open(args)
    with reader:
        d = reader.driver
        for key, value in d.describe().items():
            shown = f"0x{value:02X}" if key == "address" else value
            print(f"{key:>22}: {shown}")
        time.sleep(3.0 / reader.info.rate_hz)   # let the first samples arrive
        acc, gyro = d.read_sample()
        print(f"{'temperature_c':>22}: {d.read_temperature_c():.1f}")
        print(f"{'acc_g':>22}: {acc.round(4).tolist()}  |a| = {float((acc ** 2).sum()) ** 0.5:.4f}")
        if gyro is not None:
            print(f"{'gyro_dps':>22}: {gyro.round(3).tolist()}")
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    import numpy as np

    reader = _open(args)
    cfg = load_config(args).sensor
    end = time.monotonic() + args.duration
    with reader:
        print(f"# {reader.info.chip} at 0x{reader.info.address:02X}, {reader.info.rate_hz:g} Hz")
        print("#        t       ax       ay       az      |a|       gx       gy       gz  sat")
        buf: list[Any] = []
        next_print = time.monotonic() + args.every
        while time.monotonic() < end:
            chunk, events = reader.poll()
            for ev in events:
                print(f"# event {ev}")
            if chunk is not None:
                buf.append(chunk)
            if time.monotonic() >= next_print and buf:
                from spinesense.samples import SampleChunk

                c = SampleChunk.concat(buf)
                buf = []
                a = c.acc.mean(axis=0)
                g = c.gyro.mean(axis=0) if c.gyro is not None else np.full(3, np.nan)
                sat = int(c.saturated.sum()) if c.saturated is not None else 0
                print(f"{c.t[-1]:10.3f} {a[0]:8.4f} {a[1]:8.4f} {a[2]:8.4f} "
                      f"{np.linalg.norm(a):8.4f} {g[0]:8.2f} {g[1]:8.2f} {g[2]:8.2f} {sat:4d}")
                next_print += args.every
            time.sleep(cfg.read_interval_s)
    return 0


# -- record -------------------------------------------------------------------------------
class _VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scenario_motion(args: argparse.Namespace, rate_hz: float) -> Any:
    try:
        from spinesense.firmware.simulator import simulate
    except ImportError:
        raise CliError("--scenario needs the motion simulator (spinesense.firmware."
                       "simulator), which this installation lacks") from None
    try:
        sim = simulate(args.scenario, args.seed, rate_hz=rate_hz, duration_s=args.duration)
    except (KeyError, ValueError) as exc:
        raise CliError(f"--scenario {args.scenario}: {exc}", 2) from None
    return sim.motion()


def cmd_record(args: argparse.Namespace) -> int:
    from spinesense.firmware.recording import RecordingError, RecordingWriter, default_header
    from spinesense.outputs import check_output_path

    if not args.out:
        raise CliError("record needs --out FILE (or `spinesense record export FILE --out "
                       "OUT` to convert a recording)", 2)
    if args.out == "-":
        raise CliError("record --out -: a recording is written to a file as it grows "
                       "(crash-safe); give a file name, or export it with `record export "
                       "FILE --out -`", 2)
    if (args.fast or args.scenario or args.faults) and not args.emulate:
        raise CliError("--fast, --scenario and --faults need --emulate CHIP", 2)
    if args.fast and args.duration is None:
        raise CliError("--fast needs --duration (a virtual clock never reaches Ctrl-C)", 2)
    cfg = load_config(args)
    check_output_path(args.out, force=args.force)
    motion = _scenario_motion(args, cfg.sensor.rate_hz) if args.scenario else None
    clock: Any = _VirtualClock() if args.fast else time.monotonic
    reader = _open(args, motion=motion, clock=clock, faults=args.faults)
    header = default_header(reader.info, device=cfg.device.id,
                            source=(f"emulated {reader.info.chip}" if args.emulate
                                    else f"/dev/i2c-{cfg.sensor.bus}"),
                            scenario=args.scenario, seed=args.seed if args.scenario else None,
                            # maps the monotonic t column to wall time (if the clock was set)
                            clock_anchor={"t": clock(), "unix_s": round(time.time(), 3),
                                          "virtual": bool(args.fast)})
    try:
        writer = RecordingWriter(args.out, header, overwrite=args.force, fsync=not args.fast)
    except RecordingError as exc:
        reader.close()
        raise CliError(str(exc), 2) from None
    stop = {"now": False}

    def on_term(_sig: int, _frame: Any) -> None:
        stop["now"] = True

    old = signal.signal(signal.SIGTERM, on_term)
    interval = cfg.sensor.read_interval_s
    start = clock()
    deadline = time.monotonic()
    next_report = deadline + 60.0
    events = 0
    try:
        with reader, writer:
            while not stop["now"]:
                if args.duration is not None and clock() - start >= args.duration:
                    break
                if args.fast:
                    clock.now += interval
                chunk, evs = reader.poll()
                events += len(evs)
                for ev in evs:
                    log.info("sensor event: %s", ev)
                writer.write(chunk, evs)
                if not args.fast and time.monotonic() >= next_report:
                    next_report += 60.0
                    log.info("recorded %d samples so far (%.0f s), %d gaps", writer.samples,
                             clock() - start, reader.stats.gaps)
                if not args.fast:
                    deadline += interval
                    time.sleep(max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
    st = reader.stats
    print(f"recorded {writer.samples} samples ({writer.samples / reader.info.rate_hz:.1f} s "
          f"at {reader.info.rate_hz:g} Hz) to {args.out}: {events} sensor events, "
          f"{st.gaps} gaps ({st.gap_s:.2f} s), {st.i2c_errors} I2C errors", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from spinesense.firmware.recording import RecordingError, export_csv

    if not args.out:
        raise CliError("record export needs --out OUT.csv (or --out - for standard output)",
                       2)
    try:
        rows, rec = export_csv(args.file, args.out, force=args.force)
    except RecordingError as exc:
        raise CliError(str(exc), 2) from None
    except BrokenPipeError:
        raise
    except READ_ERRORS as exc:
        raise unreadable(" ".join(args.file), exc) from None
    for note in rec.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {rows} rows to {'standard output' if args.out == '-' else args.out}",
          file=sys.stderr)
    return 0


def cmd_record_info(args: argparse.Namespace) -> int:
    import json

    from spinesense.firmware.recording import RecordingError, read_recording

    try:
        rec = read_recording(args.file)
    except RecordingError as exc:
        raise CliError(str(exc), 2) from None
    except READ_ERRORS as exc:
        raise unreadable(args.file, exc) from None
    c = rec.chunk
    span = float(c.t[-1] - c.t[0]) if len(c) else 0.0
    gaps = [e for e in rec.events if e.get("type") == "gap"]
    print(json.dumps(rec.header, indent=2, sort_keys=True))
    print(f"samples: {len(c)} over {span:.1f} s in {rec.blocks} blocks; "
          f"{len(gaps)} gaps ({sum(e.get('duration_s', 0) for e in gaps):.2f} s); "
          f"{int(c.saturated.sum()) if c.saturated is not None else 0} saturated")
    for note in rec.notes:
        print(f"note: {note}")
    return 0
