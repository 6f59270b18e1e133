"""Input that is wrong says so: units, calibration windows, absurd samples, damaged files.

Every case ends in either a one-line error with exit code 2 (no traceback), or a warning
that counts what was dropped or lost while the rest is used. `.ssrec` recordings are read
wherever a CSV is.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_feed import feed_in_chunks

from spinesense.cli import main
from spinesense.collector.validate import Validator
from spinesense.config import Config
from spinesense.edge.cli import json_line
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.recordings import open_recording, read_samples, tilt_and_rotation
from spinesense.edge.replay import replay, summary
from spinesense.firmware.csvfast import write_csv
from spinesense.firmware.recording import RecordingWriter, default_header
from spinesense.firmware.simulator import simulate
from spinesense.samples import NOT_FINITE, OVER_SCALE, SampleChunk
from spinesense.schema import encode, kind_of, record_to_message, topic


@pytest.fixture(scope="module")
def sim():
    # the board faces the default mount ("back-out"), as a user who set [sensor] mount would
    return simulate("calibration", 11, mounting="normal")


@pytest.fixture(scope="module")
def files(sim, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same recording as a CSV in g (and its truth), and as a .ssrec."""
    d = tmp_path_factory.mktemp("rec")
    sim.write(d / "day.csv")
    with RecordingWriter(d / "day.ssrec", default_header({"rate_hz": 100.0, "chip": "sim"}),
                         fsync=False) as rec:
        c = sim.chunk()
        for i in range(0, len(c), 25):
            rec.write(c[i:i + 25])
    return d


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    """The error line, after checking it is exactly one line, exit 2, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def events(records: list[dict]) -> list[tuple[str, float]]:
    return [(r["type"], round(r["t"], 1)) for r in records
            if r["type"] not in ("state", "metric", "samples_dropped")]


def strict_json(line: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} is not JSON: {line[:80]}")
    return json.loads(line, parse_constant=refuse)


# ------------------------------------------------------------------------------ units


@pytest.mark.parametrize(("acc_scale", "t_scale", "t_offset", "gyro_scale", "fragment",
                          "option"), [
    (9.80665, 1.0, 0.0, 1.0, "look like m/s², not g", "--accel-unit m/s2"),
    (1000.0, 1.0, 0.0, 1.0, "look like milli-g, not g", "--accel-unit mg"),
    (1.0, 1000.0, 0.0, 1.0, "t looks like milliseconds, not seconds", "--time-unit ms"),
    (1.0, 1000.0, 1.764e12, 1.0, "milliseconds since the Unix epoch", "--time-unit ms"),
    (1.0, 1.0, 0.0, np.pi / 180, "gx..gz look like rad/s, not deg/s", "--gyro-unit rad/s"),
], ids=["m/s2", "mg", "ms", "epoch-ms", "rad/s"])
def test_wrong_units_are_refused_with_the_fix_and_the_option_converts(
        sim, tmp_path: Path, capsys, acc_scale, t_scale, t_offset, gyro_scale, fragment,
        option) -> None:
    path = tmp_path / "units.csv"
    write_csv(path, sim.t * t_scale + t_offset, sim.acc * acc_scale, sim.gyro * gyro_scale)
    line = one_line_error(*run(capsys, "replay", str(path))[::2])
    assert fragment in line and option in line and str(path) in line
    code, out, err = run(capsys, "replay", str(path), "--jsonl", *option.split())
    assert code == 0, err
    converted = [strict_json(x) for x in out.splitlines()]
    reference = replay(sim.chunk(), Config())
    shift = t_offset / 1000.0
    assert [(k, round(t - shift, 1)) for k, t in events(converted)] == events(reference)


def test_an_explicit_unit_that_does_not_fit_the_data_is_refused(files, capsys) -> None:
    line = one_line_error(*run(capsys, "replay", str(files / "day.csv"),
                               "--accel-unit", "m/s2")[::2])
    assert "still magnitude is 0.1" in line and "drop --accel-unit" in line
    line = one_line_error(*run(capsys, "replay", str(files / "day.csv"),
                               "--gyro-unit", "rad/s")[::2])
    assert "with --gyro-unit rad/s the gyro turns" in line and "drop --gyro-unit" in line


def test_a_zero_filled_gyro_is_named(sim, tmp_path: Path, capsys) -> None:
    path = tmp_path / "zeros.csv"
    write_csv(path, sim.t, sim.acc, np.zeros_like(sim.gyro))
    line = one_line_error(*run(capsys, "replay", str(path))[::2])
    assert "gx..gz show no rotation" in line and "leave the gyro columns empty" in line


@pytest.mark.parametrize("scenario", ["calibration", "walking", "sitting_long", "recline",
                                      "reaches"])
def test_the_gyro_unit_check_agrees_with_deg_per_s_days(scenario: str) -> None:
    """The check compares the gyro's rotation with the accelerometer's tilt: in deg/s
    they agree, so correct files are never refused (the limit is a factor 10 off)."""
    day = simulate(scenario, 5, duration_s=300)
    tilt, turned = tilt_and_rotation(day.t, day.acc, day.gyro)
    assert tilt > 30 and 0.8 < turned / tilt < 1.25


def test_raw_counts_are_named(sim, tmp_path: Path, capsys) -> None:
    path = tmp_path / "counts.csv"
    write_csv(path, sim.t, np.rint(sim.acc * 16384), sim.gyro)
    line = one_line_error(*run(capsys, "replay", str(path))[::2])
    assert "not in g" in line and "raw sensor counts" in line


def test_report_and_tune_check_units_too(sim, files, tmp_path: Path, capsys) -> None:
    path = tmp_path / "mg.csv"
    write_csv(path, sim.t, sim.acc * 1000.0, sim.gyro)
    line = one_line_error(*run(capsys, "report", "--recording", str(path), "--out",
                               str(tmp_path / "r.html"))[::2])
    assert "--accel-unit mg" in line
    line = one_line_error(*run(capsys, "tune", str(path), "--truth",
                               str(files / "day.truth.json"), "--no-progress", "--out",
                               str(tmp_path / "tuning"))[::2])
    assert "--accel-unit mg" in line
    code, _, err = run(capsys, "report", "--recording", str(path), "--accel-unit", "mg",
                       "--out", str(tmp_path / "r.html"))
    assert code == 0 and (tmp_path / "r.html").stat().st_size > 10_000, err


# ------------------------------------------------------------------ calibration window


@pytest.fixture(scope="module")
def quick_settle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose self-calibration settles after 10 s: a window it never reaches was
    silently replaced by self-calibration before the window check."""
    path = tmp_path_factory.mktemp("cfg") / "quick.toml"
    path.write_text("[pipeline]\ncalibration_wait_s = 10\n")
    return path


@pytest.mark.parametrize(("window", "fragment"), [
    ("5000:5010", "is outside the recording: the data run from t=0 to t=269.99 s"),
    ("265:275", "is only partly inside the recording (5.0 s of data)"),
])
def test_a_calibration_window_the_data_do_not_cover_is_refused(
        files, quick_settle, capsys, window, fragment) -> None:
    line = one_line_error(*run(capsys, "replay", str(files / "day.csv"), "-c",
                               str(quick_settle), "--calibrate", window)[::2])
    assert f"--calibrate {window}" in line and fragment in line


def test_a_window_before_the_data_is_refused_at_once(sim) -> None:
    late = SampleChunk(sim.t + 1000.0, sim.acc, sim.gyro)
    pipe = Pipeline(Config(), calibrate_window=(0.0, 10.0))
    with pytest.raises(ValueError, match=r"outside the recording: the data start at t=1000"):
        pipe.process(late[:500])  # no need to read the rest of the file


def test_a_window_with_a_gap_has_too_few_samples(sim, tmp_path: Path, capsys) -> None:
    keep = (sim.t < 3.0) | (sim.t > 11.5)
    path = tmp_path / "hole.csv"
    write_csv(path, sim.t[keep], sim.acc[keep], sim.gyro[keep])
    line = one_line_error(*run(capsys, "replay", str(path), "--calibrate", "2:12")[::2])
    assert "has data for only 1.5 of its 10 s (a gap?)" in line


def test_report_refuses_a_bad_window_in_one_line(files, tmp_path: Path, capsys) -> None:
    line = one_line_error(*run(capsys, "report", "--recording", str(files / "day.csv"),
                               "--calibrate", "5000:5010", "--out",
                               str(tmp_path / "r.html"))[::2])
    assert "outside the recording" in line


# ------------------------------------------------------------------- absurd samples

ABSURD = [(5000, "acc", 1e300), (9000, "acc", np.inf), (12000, "acc", np.nan),
          (15000, "acc", 40.0), (17000, "gyro", 1e6), (17001, "gyro", np.nan)]


def _poisoned(sim) -> SampleChunk:
    acc, gyro = sim.acc.copy(), sim.gyro.copy()
    for i, what, value in ABSURD:
        (acc if what == "acc" else gyro)[i, 0] = value
    return SampleChunk(sim.t, acc, gyro)


def test_absurd_samples_are_dropped_counted_and_poison_nothing(sim) -> None:
    clean = replay(sim.chunk(), Config(), states=True)
    dirty = replay(_poisoned(sim), Config(), states=True)
    drops = [r for r in dirty if r["type"] == "samples_dropped"]
    assert sum(r["count"] for r in drops) == len(ABSURD)
    assert sum(r["count"] for r in drops if r["reason"] == NOT_FINITE) == 3
    assert sum(r["count"] for r in drops if r["reason"] == OVER_SCALE) == 3
    # one record per second and reason, at the first such sample
    assert [r["t"] for r in drops] == [50.0, 90.0, 120.0, 150.0, 170.0, 170.01]
    rest = [r for r in dirty if r["type"] != "samples_dropped"]
    # the neighbours are untouched: every state, event and metric as without them
    assert [r["type"] for r in rest] == [r["type"] for r in clean]
    for a, b in zip(clean, rest, strict=True):
        if a["type"] == "state":
            assert a["posture"] == b["posture"]
            assert a["flexion_deg"] == pytest.approx(b["flexion_deg"], abs=0.2)
    assert events(rest) == events(clean)


def test_replay_cli_prints_standard_json_and_counts_the_drops(sim, tmp_path: Path,
                                                              capsys) -> None:
    path = tmp_path / "dirty.csv"
    write_csv(path, sim.t, sim.acc, sim.gyro)
    lines = path.read_text().splitlines()
    for i, what, value in ABSURD:  # the absurd value as text, in column ax or gx
        cells = lines[i + 1].split(",")
        cells[1 if what == "acc" else 4] = str(value)
        lines[i + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run(capsys, "replay", str(path), "--jsonl", "--states")
    assert code == 0
    records = [strict_json(x) for x in out.splitlines()]
    assert sum(r["count"] for r in records if r["type"] == "samples_dropped") == 6
    assert "dropped 6 absurd samples" in err  # the warning is seen with --jsonl too
    code, out, _ = run(capsys, "replay", str(path))
    assert code == 0 and "warning: dropped 6 absurd samples: 3 beyond full scale" in out
    assert "3 not a number" in out


def test_json_lines_never_hold_nan_or_infinity() -> None:
    rec = {"type": "metric", "t": 1.0, "flexion_mean": float("nan"),
           "up": [0.0, float("inf"), np.float64("-inf")], "steps": np.int64(3),
           "forward": np.array([np.nan, 1.0])}
    assert strict_json(json_line(rec)) == {"type": "metric", "t": 1.0, "flexion_mean": None,
                                           "up": [0.0, None, None], "steps": 3,
                                           "forward": [None, 1.0]}


def test_a_drop_record_survives_the_wire() -> None:
    rec = {"type": "samples_dropped", "t": 12.0, "count": 3, "reason": NOT_FINITE}
    msg = record_to_message(rec, "alice", 7, lambda t: 1_764_000_000_000 + t * 1000)
    Validator().check(topic("spinesense", "alice", kind_of(rec["type"])), encode(msg))


@pytest.fixture(scope="module")
def dirty_reference(sim) -> tuple[SampleChunk, list[dict]]:
    """Absurd samples during the held calibration phase, on second boundaries (t=50.0,
    and the tick before it), in runs, and with a non-finite time."""
    chunk = _poisoned(sim)
    t = chunk.t.copy()
    acc = chunk.acc.copy()
    acc[4999, 1] = 1e300          # t=49.99: the last tick of second 49
    acc[3000:3040, 2] = np.nan    # a 0.4 s run
    acc[26990:, 0] = 99.0         # the very end of the data
    t[7000] = np.nan
    dirty = SampleChunk(t, acc, chunk.gyro)
    return dirty, replay(dirty, Config(), states=True)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=6))
def test_drops_do_not_depend_on_the_chunking(dirty_reference, sizes: list[int]) -> None:
    chunk, ref = dirty_reference
    assert feed_in_chunks(chunk, sizes) == ref


def test_drop_records_of_the_reference(dirty_reference) -> None:
    _, ref = dirty_reference
    drops = [r for r in ref if r["type"] == "samples_dropped"]
    assert sum(r["count"] for r in drops) == len(ABSURD) + 1 + 40 + 10 + 1
    assert [r["t"] for r in ref] == sorted(r["t"] for r in ref)
    assert feed_in_chunks(dirty_reference[0], [1]) == ref


# ------------------------------------------------------------------------ .ssrec


def test_ssrec_replays_like_its_csv(files, capsys) -> None:
    code, from_ssrec, _ = run(capsys, "replay", str(files / "day.ssrec"), "--jsonl")
    assert code == 0
    code, from_csv, _ = run(capsys, "replay", str(files / "day.csv"), "--jsonl")
    assert code == 0
    a = [strict_json(x) for x in from_ssrec.splitlines()]
    b = [strict_json(x) for x in from_csv.splitlines()]
    assert events(a) == events(b) and len(events(a)) >= 5
    rec = open_recording(files / "day.ssrec")
    assert sum(len(c) for c in rec) == len(read_samples(files / "day.csv"))
    assert rec.format == "ssrec" and rec.warnings == []


def test_ssrec_in_report_and_tune(files, tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "report", "--recording", str(files / "day.ssrec"), "--out",
                         str(tmp_path / "r.html"))
    assert code == 0 and "1 slouch episodes" in out, err
    # 4.5 minutes of data: one alert is 13/h, over the default budget of 6/h
    code, out, err = run(capsys, "tune", str(files / "day.ssrec"), "--truth",
                         str(files / "day.truth.json"), "--no-progress", "--out",
                         str(tmp_path / "tuning"))
    assert code == 2 and "exceed the alert budget of 6/h" in err, err
    code, out, err = run(capsys, "tune", str(files / "day.ssrec"), "--truth",
                         str(files / "day.truth.json"), "--no-progress", "--out",
                         str(tmp_path / "tuning2"), "--alert-budget", "20/h")
    assert code == 0 and "current config" in out, err


def test_a_torn_ssrec_is_read_up_to_the_tear(files, tmp_path: Path, capsys) -> None:
    data = (files / "day.ssrec").read_bytes()
    torn = tmp_path / "torn.ssrec"
    torn.write_bytes(data[:-300])
    full, cut = read_samples(files / "day.ssrec"), read_samples(torn)
    assert 0 < len(full) - len(cut) <= 200
    code, out, err = run(capsys, "replay", str(torn))
    assert code == 0 and "warning:" in out and "the file ends inside a block" in err


# --------------------------------------------------------------- damaged CSV files


def test_a_truncated_gzip_yields_what_is_readable(files, tmp_path: Path, capsys) -> None:
    raw = gzip.compress((files / "day.csv").read_bytes())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(raw[: len(raw) // 2])
    rec = open_recording(path, log_warnings=False)
    chunk = SampleChunk.concat(list(rec))
    whole = read_samples(files / "day.csv")
    assert 0.3 * len(whole) < len(chunk) < 0.7 * len(whole)
    assert np.array_equal(chunk.t, whole.t[:len(chunk)])
    assert any("gzip stream is cut short" in w and f"read {len(chunk)} rows" in w
               for w in rec.warnings)
    code, out, err = run(capsys, "replay", str(path))
    assert code == 0 and "cut short" in out and "cut short" in err


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path: Path, capsys) -> None:
    rows = "".join(f"{i * 0.01:.2f},0.1,0.2,0.97,0,0,0\n" for i in range(3000))
    path = tmp_path / "torn.csv"
    path.write_text("t,ax,ay,az,gx,gy,gz\n" + rows + "30.00,0.1,0.")
    rec = open_recording(path, log_warnings=False)
    assert sum(len(c) for c in rec) == 3000
    assert rec.warnings == [f"{path}:3002: the last line '30.00,0.1,0.' is torn (the file "
                            "was cut off while it was written); ignored"]
    code, _, err = run(capsys, "replay", str(path))
    assert code == 0 and "is torn" in err


def test_nan_rows_are_counted(tmp_path: Path, capsys) -> None:
    rows = [f"{i * 0.01:.2f},0.1,0.2,0.97,0,0,0\n" for i in range(6000)]
    for i in (100, 2000, 2001, 4000):
        rows[i] = f"{i * 0.01:.2f},nan,0.2,0.97,0,0,0\n"
    rows[3000] = "30.00,0.1,0.2,0.97,,,\n"  # a row without its gyro in a gyro recording
    path = tmp_path / "nans.csv"
    path.write_text("t,ax,ay,az,gx,gy,gz\n" + "".join(rows))
    code, out, err = run(capsys, "replay", str(path), "--jsonl")
    assert code == 0
    drops = [r for r in map(strict_json, out.splitlines()) if r["type"] == "samples_dropped"]
    assert sum(r["count"] for r in drops) == 5 and {r["reason"] for r in drops} == {NOT_FINITE}
    assert "dropped 5 absurd samples: 5 not a number" in err


@pytest.mark.parametrize(("content", "fragment"), [
    (b"", "empty file"),
    (b"t,ax,ay,az,gx,gy,gz\n", "no data rows after the header"),
    (bytes(range(256)) * 8, "binary data, not a recording"),
    (b"t,ax,ay,az,gx,gy,gz\n1.0,0,0,1,,,\n0.5,0,0,1,,,\n", "times must not go backwards"),
    (gzip.compress(b"t,ax,ay,az,gx,gy,gz\n", mtime=0), "no data rows after the header"),
    (b"\x1f\x8b\x08\x00garbage", "damaged gzip (corrupt or cut short), nothing readable"),
    (b"SPINEREC\x01\x00", "not a spinesense recording"),
], ids=["empty", "header-only", "binary", "backwards", "gzip-header-only", "corrupt-gzip",
        "ssrec-no-header"])
@pytest.mark.parametrize("command", ["replay", "report", "tune"])
def test_unusable_files_are_one_line_errors_in_every_command(
        tmp_path: Path, capsys, content: bytes, fragment: str, command: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    argv = {"replay": ["replay", str(path)],
            "report": ["report", "--recording", str(path), "--out", str(tmp_path / "r.html")],
            "tune": ["tune", str(path), "--labels", str(_labels(tmp_path)), "--no-progress",
                     "--out", str(tmp_path / "tuning")]}[command]
    line = one_line_error(*run(capsys, *argv)[::2])
    assert str(path) in line and fragment in line


def _labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("start,end,label\n50,80,slouch\n")
    return path


def test_replay_reads_stdin(files, capsys, monkeypatch) -> None:
    data = gzip.compress((files / "day.csv").read_bytes())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    code, out, _ = run(capsys, "replay", "-", "--jsonl")
    assert code == 0
    code, ref, _ = run(capsys, "replay", str(files / "day.csv"), "--jsonl")
    assert out == ref


# ------------------------------------------------------------------------ summary


def test_summary_always_states_confidence_and_every_warning_record() -> None:
    records = [{"type": "calibrated", "t": 30.0, "method": "window 2-12 s",
                "forward_method": "learned from walking"},
               {"type": "mount_warning", "t": 400.0, "mount": "back-out", "n_evidence": 5,
                "agreement": -0.9, "message": "the evidence says the board faces back-in"},
               {"type": "clip_moved", "t": 900.5, "shift_deg": 24.0,
                "reanchored": "walking"}]
    text = summary(records, "day.csv")
    assert "confidence not reported" in text
    assert "MOUNT WARNING at t=400 s: the evidence says the board faces back-in " \
           "(agreement -0.90 over 5 pieces of evidence)" in text
    assert "clip moved at t=900.5 s by 24.0°: re-anchored on walking" in text


def test_summary_of_a_stored_calibration_states_its_confidence(files, tmp_path: Path,
                                                               capsys) -> None:
    code, out, _ = run(capsys, "replay", str(files / "day.csv"), "--jsonl")
    cal = next(r for r in map(json.loads, out.splitlines()) if r["type"] == "calibrated")
    stored = {"up": cal["up"], "forward": cal["forward"], "method": cal["method"],
              "forward_method": cal["forward_method"], "info": {"confidence": "high"}}
    path = tmp_path / "cal.json"
    path.write_text(json.dumps(stored))
    code, out, _ = run(capsys, "replay", str(files / "day.csv"), "--calibration", str(path))
    assert code == 0 and "calibration: stored" in out and "confidence high" in out


def test_nul_bytes_at_the_end_and_concatenated_gzip(files, tmp_path: Path, capsys) -> None:
    text = (files / "day.csv").read_bytes()
    nul = tmp_path / "nul.csv"
    nul.write_bytes(text + b"\0" * 4096)  # what a power cut leaves on some file systems
    rec = open_recording(nul, log_warnings=False)
    assert sum(len(c) for c in rec) == len(read_samples(files / "day.csv"))
    assert rec.warnings == [f"{nul}: 4096 NUL bytes at the end of the file (as after a "
                            "power cut) were ignored"]
    cut = text.index(b"\n", len(text) // 2) + 1  # `cat a.gz b.gz` is one valid gzip file
    joined = tmp_path / "joined.csv.gz"
    joined.write_bytes(gzip.compress(text[:cut]) + gzip.compress(text[cut:]))
    rec = open_recording(joined, log_warnings=False)
    assert np.array_equal(SampleChunk.concat(list(rec)).t, read_samples(files / "day.csv").t)
    assert rec.warnings == [] and rec.format == "csv.gz"
    tiny = tmp_path / "tiny.csv.gz"
    tiny.write_bytes(gzip.compress(text)[:15])
    line = one_line_error(*run(capsys, "replay", str(tiny))[::2])
    assert "not even the header: the gzip stream is cut short" in line


def test_tune_names_the_file_and_the_window_once(files, tmp_path: Path, capsys) -> None:
    line = one_line_error(*run(capsys, "tune", str(files / "day.csv"), "--truth",
                               str(files / "day.truth.json"), "--calibrate", "5000:5010",
                               "--no-progress", "--out", str(tmp_path / "tuning"))[::2])
    assert line.count("--calibrate") == 1 and "is outside the recording" in line
    assert str(files / "day.csv") in line


@pytest.mark.parametrize(("step", "fragment"), [
    (1e4, "t looks like microseconds, not seconds (rows 10000 apart: 100 Hz in microseconds)"),
    (1.0, "t steps by 1 between rows: in seconds that is 1 Hz, but spinesense needs 25 to "
          "400 samples a second; pass --time-unit s|ms|us"),
])
def test_other_time_steps_are_named(tmp_path: Path, capsys, step: float, fragment: str) -> None:
    n = 500
    path = tmp_path / "steps.csv"
    write_csv(path, np.arange(n) * step, np.tile([0.0, 0.0, 1.0], (n, 1)), None)
    line = one_line_error(*run(capsys, "replay", str(path))[::2])
    assert fragment in line
