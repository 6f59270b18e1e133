"""The `spinesense` command: one entry point, subcommands registered by each component.

Each component module exposes ``register(subparsers)``, which adds its subcommands and
sets ``func`` (a handler taking the parsed args and returning an exit code). Register
functions import only argparse-level things so that ``--help`` stays fast; handlers import
the heavy modules (numpy, scipy, paho) when they run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from spinesense import __version__
from spinesense.config import Config, ConfigError, load

# Modules whose register() adds subcommands, in the order --help lists them.
COMMAND_MODULES = (
    "spinesense.config_cli",
    "spinesense.firmware.cli",
    "spinesense.firmware.sim_cli",
    "spinesense.edge.cli",
    "spinesense.edge.service_cli",
    "spinesense.collector.cli",
    "spinesense.analysis.cli",
    "spinesense.demo",
)

EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure: printed as one line (no traceback), exit code 1 or 2."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def add_common(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    """Options every subcommand shares: the config file and logging."""
    if config:
        parser.add_argument("--config", "-c", metavar="FILE",
                            help="TOML config file (default: built-in defaults; "
                                 "see `spinesense config show`)")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log verbosity")
    parser.add_argument("--log-format", default="text", choices=("text", "json"),
                        help="text for people, json for journald/log shippers")


def load_config(args: argparse.Namespace) -> Config:
    return load(getattr(args, "config", None))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                      "%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinesense",
        description="Posture trainer: an upper-back IMU on a Raspberry Pi detects slouching "
                    "and prolonged sitting, sends events over MQTT to InfluxDB and Grafana.",
        epilog="Run `spinesense COMMAND --help` for each command's options.")
    parser.add_argument("--version", action="version", version=f"spinesense {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def run_handler(func: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    try:
        return int(func(args) or 0)
    except ConfigError as exc:
        print(f"spinesense: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"spinesense: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`spinesense replay … --jsonl | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a command group given without its subcommand prints that group's help
        (getattr(args, "help_parser", None) or parser).print_help()
        return EXIT_USAGE
    setup_logging(getattr(args, "log_level", "INFO"), getattr(args, "log_format", "text"))
    return run_handler(func, args)


if __name__ == "__main__":
    sys.exit(main())
