"""`spinesense replay` as DESIGN A2 specifies it, and every bad input it must refuse."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from spinesense.cli import main
from spinesense.config import Config
from spinesense.edge.replay import RecordingError, read_csv
from spinesense.firmware.simulator import simulate

HEADER = "t,ax,ay,az,gx,gy,gz\n"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A short calibration-scenario recording written as the DESIGN A1 CSV."""
    sim = simulate("calibration", 11, mounting="normal")  # clipped on back-out
    path = tmp_path_factory.mktemp("rec") / "cal.csv.gz"
    sim.write(path)
    return path, sim.truth


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_jsonl_events_with_the_required_fields(day, capsys) -> None:
    path, truth = day
    cal = truth["calibration"]
    code, out, _ = run(capsys, "replay", str(path), "--jsonl", "--calibrate",
                       f"{cal['start']}:{cal['end']}")
    assert code == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert all("type" in r and "t" in r for r in recs)
    start = next(r for r in recs if r["type"] == "slouch_start")
    ep = truth["slouch_episodes"][0]
    assert abs(start["onset"] - ep["onset"]) < 0.6 and abs(start["t"] - ep["alert"]) < 0.6
    assert start["t"] == pytest.approx(start["onset"] + 5.0)
    brk = next(r for r in recs if r["type"] == "sitting_break")
    assert {"bout_start", "bout_end"} <= set(brk)
    assert next(r for r in recs if r["type"] == "calibrated")["method"].startswith("window")
    assert not any(r["type"] == "state" for r in recs)


def test_states_one_per_second_with_posture_and_signed_flexion(day, capsys) -> None:
    path, truth = day
    code, out, _ = run(capsys, "replay", str(path), "--jsonl", "--states")
    states = [r for r in map(json.loads, out.splitlines()) if r["type"] == "state"]
    assert code == 0 and len(states) == int(truth["duration_s"])
    assert [s["t"] for s in states] == list(range(len(states)))
    assert {s["posture"] for s in states} <= {"sitting", "standing", "walking", "lying",
                                              "unknown"}
    recline = truth["reclines"][0]
    during = [s["flexion_deg"] for s in states
              if recline["start"] + 5 < s["t"] < recline["end"] - 2]
    assert max(during) < -8.0  # reclined is negative


def test_human_summary_says_how_it_calibrated(day, capsys) -> None:
    path, _ = day
    code, out, err = run(capsys, "replay", str(path))
    assert code == 0
    assert "slouch episodes: 1" in out and "min slouched" in out
    assert "sitting bouts ended by a break: 1" in out
    assert "calibrated" in out and "first still stretch" in out
    assert "calibrated" in err  # also on stderr, so it is seen when stdout is piped


def test_chunked_replay_from_the_cli_is_identical(day, capsys) -> None:
    path, _ = day
    _, whole, _ = run(capsys, "replay", str(path), "--jsonl", "--states")
    _, chunked, _ = run(capsys, "replay", str(path), "--jsonl", "--states", "--chunk", "33")
    assert whole == chunked


def test_accel_only_csv_with_empty_gyro_columns(tmp_path: Path, capsys) -> None:
    sim = simulate("slouch_short", 4, accel_only=True, duration_s=200, mounting="normal")
    path = tmp_path / "ao.csv"
    sim.write(path)
    assert ",,," in path.read_text()[:200]
    chunk = read_csv(path)
    assert chunk.gyro is None and len(chunk) == len(sim.t)
    code, out, _ = run(capsys, "replay", str(path), "--jsonl", "--calibrate", "2:15")
    assert code == 0 and sum('"slouch_start"' in line for line in out.splitlines()) == \
        len(sim.truth["slouch_episodes"])


def test_extra_columns_and_a_saturation_column_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("t,ax,ay,az,gx,gy,gz,temp,saturated\n0.0,0,0,1,0,0,0,25.1,0\n"
                    "0.01,0,0,1,0,0,0,25.1,1\n")
    chunk = read_csv(path)
    assert chunk.saturated is not None and chunk.saturated.tolist() == [False, True]


def test_gaps_cause_no_false_events(tmp_path: Path, capsys) -> None:
    """A still, upright wearer with holes in the data: nothing but gap records."""
    t = np.arange(0, 600, 0.01)
    keep = ~(((t > 100) & (t < 130)) | ((t > 300) & (t < 300.8)) | ((t > 400) & (t < 460)))
    t = t[keep]
    rng = np.random.default_rng(2)
    acc = np.tile([0.1, 0.2, 0.97], (len(t), 1)) + rng.normal(0, 0.004, (len(t), 3))
    lines = [HEADER] + [f"{a:.3f},{b:.5f},{c:.5f},{d:.5f},,,\n" for a, (b, c, d) in
                        zip(t, acc, strict=True)]
    path = tmp_path / "gaps.csv"
    path.write_text("".join(lines))
    code, out, _ = run(capsys, "replay", str(path), "--jsonl")
    recs = [json.loads(x) for x in out.splitlines()]
    events = [r for r in recs if r["type"] not in ("metric", "gap", "calibrated")]
    assert code == 0 and events == []
    assert [round(r["duration_s"]) for r in recs if r["type"] == "gap"] == [30, 1, 60]


# ---------------------------------------------------------------- bad input: exit 2


def write(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = "0.00,0,0,1,0,0,0\n0.01,0,0,1,0,0,0\n0.02,0,0,1,0,0,0\n"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    (HEADER + GOOD + "0.01,0,0,1,0,0,0\n", 5, "is before the previous"),
    (HEADER + GOOD + "0.015,0,0,1,0,0,0\n", 5, "times must not go backwards"),
    (HEADER + "0.00,0,0,1,0,0,0\n0.01,zero,0,1,0,0,0\n", 3, "ax is 'zero', not a number"),
    (HEADER + GOOD + "0.03,0,0\n", 5, "3 columns, expected at least 7"),
    (HEADER + "0.00,0,0,1,0,0,0\n0.01,,0,1,0,0,0\n", 3, "column ax is empty"),
    (HEADER + "nan,0,0,1,0,0,0\n", 2, "not a finite time"),
    ("time,ax,ay,az,gx,gy,gz\n" + GOOD, 1, "expected 't,ax,ay,az,gx,gy,gz'"),
])
def test_bad_rows_name_the_line_and_the_problem(tmp_path: Path, capsys, text: str, line: int,
                                                fragment: str) -> None:
    path = write(tmp_path, text)
    code, out, err = run(capsys, "replay", str(path), "--jsonl")
    assert code == 2 and out == ""
    assert f"{path}:{line}:" in err and fragment in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("setup", "fragment"), [
    (lambda p: p.write_text(""), "empty file"),
    (lambda p: p.write_text(HEADER), "no data rows"),
    (lambda p: p.write_bytes(b"\x1f\x8b\x08\x00garbage"), "corrupt"),
    (lambda p: None, "no such file"),
])
def test_unreadable_files(tmp_path: Path, capsys, setup, fragment: str) -> None:
    path = tmp_path / ("x.csv.gz" if fragment == "corrupt" else "x.csv")
    setup(path)
    code, _, err = run(capsys, "replay", str(path))
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_truncated_gzip_is_read_as_far_as_it_goes_with_a_warning(tmp_path: Path) -> None:
    from spinesense.edge.csvread import iter_csv
    path = tmp_path / "t.csv.gz"
    rows = "".join(f"{i * 0.01:.2f},0,0,1,0,0,0\n" for i in range(20000))
    data = gzip.compress((HEADER + rows).encode())
    path.write_bytes(data[: len(data) // 2])
    warnings: list[str] = []
    n = sum(len(c) for c in iter_csv(path, warnings=warnings))
    assert 5000 < n < 15000
    assert len(warnings) == 2 and "is torn" in warnings[0]
    assert "gzip stream is cut short" in warnings[1] and f"read {n} rows" in warnings[1]


@pytest.mark.parametrize(("window", "fragment"), [
    ("5", "expected START:END"), ("10:10.5", "at least 1 s"),
    ("900:990", "outside the recording"), ("40:60", "moved during the calibration"),
])
def test_bad_calibration_windows(day, capsys, window: str, fragment: str) -> None:
    path, _ = day
    code, _, err = run(capsys, "replay", str(path), "--calibrate", window)
    assert code == 2 and fragment in err, err


def test_states_needs_jsonl(day, capsys) -> None:
    code, _, err = run(capsys, "replay", str(day[0]), "--states")
    assert code == 2 and "--states needs --jsonl" in err


def test_errors_name_the_right_line_across_blocks(tmp_path: Path) -> None:
    from spinesense.edge.csvread import iter_csv
    rows = [f"{i * 0.01:.2f},0,0,1,0,0,0\n" for i in range(3000)]
    good = write(tmp_path, HEADER + "".join(rows), "good.csv")
    chunks = list(iter_csv(good, block_bytes=4096))
    assert len(chunks) > 10 and sum(len(c) for c in chunks) == 3000
    assert np.all(np.diff(np.concatenate([c.t for c in chunks])) > 0)
    bad_rows = rows.copy()
    bad_rows[2500] = "25.00,0,0,x1,0,0,0\n"
    with pytest.raises(RecordingError, match=r"bad\.csv:2502: az is 'x1'"):
        list(iter_csv(write(tmp_path, HEADER + "".join(bad_rows)), block_bytes=4096))
    back_rows = rows.copy()
    back_rows[1700] = "1.00,0,0,1,0,0,0\n"
    with pytest.raises(RecordingError, match=r"back\.csv:1702: t=1\.000000 is before the previous"):
        list(iter_csv(write(tmp_path, HEADER + "".join(back_rows), "back.csv"),
                      block_bytes=4096))
    blank = [*rows[:100], "\n", "  \n", *rows[100:200]]
    assert len(read_csv(write(tmp_path, HEADER + "".join(blank), "blank.csv"))) == 200


def test_crlf_line_endings_and_no_final_newline(tmp_path: Path) -> None:
    text = "t,ax,ay,az,gx,gy,gz\r\n0,0,0,1,,,\r\n0.01,0,0,1,,,\r\n0.02,0,0,1,,,"
    chunk = read_csv(write(tmp_path, text, "crlf.csv"))
    assert len(chunk) == 3 and chunk.gyro is None and chunk.t[-1] == 0.02


def test_non_utf8_bytes_name_the_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes((HEADER + GOOD).encode() + b"0.03,\xe9,0,1,0,0,0\n")
    code, _, err = run(capsys, "replay", str(path))
    assert code == 2 and f"{path}:5: not UTF-8 text" in err


def test_repeated_stamps_of_a_cheap_logger_replay(tmp_path: Path) -> None:
    """A 40 ms logger clock over 100 Hz samples repeats stamps: read, not refused, and the
    result matches the same motion stamped once per clock tick."""
    from spinesense.edge.replay import replay

    rng = np.random.default_rng(3)
    n = 100 * 120
    t_true = np.arange(n) / 100.0
    acc = np.column_stack([0.05 * np.sin(t_true), np.zeros(n), np.ones(n)])
    acc += rng.normal(0, 0.002, acc.shape)
    stamped = np.floor(t_true / 0.04) * 0.04  # the logger's tick
    rows = "".join(f"{s:.3f},{a:.5f},{b:.5f},{c:.5f},,,\n" for s, (a, b, c) in
                   zip(stamped, acc, strict=True))
    path = tmp_path / "logger.csv"
    path.write_text(HEADER + rows)
    assert len(set(stamped)) < n  # there are repeats
    records = replay(str(path), Config(), calibrate=(0.0, 10.0), states=True)
    states = [r for r in records if r["type"] == "state"]
    assert len(states) >= 119  # every second of the file is processed
    assert all(abs(s["flexion_deg"]) < 5 for s in states if s["flexion_deg"] is not None)

