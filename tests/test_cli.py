"""`spinesense --help` and every subcommand's --help say what they do."""

from __future__ import annotations

import argparse
import subprocess
import sys

from spinesense.cli import COMMAND_MODULES, build_parser


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name)
                yield from _walk(sub, (*path, name))


def test_every_component_registers_commands() -> None:
    import importlib
    for name in COMMAND_MODULES:
        assert callable(importlib.import_module(name).register), name


def test_every_subcommand_has_help_text() -> None:
    commands = list(_walk(build_parser()))
    names = {" ".join(p) for p, _, _ in commands}
    for required in ("config show", "config check", "sensor probe", "simulate", "record",
                     "replay", "calibrate", "evaluate", "edge run", "collector run",
                     "report", "tune", "demo"):
        assert required in names, f"missing command: spinesense {required}"
    for path, sub, short in commands:
        assert short, f"`spinesense {' '.join(path)}` has no one-line help in the list"
        assert sub.description and len(sub.description) > 20, \
            f"`spinesense {' '.join(path)} --help` has no description"


def test_help_runs_for_every_command() -> None:
    for path, _, _ in [((), None, None), *_walk(build_parser())]:
        res = subprocess.run([sys.executable, "-m", "spinesense", *path, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, (path, res.stderr)
        assert "usage: spinesense" in res.stdout


def test_no_command_prints_help_and_fails() -> None:
    res = subprocess.run([sys.executable, "-m", "spinesense"], capture_output=True, text=True)
    assert res.returncode == 2 and "COMMAND" in res.stdout


def test_a_closed_pipe_is_not_a_crash(tmp_path) -> None:
    """`spinesense replay FILE --jsonl | head -1` ends quietly."""
    from spinesense.firmware.simulator import simulate
    sim = simulate("mixed", 1, duration_s=3600, mounting="normal")
    path = tmp_path / "s.csv"
    sim.write(path)
    res = subprocess.run(f"{sys.executable} -m spinesense replay {path} --jsonl --states | head -1",
                         shell=True, capture_output=True, text=True, timeout=120)
    assert res.stdout.count("\n") == 1
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
