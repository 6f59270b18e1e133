"""`spinesense config show|check`: print the effective config, validate a file."""

from __future__ import annotations

import argparse

from spinesense.cli import add_common, add_output, load_config
from spinesense.config import load
from spinesense.config_render import to_toml


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show the effective config or check a config file",
                       description="Show the effective configuration (defaults merged with a "
                                   "file and secrets from the environment) or validate a file.")
    p.set_defaults(help_parser=p)
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    show = csub.add_parser("show", help="print the effective config as commented TOML",
                           description="Print the effective config as TOML, with each key "
                                       "documented. A secret that is set is shown as a "
                                       "comment, never as a value.")
    add_common(show)
    show.add_argument("--no-docs", action="store_true", help="omit the comment lines")
    add_output(show, help="write the TOML to this file (default: standard output)")
    show.set_defaults(func=_show)
    check = csub.add_parser("check", help="validate a config file",
                            description="Validate a config file: exit 0 and print 'ok', or "
                                        "print the first problem (key, what is wrong, what is "
                                        "allowed) and exit 2.")
    check.add_argument("file", help="the TOML file to check (- reads standard input)")
    add_common(check, config=False)
    check.set_defaults(func=_check)


def _show(args: argparse.Namespace) -> int:
    from spinesense.outputs import check_output_path, write_text

    check_output_path(args.out or "-", force=args.force)
    write_text(args.out or "-", to_toml(load_config(args), with_docs=not args.no_docs) + "\n",
               force=args.force)
    return 0


def _check(args: argparse.Namespace) -> int:
    load(args.file)
    print(f"{'<stdin>' if args.file == '-' else args.file}: ok")
    return 0
