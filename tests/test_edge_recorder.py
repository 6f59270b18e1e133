"""Raw recording alongside the live loop: rotation, disk budget, readable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinesense.config import Config
from spinesense.devservers import free_port
from spinesense.edge.recorder import RotatingRecorder
from spinesense.edge.service import EdgeService
from spinesense.firmware.recording import read_recording
from spinesense.samples import SampleChunk

INFO = {"chip": "mpu6050", "rate_hz": 100.0, "accel_range_g": 4, "gyro_range_dps": 500,
        "use_gyro": True}


def _chunks(seconds: float, rate: float = 100.0, per: int = 25):
    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    t = 1000.0 + np.arange(n) / rate
    acc = np.column_stack([0.1 * np.sin(t), np.zeros(n), np.ones(n)]) + rng.normal(0, 0.01,
                                                                                 (n, 3))
    gyro = rng.normal(0, 1.0, (n, 3))
    for i in range(0, n, per):
        yield SampleChunk(t[i:i + per], acc[i:i + per], gyro[i:i + per],
                          np.zeros(len(t[i:i + per]), bool))


def test_recorder_rotates_and_keeps_to_its_budget(tmp_path: Path) -> None:
    rec = RotatingRecorder(tmp_path, INFO, rotate_min=1.0, budget_mb=0.25, device="d",
                           fsync=False)
    written = 0
    for chunk in _chunks(6 * 60):
        rec.write(chunk, [])
        written += len(chunk)
    rec.close()
    assert rec.files == 6 and rec.deleted >= 1
    files = sorted(tmp_path.glob("raw-*.ssrec"), key=lambda p: p.stat().st_mtime)
    assert sum(p.stat().st_size for p in files) <= 0.25e6 + files[-1].stat().st_size
    recs = [read_recording(p) for p in files]
    assert all(not r.torn_tail and r.skipped_bytes == 0 for r in recs)
    kept = sum(len(r.chunk) for r in recs)
    assert kept == 6000 * len(files)  # whole minutes per file, the oldest deleted
    last = recs[-1].chunk
    assert np.isclose(last.t[-1], 1000.0 + (6 * 6000 - 1) / 100.0)
    assert np.allclose(last.acc[:, 2], 1.0, atol=0.05)


def test_live_loop_records_what_it_reads(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.recording.enabled = True
    svc = EdgeService(cfg, emulate="lsm6dsox", speed=1000, duration_s=60)
    try:
        for _ in range(4 * 30):
            svc.tick()
    finally:
        svc.recorder.close()
        svc.spool.close()
        svc.reader.close()
    files = list((tmp_path / "recordings").glob("raw-*.ssrec"))
    assert len(files) == 1
    rec = read_recording(files[0])
    assert rec.header["chip"] == "lsm6dsox"
    assert 29 * 100 <= len(rec.chunk) <= 30 * 110  # ~30 s at the chip's ~104 Hz
    assert np.allclose(np.linalg.norm(rec.chunk.acc, axis=1), 1.0, atol=0.05)
