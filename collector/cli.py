"""`spinesense collector run`: the MQTT → InfluxDB collector as a long-running service."""

from __future__ import annotations

import argparse

from spinesense.cli import add_common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("collector", help="MQTT → InfluxDB collector (server side)",
                            description="Store the devices' events, metrics and status in "
                                        "InfluxDB.")
    parser.set_defaults(help_parser=parser)
    csub = parser.add_subparsers(dest="collector_command", metavar="SUBCOMMAND")
    run = csub.add_parser(
        "run", help="run the collector until SIGTERM/SIGINT",
        description="Subscribe (QoS 1, persistent session, shared subscription group "
                    "[collector] group) to <prefix>/+/{events,metrics,status}, validate, "
                    "write batches to InfluxDB and acknowledge each message only once it "
                    "is stored. Run several with distinct --instance names to split the "
                    "load.")
    add_common(run)
    run.add_argument("--instance", metavar="NAME", default="",
                     help="name of this collector: MQTT client id suffix and the `instance` "
                          "tag of its self-metrics (default: the host name)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from spinesense.cli import CliError, load_config
    from spinesense.collector.service import Collector

    cfg = load_config(args)
    if args.instance and not all(c.isalnum() or c in "-_" for c in args.instance):
        raise CliError(f"--instance {args.instance!r}: use letters, digits, '-' or '_'", 2)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    collector = Collector(cfg, instance=args.instance).start()
    try:
        while not done.wait(1.0):
            pass
    finally:
        collector.stop()
    return 0
