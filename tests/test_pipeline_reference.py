"""Cross-check: the vectorised pipeline and the per-sample reference agree exactly on
slouch events (same grid, same filters, same state machine), gyro or not, with gaps."""

from __future__ import annotations

import numpy as np
import pytest

from spinesense.config import Config
from spinesense.edge.calibration import Calibration
from spinesense.edge.reference import run_reference
from spinesense.edge.replay import replay
from spinesense.firmware.simulator import simulate
from spinesense.samples import SampleChunk


def _key(events: list[dict]) -> list[tuple]:
    return [(e["type"], e["t"], e["onset"]) for e in events
            if e["type"] in ("slouch_start", "slouch_end") and e.get("reason") != "end_of_data"]


@pytest.mark.parametrize("accel_only", [False, True])
def test_reference_and_pipeline_agree(accel_only: bool) -> None:
    sim = simulate("slouch_short", 21, accel_only=accel_only, duration_s=420, rate_hz=50)
    c = sim.chunk()
    keep = ~((c.t > 100) & (c.t < 103))  # a gap
    c = SampleChunk(c.t[keep], c.acc[keep], None if c.gyro is None else c.gyro[keep])
    cal = Calibration(sim.up_sensor, -sim.forward_sensor)
    ref = run_reference(c, cal)
    got = replay(c, Config(), calibration=cal)
    assert len(_key(ref)) >= 4
    assert _key(ref) == _key(got)
    assert any(e["type"] == "gap" for e in got)
    assert np.isfinite([e["t"] for e in ref]).all()
