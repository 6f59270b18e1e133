"""The `spinesense` command: one entry point, subcommands registered by each component.

Each component module exposes ``register(subparsers)``, which adds its subcommands and
sets ``func`` (a handler taking the parsed args and returning an exit code). Register
functions import only argparse-level things so that ``--help`` stays fast; handlers import
the heavy modules (numpy, scipy, paho) when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

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
# One default seed for every command that simulates (simulate, record, calibrate, edge run,
# evaluate, demo), so the same command line without --seed always means the same person.
DEFAULT_SEED = 1
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Defaults of the options every command shares (applied after parsing: the options may
# come before or after the subcommand, see add_common).
COMMON_DEFAULTS: dict[str, Any] = {"config": None, "verbose": 0, "quiet": 0,
                                   "log_level": "INFO", "log_format": "text"}


class CliError(Exception):
    """An expected failure: printed as one line (no traceback), exit code 1 or 2."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r}: use one of "
                                         f"{', '.join(x.lower() for x in LOG_LEVELS)}")
    return level


def add_common(parser: argparse.ArgumentParser, *, config: bool = True) -> None:
    """Options every command shares: the config file and logging.

    They are added to the top-level parser too, so ``spinesense -c x.toml -v replay F``
    and ``spinesense replay F -c x.toml -v`` mean the same. Their defaults are
    ``SUPPRESS`` here (a subcommand must not overwrite what came before it) and filled
    in from COMMON_DEFAULTS after parsing."""
    quiet = argparse.SUPPRESS
    parser.set_defaults(takes_config=config, command_prog=parser.prog)
    if config:
        parser.add_argument("--config", "-c", metavar="FILE", default=quiet,
                            help="TOML config file (default: built-in defaults; "
                                 "see `spinesense config show`)")
    parser.add_argument("--verbose", "-v", action="count", default=quiet,
                        help="more log output (debug)")
    parser.add_argument("--quiet", "-q", action="count", default=quiet,
                        help="less log output: warnings and errors (-qq: errors only)")
    parser.add_argument("--log-level", type=_log_level, default=quiet, metavar="LEVEL",
                        help="log verbosity: debug, info, warning or error, any case "
                             "(default: info)")
    parser.add_argument("--log-format", default=quiet, choices=("text", "json"),
                        help="text for people, json for journald/log shippers")


def add_hidden_alias(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                     *flags: str, dest: str, **kwargs: Any) -> None:
    """An old spelling of an option, still accepted but not shown in --help."""
    parser.add_argument(*flags, dest=dest, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                        **kwargs)


def add_output(parser: argparse.ArgumentParser, *, metavar: str = "FILE", help: str,
               required: bool = False) -> None:
    """``-o/--out`` and ``--force``: the one spelling of "write the result here"."""
    parser.add_argument("--out", "-o", metavar=metavar, required=required, help=help)
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing output (default: refuse)")


def log_level(args: argparse.Namespace) -> str:
    """--log-level, moved one step per -v (down) or -q (up)."""
    index = LOG_LEVELS.index(args.log_level) + args.quiet - args.verbose
    return LOG_LEVELS[max(0, min(len(LOG_LEVELS) - 1, index))]


@contextlib.contextmanager
def input_path(path: str) -> Iterator[str]:
    """A file to read, as given; ``-`` is standard input, saved to a temporary file whose
    name says what it holds (gzip, a native recording or a CSV) so every reader takes it."""
    if path != "-":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="spinesense-stdin-") as tmp:
        target = Path(tmp) / "stdin"
        with target.open("wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh, 1 << 20)
        with target.open("rb") as fh:
            head = fh.read(8)
        suffix = ".csv.gz" if head[:2] == b"\x1f\x8b" else ".ssrec" if head == b"SPINEREC" \
            else ".csv"
        yield str(target.rename(target.with_name("stdin" + suffix)))


# What reading a damaged or foreign file can raise: decoding (ValueError, UnicodeError),
# gzip (OSError, EOFError, zlib.error), the file system (OSError).
READ_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, zlib.error)


def unreadable(path: str, exc: BaseException) -> CliError:
    """A file that cannot be read, as one line naming it (exit 2: an input error)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        text = describe_os_error(exc)[0]
    else:
        text = str(exc) or type(exc).__name__
    shown = "standard input" if path == "-" else path
    if shown not in text and not text.startswith(str(Path(shown))):
        text = f"{shown}: {text}"
    return CliError(text, EXIT_USAGE)


def check_text_input(path: str, option: str) -> None:
    """A small text input (labels, truth, a calibration) that is missing, a folder or not
    UTF-8: one line naming the option and the file, before any work starts."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{option} {path}: is a folder; give a file", EXIT_USAGE)
    try:
        p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CliError(f"{option} {path}: no such file", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"{option} {path}: cannot read ({exc.strerror})", EXIT_USAGE) from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{option} {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                       f"at offset {exc.start}); is it the right file?", EXIT_USAGE) from None


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


class Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line, exit code 2 (subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="spinesense",
        description="Posture trainer: an upper-back IMU on a Raspberry Pi detects slouching "
                    "and prolonged sitting, sends events over MQTT to InfluxDB and Grafana.",
        epilog="Run `spinesense COMMAND --help` for each command's options. -c, -v, -q, "
               "--log-level and --log-format may come before or after the command.")
    parser.add_argument("--version", action="version", version=f"spinesense {__version__}")
    add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


_INPUT_ERRNOS = {errno.ENOENT: "no such file or folder", errno.EACCES: "permission denied",
                 errno.EPERM: "permission denied", errno.EISDIR: "is a folder, not a file",
                 errno.ENOTDIR: "a part of the path is not a folder",
                 errno.EEXIST: "already exists", errno.EROFS: "read-only file system",
                 errno.ENOSPC: "no space left on the device"}


def describe_os_error(exc: OSError) -> tuple[str, int]:
    """One line for an OSError: the file, what is wrong, and the exit code (2 for a path
    the user can fix, 1 otherwise)."""
    what = _INPUT_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    name = exc.filename if exc.filename is not None else ""
    fix = {errno.EACCES: "; run as a user who may write there (on the Pi: sudo -u "
                         "spinesense ...) or choose another path",
           errno.EPERM: "; run as a user who may write there or choose another path",
           errno.EISDIR: "; give a file name", errno.ENOENT: "; check the path"}
    text = f"{name}: {what}" if name else f"{what}"
    code = EXIT_USAGE if exc.errno in _INPUT_ERRNOS else 1
    return text + fix.get(exc.errno or 0, ""), code


def run_handler(func: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    """Run a command; every failure ends as one line on stderr and an exit code."""
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
    except OSError as exc:
        text, code = describe_os_error(exc)
        print(f"spinesense: {text}", file=sys.stderr)
        return code
    except (EOFError, UnicodeError) as exc:
        print(f"spinesense: input is truncated or not text ({exc}); check the file",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # the last line of defence: never a traceback
        if type(exc).__module__ in ("sqlite3", "zlib"):
            print(f"spinesense: {type(exc).__module__}: {exc}", file=sys.stderr)
            return 1
        logging.getLogger("spinesense").debug("internal error", exc_info=True)
        print(f"spinesense: internal error: {type(exc).__name__}: {exc} (a bug: please "
              "report it with the traceback that -v prints)", file=sys.stderr)
        return 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line and fill in the shared options' defaults."""
    args = build_parser().parse_args(argv)
    for key, value in COMMON_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a command group given without its subcommand prints that group's help
        (getattr(args, "help_parser", None) or build_parser()).print_help()
        return EXIT_USAGE
    setup_logging(log_level(args), args.log_format)
    if args.config is not None and not getattr(args, "takes_config", True):
        print(f"spinesense: -c {args.config}: `{args.command_prog}` takes no config file; "
              "leave -c out", file=sys.stderr)
        return EXIT_USAGE
    return run_handler(func, args)


if __name__ == "__main__":
    sys.exit(main())
