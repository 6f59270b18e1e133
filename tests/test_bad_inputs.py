"""Every subcommand, fed a corpus of bad inputs, fails in one line with exit code 1 or 2.

The commands are enumerated from the parser, so a new subcommand is covered as soon as it
is registered. Each command's cases run in one subprocess (a small driver calls
``spinesense.cli.main`` for each argument list, so the imports are paid once); the cases
for an unwritable folder run in a second one as the ``nobody`` user when the tests run as
root (root may write anywhere).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spinesense import parsing
from spinesense.cli import build_parser

AS_ROOT = os.geteuid() == 0

# For each kind of slot, the bad values (names of corpus entries, see `corpus`).
BAD_CONFIGS = ("binary", "latin1", "folder", "missing", "header_only")
BAD_DATA = ("empty", "binary", "latin1", "folder", "missing", "header_only")
BAD_FILE_OUTPUTS = ("folder", "missing_parent", "existing", "unwritable")
BAD_FOLDER_OUTPUTS = ("existing", "missing_parent", "nonempty_folder", "unwritable")
BAD_VALUES = ("nan", "inf", "abc", "10x", "-1")

INPUT_OPTIONS = {"config", "recording", "calibration", "labels", "truth"}
FILE_OUTPUT_OPTIONS = {"out", "plot"}
FOLDER_OUTPUTS = {("tune", "out"), ("demo", "workdir")}


def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                  ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (command path, parser) that runs something (has a handler)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub.get_default("func") is not None:
                    yield (*path, name), sub
                yield from leaf_commands(sub, (*path, name))


COMMANDS = {" ".join(p): sub for p, sub in leaf_commands(build_parser())}


@pytest.fixture(scope="module")
def corpus() -> Iterator[Path]:
    """Bad (and a few good) files in a folder the `nobody` user can read too."""
    from spinesense.cli import main
    from spinesense.firmware.simulator import simulate

    base = Path(tempfile.mkdtemp(prefix="spinesense-corpus-"))
    base.chmod(0o755)
    (base / "empty").write_bytes(b"")
    (base / "binary").write_bytes(bytes(range(256)) * 8)
    (base / "latin1").write_bytes('[device]\nid = "café"\n'.encode("latin-1"))
    (base / "header_only").write_text("t,ax,ay,az,gx,gy,gz\n")
    (base / "existing").write_text("someone's file\n")
    (base / "labels.csv").write_text("start,end,label\n30,50,slouch\n")
    (base / "folder").mkdir()
    (base / "folder" / "keep.txt").write_text("someone's file\n")
    (base / "ro").mkdir(mode=0o555)
    (base / "ro").chmod(0o555)
    (base / "out").mkdir(mode=0o777)
    (base / "out").chmod(0o777)
    (base / "good.toml").write_text(
        f'[device]\nstate_dir = "{base / "out" / "state"}"\n[mqtt]\nport = 9\n'
        '[influx]\nurl = "http://127.0.0.1:9"\n')
    simulate("mixed", 1, duration_s=120).write(base / "good.csv")
    assert main(["record", "--emulate", "mpu6050", "--fast", "--duration", "2s",
                 "-q", "-o", str(base / "good.ssrec")]) == 0
    with gzip.open(base / "good.csv.gz", "wb") as fh:
        fh.write((base / "good.csv").read_bytes())
    for p in base.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    yield base
    shutil.rmtree(base)


class Cases:
    """Builds argument lists: good fillers everywhere but the slot under test."""

    def __init__(self, base: Path, path: tuple[str, ...]):
        self.base, self.path, self.n = base, path, 0

    def fresh(self, suffix: str = ".csv") -> str:
        self.n += 1
        return str(self.base / "out" / f"{'-'.join(self.path)}-{self.n}{suffix}")

    def fillers(self) -> dict[str, list[str]]:
        """Values that get each command past argparse to the slot under test, quickly."""
        b, cmd = self.base, " ".join(self.path)
        good = {"config": str(b / "good.toml")}
        extra: dict[str, dict[str, str]] = {
            "replay": {"file": str(b / "good.csv")},
            "tune": {"recordings": str(b / "good.csv"), "out": self.fresh(""),
                     "labels": str(b / "labels.csv"), "--no-progress": ""},
            "report": {"recording": str(b / "good.csv"), "out": self.fresh(".html")},
            "record export": {"file": str(b / "good.ssrec"), "out": self.fresh()},
            "record info": {"file": str(b / "good.ssrec")},
            "config check": {"file": str(b / "good.toml")},
            "config show": {},
            "simulate": {"out": self.fresh(), "--duration": "1m"},
            "record": {"out": self.fresh(".ssrec"), "--emulate": "mpu6050", "--fast": "",
                       "--duration": "1s"},
            "calibrate": {"--emulate": "mpu6050", "--yes": "", "--still-s": "3",
                          "--lean-s": "3"},
            "demo": {"workdir": self.fresh("")},
        }
        return {**good, **extra.get(cmd, {})}

    def argv(self, parser: argparse.ArgumentParser, slot: str, value: str) -> list[str]:
        values = {**self.fillers(), slot: value}
        for group in parser._mutually_exclusive_groups:  # the slot replaces its rivals
            dests = {a.dest for a in group._group_actions}
            if slot in dests:
                values = {k: v for k, v in values.items() if k == slot or k not in dests}
        positional, options = [], []
        for action in parser._actions:
            if action.dest not in values or action.help == argparse.SUPPRESS:
                continue
            if action.option_strings:
                options += [action.option_strings[0], values[action.dest]]
            else:
                positional.append(values[action.dest])
        flags = [x for k, v in values.items() if k.startswith("--") for x in (k, v) if x]
        return [*self.path, *positional, *options, *flags]


def bad_path(base: Path, name: str, suffix: str) -> str:
    return {"missing": str(base / f"missing{suffix}"),
            "missing_parent": str(base / "no-such-folder" / f"x{suffix}"),
            "unwritable": str(base / "ro" / f"x{suffix}"),
            "nonempty_folder": str(base / "folder")}.get(name, str(base / name))


def cases_for(base: Path, cmd: str, unwritable: bool) -> list[list[str]]:
    path, parser = tuple(cmd.split()), COMMANDS[cmd]
    cases = Cases(base, path)
    out: list[list[str]] = []
    if not unwritable:
        out.append([*path, "--no-such-option"])
    for action in parser._actions:
        dest = action.dest
        if action.help == argparse.SUPPRESS or isinstance(
                action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        is_config = dest == "config" or cmd == "config check"
        if not action.option_strings or dest in INPUT_OPTIONS:
            if unwritable:
                continue
            for bad in BAD_CONFIGS if is_config else BAD_DATA:
                out.append(cases.argv(parser, dest, bad_path(base, bad, ".csv")))
        elif dest in FILE_OUTPUT_OPTIONS or (path[0], dest) in FOLDER_OUTPUTS:
            folder = (path[0], dest) in FOLDER_OUTPUTS
            suffix = "" if folder else ".png" if dest == "plot" else ".csv"
            for bad in BAD_FOLDER_OUTPUTS if folder else BAD_FILE_OUTPUTS:
                if (bad == "unwritable") == unwritable:
                    out.append(cases.argv(parser, dest, bad_path(base, bad, suffix)))
    return out


DRIVER = r"""
import contextlib, io, json, os, sys, traceback
cases, result_file = json.load(open(sys.argv[1])), sys.argv[2]
from spinesense.cli import main
results = []
for argv in cases:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:
            code = "uncaught"
            err.write(traceback.format_exc())
    results.append({"argv": argv, "code": code, "err": err.getvalue()})
with open(result_file, "w") as fh:
    json.dump(results, fh)
"""


def run_cases(base: Path, cases: list[list[str]], as_nobody: bool, tag: str
              ) -> list[dict]:
    case_file = base / "out" / f"cases-{tag}.json"
    result_file = base / "out" / f"results-{tag}.json"
    case_file.write_text(json.dumps(cases))
    case_file.chmod(0o644)
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    res = subprocess.run([*(nobody if as_nobody else []), sys.executable, "-c", DRIVER,
                          str(case_file), str(result_file)], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=base / "out")
    assert res.returncode == 0 and result_file.exists(), res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    return json.loads(result_file.read_text())


def check(results: list[dict]) -> None:
    problems = []
    for r in results:
        lines = r["err"].strip().splitlines()
        if r["code"] not in (1, 2) or len(lines) != 1 or "Traceback" in r["err"] \
                or "internal error" in r["err"]:
            problems.append(f"spinesense {' '.join(r['argv'])}\n  -> exit {r['code']}: "
                            f"{r['err'].strip()[:1500]}")
    assert not problems, f"{len(problems)} of {len(results)} cases:\n" + "\n".join(problems)


SHARDS = 4  # a few subprocesses (imports are the cost), spread over the xdist workers


def _has_output_slot(cmd: str) -> bool:
    return any(a.dest in FILE_OUTPUT_OPTIONS or (cmd.split()[0], a.dest) in FOLDER_OUTPUTS
               for a in COMMANDS[cmd]._actions)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_command_fails_in_one_line_on_bad_files(corpus: Path, shard: int) -> None:
    commands = sorted(COMMANDS)[shard::SHARDS]
    cases = [c for cmd in commands for c in cases_for(corpus, cmd, unwritable=False)]
    check(run_cases(corpus, cases, False, f"shard{shard}"))
    assert not (corpus / "no-such-folder").exists(), "a missing parent folder was created"
    assert (corpus / "existing").read_text() == "someone's file\n", "overwritten"
    assert (corpus / "folder" / "keep.txt").exists()
    unwritable = [c for cmd in commands if _has_output_slot(cmd)
                  for c in cases_for(corpus, cmd, unwritable=True)]
    if not unwritable:
        return
    if AS_ROOT and not shutil.which("setpriv"):
        pytest.fail("running as root: setpriv (util-linux) is needed to test unwritable "
                    "folders as the `nobody` user")
    check(run_cases(corpus, unwritable, AS_ROOT, f"shard{shard}-ro"))
    assert list((corpus / "ro").iterdir()) == []


def test_the_corpus_covers_every_command(corpus: Path) -> None:
    """Each command gets at least a usage error and, where it reads or writes a file, the
    bad files for that slot (so the corpus test cannot silently skip a command)."""
    for cmd, parser in COMMANDS.items():
        cases = cases_for(corpus, cmd, unwritable=False)
        files = [a for a in parser._actions if (not a.option_strings and
                 not isinstance(a, argparse._SubParsersAction)) or a.dest in INPUT_OPTIONS]
        assert len(cases) >= 1 + len(BAD_CONFIGS) * bool(files), cmd
        if _has_output_slot(cmd):
            assert cases_for(corpus, cmd, unwritable=True), cmd


@pytest.mark.parametrize("cmd", sorted(COMMANDS))
def test_bad_numbers_and_durations(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Every option with a typed value refuses nan, inf, words, units it does not know and
    (where a negative makes no sense) -1, in one line, exit 2, before any work starts."""
    from spinesense.cli import main

    typed = [a for a in COMMANDS[cmd]._actions if a.option_strings and callable(a.type)]
    for action in typed:
        for value in BAD_VALUES:
            if value == "-1" and action.type is parsing.parse_number:
                continue  # a time offset may be negative
            with pytest.raises(SystemExit) as info:
                main([*cmd.split(), f"{action.option_strings[0]}={value}"])
            err = capsys.readouterr().err.strip()
            assert info.value.code == 2, (cmd, action.option_strings, value)
            assert len(err.splitlines()) == 1 and action.option_strings[0] in err, err
