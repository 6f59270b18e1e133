"""One test per case of issue 13: one-line errors, safe output files, CLI conventions."""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from spinesense.cli import DEFAULT_SEED, build_parser, main
from spinesense.firmware.simulator import simulate

EXE = [sys.executable, "-m", "spinesense"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rec") / "day.csv"
    simulate("mixed", 1, duration_s=600).write(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


# -- one-line errors (the tracebacks listed in issue 13) -----------------------------------
@pytest.mark.parametrize(("content", "fragment"), [
    (b"t,ax,ay,az,gx,gy,gz\n", "no data rows"),
    (b"", "empty file"),
    (bytes(range(256)) * 4, "header"),
])
def test_report_on_a_bad_csv(tmp_path: Path, capsys, content: bytes, fragment: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    code, _, err = run(capsys, "report", "--recording", str(bad), "--out",
                       str(tmp_path / "r.html"))
    assert code == 2 and fragment in one_line(err) and str(bad) in err
    assert not (tmp_path / "r.html").exists()


def test_report_on_a_truncated_gzip_is_one_line(tmp_path: Path, recording: Path,
                                                capsys) -> None:
    """Whatever the reader makes of it (an error, or what is readable), never a traceback."""
    data = gzip.compress(recording.read_bytes())
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes(data[: len(data) // 2])
    code, _, err = run(capsys, "report", "--recording", str(bad), "--out",
                       str(tmp_path / "r.html"))
    assert "Traceback" not in err and "internal error" not in err
    if code != 0:
        assert code == 2 and str(bad) in one_line(err)


def test_report_calibrate_outside_the_data(tmp_path: Path, recording: Path, capsys) -> None:
    code, _, err = run(capsys, "report", "--recording", str(recording), "--calibrate",
                       "14:20", "--out", str(tmp_path / "r.html"))
    assert code == 2 and one_line(err).startswith("spinesense: --calibrate 14:20:")


def test_report_out_a_folder_fails_before_the_work(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "unread.csv"   # would fail if it were read: the --out check comes first
    bad.write_bytes(b"\x00\x01")
    code, _, err = run(capsys, "report", "--recording", str(bad), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in one_line(err)


def test_tune_out_an_existing_file(tmp_path: Path, recording: Path, capsys) -> None:
    target = tmp_path / "results"
    target.write_text("mine\n")
    code, _, err = run(capsys, "tune", str(recording), "--truth", "--no-progress", "--out",
                       str(target))
    assert code == 2 and "not a folder" in one_line(err)
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize("content", ['[device]\nid = "café"\n'.encode("latin-1"),
                                     b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_config_not_utf8(tmp_path: Path, capsys, content: bytes) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    code, _, err = run(capsys, "config", "check", str(path))
    assert code == 2 and "not UTF-8" in one_line(err) and str(path) in err
    code, _, err = run(capsys, "replay", "whatever.csv", "-c", str(path))  # -c on any command
    assert code == 2 and "not UTF-8" in one_line(err)


def _as_other_user(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run as `nobody` when we are root (root may write anywhere), else as ourselves."""
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
        if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *EXE, *argv], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, cwd="/")


@pytest.fixture
def locked_state() -> Path:
    """A config whose state_dir lies in a folder only its owner may write (the README's
    `sudo -u spinesense` forgotten)."""
    base = Path(tempfile.mkdtemp(prefix="spinesense-locked-"))
    base.chmod(0o755)
    (base / "locked").mkdir(mode=0o500)
    (base / "locked").chmod(0o500 if os.geteuid() == 0 else 0o555)
    cfg = base / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{base / "locked" / "state"}"\n')
    cfg.chmod(0o644)
    yield cfg
    shutil.rmtree(base)


@pytest.mark.parametrize("argv", [["edge", "run", "--emulate", "mpu6050", "--duration", "5s"],
                                  ["calibrate", "--emulate", "mpu6050", "--yes"]])
def test_unwritable_state_dir(locked_state: Path, argv: list[str]) -> None:
    res = _as_other_user([*argv, "-c", str(locked_state)])
    assert res.returncode == 2, res.stderr
    line = one_line(res.stderr)
    assert "device.state_dir" in line and "sudo -u spinesense" in line
    assert "Step 1/2" not in res.stdout   # refused before the wearer sits still


def test_spool_path_a_folder(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n'
                   f'[spool]\npath = "{tmp_path}"\n')
    code, _, err = run(capsys, "edge", "run", "-c", str(cfg), "--emulate", "mpu6050",
                       "--duration", "5s")
    assert code == 2 and one_line(err).startswith(f"spinesense: spool.path {tmp_path}: is a")


def test_unexpected_errors_are_one_line_and_v_shows_the_traceback(capsys, monkeypatch
                                                                  ) -> None:
    import spinesense.config_cli as config_cli

    def broken(_args: argparse.Namespace) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(config_cli, "to_toml", lambda *a, **k: broken(a[0]))
    code, _, err = run(capsys, "config", "show")
    assert code == 1 and "internal error: RuntimeError: boom" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "config", "show", "-v")
    assert code == 1 and "Traceback" in err


# -- safe files ------------------------------------------------------------------------------
def test_simulate_creates_no_folder_and_overwrites_only_with_force(tmp_path: Path,
                                                                   capsys) -> None:
    missing = tmp_path / "nonexistent" / "x.csv"
    code, _, err = run(capsys, "simulate", "--duration", "1m", "--out", str(missing))
    assert code == 2 and "does not exist" in one_line(err)
    assert not missing.parent.exists()
    out = tmp_path / "x.csv"
    assert run(capsys, "simulate", "--duration", "1m", "-o", str(out))[0] == 0
    first = out.read_bytes()
    code, _, err = run(capsys, "simulate", "--duration", "1m", "--seed", "7", "-o", str(out))
    assert code == 2 and "--force" in one_line(err) and out.read_bytes() == first
    assert run(capsys, "simulate", "--duration", "1m", "--seed", "7", "-o", str(out),
               "--force")[0] == 0
    assert out.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv", "x.truth.json"]


def test_an_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C while writing: no truncated file, no temporary file, an old file untouched."""
    from spinesense.outputs import atomic_output

    target = tmp_path / "day.csv.gz"
    with pytest.raises(KeyboardInterrupt), atomic_output(target, binary=True) as fh:
        fh.write(b"half a file")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target, binary=True,
                                                         force=True) as fh:
        fh.write(b"new")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_simulate_killed_mid_write_leaves_no_csv(tmp_path: Path) -> None:
    out = tmp_path / "long.csv.gz"
    proc = subprocess.Popen([*EXE, "simulate", "--duration", "8h", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):   # wait for the temporary file: the writing has begun
        if any(p.name.endswith(".part") for p in tmp_path.iterdir()):
            break
        if proc.poll() is not None:
            pytest.fail("simulate ended before it was interrupted")
        subprocess.run(["sleep", "0.05"])
    proc.send_signal(2)
    proc.wait(60)
    if out.exists():  # the signal landed in the last write (a loaded machine): the file
        # must then be whole, never a part
        assert proc.returncode == 0 and list(tmp_path.iterdir()) == [out]
        with gzip.open(out, "rt") as fh:
            assert sum(1 for _ in fh) > 8 * 3600 * 50
        return
    assert list(tmp_path.iterdir()) == []


def test_interrupt_right_after_the_temporary_file_appears_leaves_nothing(
        tmp_path: Path, monkeypatch) -> None:
    """The signal may land between creating the temporary file and the first write."""
    from spinesense import outputs
    real_open = os.open

    def open_then_interrupt(*args, **kwargs):
        os.close(real_open(*args, **kwargs))
        raise KeyboardInterrupt
    monkeypatch.setattr(outputs.os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt), outputs.atomic_output(tmp_path / "out.csv"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_name_taken_by_another_file_is_left_alone(tmp_path: Path,
                                                              monkeypatch) -> None:
    from spinesense import outputs
    monkeypatch.setattr(outputs.secrets, "token_hex", lambda _n: "feed")
    theirs = tmp_path / ".out.csv.feed.part"
    theirs.write_text("another writer's")
    with pytest.raises(FileExistsError), outputs.atomic_output(tmp_path / "out.csv"):
        pass
    assert theirs.read_text() == "another writer's"
    assert not (tmp_path / "out.csv").exists()


def test_record_export_out_and_force(tmp_path: Path, capsys) -> None:
    rec = tmp_path / "r.ssrec"
    assert run(capsys, "record", "--emulate", "mpu6050", "--fast", "--duration", "2s",
               "--faults", "eio@1x2", "-o", str(rec))[0] == 0
    out = tmp_path / "r.csv"
    assert run(capsys, "record", "export", str(rec), "-o", str(out))[0] == 0
    code, _, err = run(capsys, "record", "export", str(rec), "--out", str(out))
    assert code == 2 and "--force" in one_line(err)
    assert run(capsys, "record", "export", str(rec), "--csv", str(out), "--force")[0] == 0
    code, stdout, _ = run(capsys, "record", "export", str(rec), "-o", "-")
    assert code == 0 and stdout == out.read_text()
    assert run(capsys, "record", "--emulate", "mpu6050", "--fast", "--duration", "1s",
               "--fault", "eio@1x2", "-o", str(rec), "--force")[0] == 0   # the old spelling


def test_calibrate_out_refuses_an_existing_file_before_the_steps(tmp_path: Path,
                                                                  capsys) -> None:
    target = tmp_path / "cal.json"
    target.write_text("{}")
    code, out, err = run(capsys, "calibrate", "--emulate", "mpu6050", "--yes", "-o",
                         str(target))
    assert code == 2 and "--force" in one_line(err) and "Step" not in out


# -- conventions -----------------------------------------------------------------------------
def test_global_options_before_or_after_the_command(tmp_path: Path, recording: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[metrics]\ninterval_s = 60.0\n")  # one metric a minute, not six
    before = subprocess.run([*EXE, "-c", str(cfg), "-v", "replay", str(recording), "--jsonl"],
                            capture_output=True, text=True, timeout=120)
    after = subprocess.run([*EXE, "replay", str(recording), "--jsonl", "-c", str(cfg),
                            "--log-level", "debug"], capture_output=True, text=True,
                           timeout=120)
    default = subprocess.run([*EXE, "replay", str(recording), "--jsonl", "-q"],
                             capture_output=True, text=True, timeout=120)
    assert before.returncode == after.returncode == default.returncode == 0
    assert before.stdout == after.stdout != default.stdout  # the config was used both ways
    assert 0 < before.stdout.count('"type":"metric"') < default.stdout.count('"type":"metric"')


@pytest.mark.parametrize(("argv", "level"), [
    (["-v", "config", "show"], "DEBUG"), (["config", "show", "-v"], "DEBUG"),
    (["-q", "config", "show"], "WARNING"), (["config", "show", "-qq"], "ERROR"),
    (["--log-level", "Warning", "config", "show", "-v"], "INFO"),
    (["config", "show", "--log-level", "debug"], "DEBUG"), (["config", "show"], "INFO")])
def test_verbosity_before_or_after_the_command(capsys, argv: list[str], level: str) -> None:
    import logging

    assert main(argv) == 0
    assert logging.getLevelName(logging.getLogger().level) == level


def test_log_level_is_case_insensitive_and_checked(capsys) -> None:
    from spinesense.cli import parse_args

    assert parse_args(["--log-level", "Warning", "config", "show"]).log_level == "WARNING"
    assert parse_args(["config", "show", "--log-level", "debug"]).log_level == "DEBUG"
    code, _, err = run(capsys, "config", "show", "--log-level", "loud")
    assert code == 2 and "--log-level" in one_line(err)


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif action.option_strings:
            yield path, action


def test_one_seed_default_and_one_spelling_everywhere() -> None:
    opts = list(_options(build_parser()))
    seeds = {" ".join(p): a.default for p, a in opts if "--seed" in a.option_strings}
    assert {"simulate", "record", "calibrate", "edge run", "evaluate", "demo"} <= set(seeds)
    assert set(seeds.values()) == {DEFAULT_SEED}, seeds
    visible = [(p, a) for p, a in opts if a.help != argparse.SUPPRESS]
    flags = {f for _, a in visible for f in a.option_strings}
    assert "--fault" not in flags and "--csv" not in flags and "--first-seed" not in flags
    for path, action in visible:   # every output is -o/--out, with --force beside it
        if action.dest == "out":
            assert action.option_strings == ["--out", "-o"], path
            assert any(a.dest == "force" for p, a in opts if p == path), path


def test_durations_everywhere(tmp_path: Path) -> None:
    from spinesense.cli import parse_args

    assert parse_args(["evaluate", "--duration", "10m"]).duration == 600.0
    assert parse_args(["calibrate", "--still-s", "8s", "--lean-s", "0.5m"]).lean_s == 30.0
    assert parse_args(["edge", "run", "--drain-timeout", "2m"]).drain_timeout == 120.0
    assert parse_args(["simulate", "--label-sitting-limit", "30m"]).label_sitting_limit == 1800
    assert parse_args(["demo", "--duration", "1h30m"]).duration == "1h30m"
    with pytest.raises(SystemExit):
        parse_args(["demo", "--duration", "90 minutes please"])


def test_usage_errors_exit_2_everywhere(tmp_path: Path, capsys) -> None:
    for argv in (["report", "--recording", "x.csv"], ["record"], ["record", "export", "x"],
                 ["tune"], ["replay"], ["simulate", "--seed", "x"]):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        one_line(err)


def test_replay_reads_standard_input(recording: Path) -> None:
    direct = subprocess.run([*EXE, "replay", str(recording), "--jsonl"], capture_output=True,
                            timeout=120)
    piped = subprocess.run([*EXE, "replay", "-", "--jsonl"], input=recording.read_bytes(),
                           capture_output=True, timeout=120)
    gz = subprocess.run([*EXE, "replay", "-", "--jsonl"],
                        input=gzip.compress(recording.read_bytes()), capture_output=True,
                        timeout=120)
    assert direct.returncode == piped.returncode == gz.returncode == 0, piped.stderr
    assert direct.stdout == piped.stdout == gz.stdout and direct.stdout.count(b"\n") > 5


def test_report_to_standard_output(recording: Path) -> None:
    res = subprocess.run([*EXE, "report", "-r", "-", "-o", "-"], input=recording.read_bytes(),
                         capture_output=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"<!DOCTYPE html>") and b"slouch episodes" in res.stderr


def test_config_show_never_prints_a_secret_that_reads_back(tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("SPINESENSE_MQTT_PASSWORD", "s3cret")
    code, shown, _ = run(capsys, "config", "show")
    assert code == 0 and "s3cret" not in shown and "***" not in shown
    assert "# password: set (hidden" in shown
    monkeypatch.delenv("SPINESENSE_MQTT_PASSWORD")
    saved = tmp_path / "my.toml"
    assert run(capsys, "config", "show", "-o", str(saved))[0] == 0
    from spinesense.config import load
    assert load(saved).mqtt.password == ""          # read back: no password, not "***"
    saved.write_text('[mqtt]\npassword = "***"\n')  # an old `config show` output
    code, _, err = run(capsys, "config", "check", str(saved))
    assert code == 2 and "mqtt.password" in one_line(err) and "placeholder" in err


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path, capsys) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    code, _, err = run(capsys, "demo", "--workdir", str(tmp_path))
    assert code == 2 and "not a demo folder" in one_line(err)
    assert (tmp_path / "thesis.tex").exists()


def test_demo_prints_progress_while_the_edge_runs(tmp_path: Path, influxd, capsys) -> None:
    """Every few seconds: simulated time, and metrics/events stored so far (real influxd)."""
    from spinesense import demo

    influxd.create_database(demo.DATABASE)
    code = demo.run_edge_with_progress([sys.executable, "-c", "import time; time.sleep(6)"],
                                       tmp_path / "edge.log", influxd, 3600.0, 100.0)
    out = capsys.readouterr().out
    assert code == 0
    assert "of 1:00:00 simulated; stored so far: 0 metrics, 0 events" in out


def test_a_config_given_to_a_command_that_takes_none_is_refused(tmp_path: Path,
                                                                capsys) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    for argv in (["-c", str(cfg), "demo"], ["-c", str(cfg), "config", "check", str(cfg)]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "takes no config file" in one_line(err), argv
    assert run(capsys, "-c", str(cfg), "config", "show")[0] == 0
