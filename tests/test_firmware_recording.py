"""The native recording format: round trip, torn tails, damage, CSV export, `record`."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spinesense.cli import main
from spinesense.config import SensorConfig
from spinesense.firmware.reader import open_sensor
from spinesense.firmware.recording import (
    RecordingError,
    RecordingWriter,
    default_header,
    export_csv,
    iter_blocks,
    read_recording,
)
from spinesense.samples import SampleChunk


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Wobble:
    def sample(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        acc = np.column_stack([0.2 * np.sin(3 * t), -0.1 * np.cos(t), 0.97 + 0 * t])
        return acc, np.column_stack([40 * np.sin(t), 5 + 0 * t, -20 * np.cos(2 * t)])


def record(path: Path, chip: str = "lsm6dso", seconds: float = 12.0, faults: str | None = None,
           use_gyro: bool = True) -> SampleChunk:
    clock = Clock()
    reader = open_sensor(SensorConfig(use_gyro=use_gyro), emulate=chip, motion=Wobble(),
                         clock=clock, faults=faults)
    chunks = []
    with RecordingWriter(path, default_header(reader.info), fsync=False) as w:
        for _ in range(int(seconds / 0.25)):
            clock.now += 0.25
            chunk, events = reader.poll()
            w.write(chunk, events)
            if chunk is not None:
                chunks.append(chunk)
    return SampleChunk.concat(chunks)


@pytest.mark.parametrize("chip", ["mpu6050", "lsm6dso"])
def test_round_trip_is_exact(tmp_path: Path, chip: str) -> None:
    path = tmp_path / "a.rec"
    original = record(path, chip, faults="disconnect@4+2")
    rec = read_recording(path)
    assert len(rec.chunk) == len(original) and not rec.torn_tail and rec.skipped_bytes == 0
    assert np.array_equal(rec.chunk.acc, original.acc)      # counts round-trip exactly
    assert np.array_equal(rec.chunk.gyro, original.gyro)
    assert np.max(np.abs(rec.chunk.t - original.t)) <= 0.5e-6
    assert {e["type"] for e in rec.events} == {"sensor_lost", "sensor_back", "gap"}
    assert rec.header["chip"] == chip
    assert path.stat().st_size < len(original) * 12          # compact: < 12 bytes/sample


def test_every_torn_tail_reads_cleanly(tmp_path: Path) -> None:
    """Cut the file anywhere: every complete block before the cut is read, nothing else."""
    path = tmp_path / "a.rec"
    record(path, seconds=6.0)
    data = path.read_bytes()
    ends, total = [], 0                     # (end offset, samples up to there) per block
    for kind, value, offset in iter_blocks(path):
        if kind == ord("D"):
            total += len(value)
        if kind in (ord("D"), ord("E")):
            ends.append((offset, total))
    nexts = [*ends[1:], (len(data), 0)]
    block_ends = [(nxt, n) for (_off, n), (nxt, _) in zip(ends, nexts, strict=True)]
    torn = tmp_path / "torn.rec"
    for cut in range(len(data) - 1, block_ends[0][0], -5):
        torn.write_bytes(data[:cut])
        rec = read_recording(torn)                            # never raises
        expected = max((n for end, n in block_ends if end <= cut), default=0)
        assert len(rec.chunk) == expected
        assert rec.torn_tail == (cut not in [end for end, _ in block_ends])
        assert np.all(np.diff(rec.chunk.t) > 0)
    # blocks are about one second: a cut loses at most ~1 s of samples
    sizes = np.diff([0] + [n for _e, n in block_ends if n])
    assert sizes.max() <= 1.3 * 104


def test_damage_in_the_middle_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.rec"
    record(path, seconds=8.0)
    data = bytearray(path.read_bytes())
    full = len(read_recording(path).chunk)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    rec = read_recording(path)
    assert not rec.torn_tail and rec.skipped_bytes > 0
    assert full - 2 * 104 <= len(rec.chunk) < full
    assert "damaged bytes were skipped" in rec.notes[0]


def test_not_a_recording_and_no_overwrite(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("t,ax,ay,az,gx,gy,gz\n")
    with pytest.raises(RecordingError, match="not a spinesense recording"):
        read_recording(csv)
    with pytest.raises(RecordingError, match="already exists"):
        RecordingWriter(csv, {"gyro": True})
    assert csv.read_text() == "t,ax,ay,az,gx,gy,gz\n"        # nothing lost


@pytest.mark.parametrize("name", ["out.csv", "out.csv.gz"])
def test_export_is_the_design_a1_csv(tmp_path: Path, name: str) -> None:
    path = tmp_path / "a.rec"
    original = record(path, "mpu9250", seconds=4.0)
    rows, _rec = export_csv(path, tmp_path / name)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(tmp_path / name, "rt") as fh:
        header = fh.readline().strip()
        table = np.loadtxt(fh, delimiter=",")
    assert header.startswith("t,ax,ay,az,gx,gy,gz")
    assert rows == len(original) == len(table)
    assert np.allclose(table[:, 0], original.t, atol=1e-6)
    assert np.allclose(table[:, 1:4], original.acc, atol=1e-6)
    assert np.allclose(table[:, 4:7], original.gyro, atol=1e-5)


def test_accelerometer_only_export_leaves_gyro_empty(tmp_path: Path) -> None:
    path = tmp_path / "a.rec"
    record(path, "lsm6ds3", seconds=2.0, use_gyro=False)
    export_csv(path, tmp_path / "o.csv")
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[1].split(",")[4:7] == ["", "", ""]
    assert read_recording(path).chunk.gyro is None


def test_record_cli_fast_with_faults_then_export(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.rec"
    assert main(["record", "--emulate", "ism330dhcx", "--fast", "--duration", "40s",
                 "--fault", "eio@5x30,disconnect@12+3", "--out", str(out)]) == 0
    assert "gaps" in capsys.readouterr().err
    assert main(["record", "export", str(out), "--csv", str(tmp_path / "r.csv.gz")]) == 0
    rec = read_recording(out)
    assert 40 * 104 * 0.8 < len(rec.chunk) < 40 * 104 * 1.01
    assert any(e["type"] == "sensor_lost" for e in rec.events)
    assert main(["record", "info", str(out)]) == 0
    assert "samples:" in capsys.readouterr().out
    assert main(["record", "--emulate", "mpu6050", "--fast", "--duration", "1s",
                 "--out", str(out)]) == 2                      # refuses to overwrite
    assert "already exists" in capsys.readouterr().err


def test_record_survives_a_power_cut(tmp_path: Path) -> None:
    """SIGKILL a real-time `spinesense record`: the file stays readable up to ~1 s ago."""
    out = tmp_path / "cut.rec"
    proc = subprocess.Popen([sys.executable, "-m", "spinesense", "record", "--emulate",
                             "mpu6050", "--out", str(out)], stderr=subprocess.DEVNULL)
    try:
        time.sleep(4.0)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    rec = read_recording(out)
    assert len(rec.chunk) >= 100                               # at least one second kept
    assert rec.chunk.t[-1] - rec.chunk.t[0] >= 1.0
    assert np.allclose(rec.chunk.acc, [0, 0, 1], atol=1e-3)


def test_scenario_recording_carries_the_simulated_motion(tmp_path: Path) -> None:
    """simulate → emulated chip → FIFO → reader → recording → CSV → replay's reader."""
    from spinesense.edge.replay import read_csv
    from spinesense.firmware.simulator import simulate

    out = tmp_path / "s.ssrec"
    assert main(["record", "--emulate", "mpu6050", "--scenario", "slouch_short", "--seed",
                 "3", "--fast", "--duration", "60s", "--out", str(out)]) == 0
    assert main(["record", "export", str(out), "--csv", str(tmp_path / "s.csv")]) == 0
    chunk = read_csv(tmp_path / "s.csv")
    sim = simulate("slouch_short", 3, rate_hz=100.0, duration_s=60.0)
    assert 5900 < len(chunk) <= 6020
    for axis in range(3):
        expected = np.interp(chunk.t, sim.t - sim.t[0], sim.acc[:, axis])
        # timing within a few ms and 1 LSB (0.122 mg) of quantisation
        error = np.abs(chunk.acc[:, axis] - expected)
        assert np.median(error) < 1e-3 and np.percentile(error, 99) < 5e-3


def test_export_joins_the_files_of_one_session(tmp_path: Path) -> None:
    clock = Clock()
    reader = open_sensor(SensorConfig(), emulate="lsm6dso", motion=Wobble(), clock=clock)
    parts = []
    for i in range(3):                                   # like the edge's rotating files
        path = tmp_path / f"raw-{i}.ssrec"
        with RecordingWriter(path, default_header(reader.info), fsync=False) as w:
            for _ in range(8):
                clock.now += 0.25
                w.write(*reader.poll())
        parts.append(path)
    out = tmp_path / "all.csv"
    assert main(["record", "export", str(parts[2]), str(parts[0]), str(parts[1]),
                 "--csv", str(out)]) == 0
    t = np.loadtxt(out, delimiter=",", skiprows=1)[:, 0]
    assert len(t) == sum(len(read_recording(p).chunk) for p in parts)
    assert np.all(np.diff(t) > 0)
    assert main(["record", "export", str(parts[0]), str(parts[0]), "--out", str(out),
                 "--force"]) == 2
