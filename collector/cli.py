"""`spinesense collector run`: the MQTT → InfluxDB collector as a long-running service."""

from __future__ import annotations

import argparse
import os
import signal

from spinesense.cli import add_common

STOP_POLL_S = 0.2  # how often the main loop looks at the stop signals


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
    import faulthandler
    import time

    from spinesense.cli import CliError, load_config
    from spinesense.collector.service import Collector

    cfg = load_config(args)
    if args.instance and not all(c.isalnum() or c in "-_" for c in args.instance):
        raise CliError(f"--instance {args.instance!r}: use letters, digits, '-' or '_'", 2)
    stop = StopSignals().install()
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: stacks to the log
    collector = Collector(cfg, instance=args.instance).start()
    try:
        while not stop.requested:
            time.sleep(STOP_POLL_S)
    finally:
        collector.stop()
    return 0


class StopSignals:
    """SIGTERM/SIGINT as a plain flag, the only thing a signal handler may safely touch.

    A handler runs in the main thread between two bytecodes, so one that takes a lock
    (``threading.Event.set``) deadlocks if the main thread held that lock at the time,
    and the service never stops. A second signal exits at once: nothing is lost, since
    the broker redelivers every message not yet acknowledged."""

    def __init__(self) -> None:
        self.count = 0

    @property
    def requested(self) -> bool:
        return self.count > 0

    def install(self) -> StopSignals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"second stop signal: exiting without flushing; the broker "
                        b"redelivers what was not acknowledged\n")
            os._exit(128 + signum)
