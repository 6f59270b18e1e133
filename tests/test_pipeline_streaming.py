"""Streaming is exact: any chunking of the input gives the same records as one call.

The recording has everything that carries state: the calibration being learned (so
output is held, then released), a slouch, a sit-to-stand, walking, a stand-to-sit, a
gap inside a slouch, NaN rows, saturated samples, a change of sample rate and jitter.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_feed import feed_in_chunks

from spinesense.config import Config
from spinesense.edge.replay import replay
from spinesense.firmware.simulator import simulate
from spinesense.samples import SampleChunk


def _recording(accel_only: bool) -> SampleChunk:
    sim = simulate("calibration", 3, rate_hz=100.0, accel_only=accel_only)
    c = sim.chunk()
    rng = np.random.default_rng(0)
    idx = np.arange(len(c))
    keep = (c.t < 120) & (idx % 2 == 0) | (c.t >= 120)      # 50 Hz, then 100 Hz
    keep &= ~((c.t > 60.0) & (c.t < 62.3))                    # a gap inside the slouch
    keep &= ~((c.t > 200.0) & (c.t < 200.3))                  # a short hole (bridged)
    t = c.t[keep] + rng.uniform(-0.002, 0.002, keep.sum())    # jitter
    acc = c.acc[keep].copy()
    gyro = None if c.gyro is None else c.gyro[keep].copy()
    acc[400:403] = np.nan
    sat = np.zeros(len(t), bool)
    sat[9000:9010] = True
    return SampleChunk(t, acc, gyro, sat)


@pytest.fixture(scope="module", params=[False, True], ids=["gyro", "accel_only"])
def recording(request: pytest.FixtureRequest) -> tuple[SampleChunk, list[dict]]:
    chunk = _recording(request.param)
    return chunk, replay(chunk, Config(), states=True)


def test_the_reference_run_has_every_kind_of_record(recording) -> None:
    _, ref = recording
    types = {r["type"] for r in ref}
    assert {"calibrated", "slouch_start", "slouch_end", "gap", "sit_to_stand", "stand_to_sit",
            "sitting_break", "metric", "state"} <= types
    assert next(r["reason"] for r in ref if r["type"] == "slouch_end") == "gap"
    t = [r["t"] for r in ref]
    assert t == sorted(t)
    postures = {r["posture"] for r in ref if r["type"] == "state"}
    assert {"walking", "standing", "unknown"} <= postures


@pytest.mark.parametrize("size", [1, 7, 100])
def test_fixed_chunk_sizes_give_identical_records(recording, size: int) -> None:
    chunk, ref = recording
    assert feed_in_chunks(chunk, [size]) == ref


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8))
def test_any_chunking_gives_identical_records(recording, sizes: list[int]) -> None:
    chunk, ref = recording
    assert feed_in_chunks(chunk, sizes) == ref


@pytest.mark.parametrize("size", [1, 7, 100])
def test_chunking_with_a_calibration_window(recording, size: int) -> None:
    chunk, _ = recording
    ref = replay(chunk, Config(), states=True, calibrate=(2.0, 15.0))
    assert next(r for r in ref if r["type"] == "calibrated")["t"] >= 15.0
    assert feed_in_chunks(chunk, [size], (2.0, 15.0)) == ref


def test_a_large_chunk_is_fed_in_blocks_with_the_same_records(recording, monkeypatch) -> None:
    """Pipeline.process splits a chunk longer than BLOCK_SAMPLES (for speed): same output."""
    from spinesense.edge import pipeline

    chunk, ref = recording
    assert 3 * 997 < len(chunk) <= pipeline.BLOCK_SAMPLES  # the reference ran in one piece
    monkeypatch.setattr(pipeline, "BLOCK_SAMPLES", 997)
    assert replay(chunk, Config(), states=True) == ref
