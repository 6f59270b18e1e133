"""One buzz per slouch: after walking or lying ended an episode, the slouch state machine
re-arms only once flexion came back below the release (or a gap intervened); a sensor
dropout too short to be a gap is the same slouch."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spinesense.config import Config
from spinesense.edge.calibration import Calibration, forward_from_lean, upright_from_still
from spinesense.edge.filters import TICK_HZ
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.slouch import BLOCK_REASONS, SlouchParams, detect_slouch
from spinesense.samples import SampleChunk


def hold(*parts: tuple[float, float]) -> np.ndarray:
    """Piecewise-constant flexion: (degrees, seconds) pairs at the tick rate."""
    return np.concatenate([np.full(round(s * TICK_HZ), d, float) for d, s in parts])


def blocked(n: int, reason: str, *spans: tuple[float, float]) -> np.ndarray:
    block = np.zeros(n, np.int8)
    for a, b in spans:
        block[round(a * TICK_HZ):round(b * TICK_HZ)] = BLOCK_REASONS.index(reason)
    return block


def run(flex: np.ndarray, block: np.ndarray) -> list[tuple[str, float, str]]:
    k = np.arange(len(flex), dtype=np.int64)
    res, _ = detect_slouch(k, flex, block, SlouchParams())
    return [(e["type"], e["t"], e.get("reason", "")) for e in res.events]


@pytest.mark.parametrize("reason", ["walking", "lying"])
def test_a_blip_of_activity_in_a_held_slouch_does_not_buzz_again(reason: str) -> None:
    flex = hold((0, 5), (25, 60), (5, 5))  # slouched from 5 s to 65 s
    ev = run(flex, blocked(len(flex), reason, (30, 32)))
    assert ev == [("slouch_start", 10.0, ""), ("slouch_end", 30.0, reason)]


def test_a_return_to_upright_after_a_walk_re_arms() -> None:
    # walked upright (flexion 5°) and came back to slouch: that is a new slouch
    flex = hold((0, 5), (25, 25), (5, 10), (25, 20), (0, 5))
    ev = run(flex, blocked(len(flex), "walking", (28, 40)))
    assert [(t, r) for _, t, r in ev] == [(10.0, ""), (28.0, "walking"), (45.0, ""),
                                          (60.0, "released")]


def test_walking_bent_then_upright_for_a_moment_re_arms() -> None:
    # the re-arming return to upright may happen while still walking
    flex = hold((0, 5), (25, 25), (25, 3), (8, 1), (25, 20), (0, 1))
    ev = run(flex, blocked(len(flex), "walking", (30, 34)))
    assert [t for _, t, _ in ev] == [10.0, 30.0, 39.0, 54.0]


def test_a_gap_re_arms_after_an_activity_end() -> None:
    flex = hold((0, 5), (25, 60), (5, 5))
    block = blocked(len(flex), "walking", (30, 32))
    block[round(40 * TICK_HZ)] = BLOCK_REASONS.index("gap")
    flex[round(40 * TICK_HZ)] = np.nan
    ev = run(flex, block)
    assert [t for _, t, _ in ev] == [10.0, 30.0, 45.04, 65.0]


@pytest.mark.parametrize("cuts", [[1], [7, 130, 131], list(range(29, 6000, 29))])
def test_the_re_arm_state_carries_across_blocks(cuts: list[int]) -> None:
    rng = np.random.default_rng(3)
    tt = np.arange(6000) / TICK_HZ
    flex = 10 + 16 * np.sin(2 * np.pi * tt / 60) + rng.normal(0, 2, len(tt))
    block = np.zeros(len(tt), np.int8)
    for start in rng.integers(0, len(tt) - 100, 12):
        block[start:start + rng.integers(20, 100)] = rng.choice([2, 3])
    k = np.arange(len(flex), dtype=np.int64)
    whole, _ = detect_slouch(k, flex, block, SlouchParams())
    latched = [e for e in whole.events if e.get("reason") in ("walking", "lying")
               and flex[round(e["t"] * TICK_HZ)] > 15]
    assert len(latched) >= 2
    st, parts = None, []
    for a, b in zip([0, *cuts], [*cuts, len(flex)], strict=True):
        res, st = detect_slouch(k[a:b], flex[a:b], block[a:b], SlouchParams(), st)
        parts += res.events
    assert parts == whole.events


def test_a_shallow_blip_under_the_release_does_not_end_the_slouch() -> None:
    # 0.2 s at 11° (within the noise margin of the 12° release): the same slouch
    flex = hold((0, 5), (25, 20), (11, 0.2), (25, 20), (0, 5))
    ev = run(flex, np.zeros(len(flex), np.int8))
    assert ev == [("slouch_start", 10.0, ""), ("slouch_end", 45.2, "released")]


def test_a_real_return_ends_at_once_when_deep_or_after_the_hold() -> None:
    deep = hold((0, 5), (25, 20), (8, 0.2), (25, 20), (0, 5))  # 8°: 4° under the release
    ev = run(deep, np.zeros(len(deep), np.int8))
    assert [t for _, t, _ in ev] == [10.0, 25.0, 30.2, 45.2]
    held = hold((0, 5), (25, 20), (11, 1.6), (25, 20), (0, 5))  # 11° held for 1.6 s
    ev = run(held, np.zeros(len(held), np.int8))
    assert [t for _, t, _ in ev] == [10.0, 26.0, 31.6, 46.6]


def test_walking_during_the_wait_for_a_real_return_ends_the_episode() -> None:
    flex = hold((0, 5), (25, 20), (11, 3), (25, 20), (0, 5))
    ev = run(flex, blocked(len(flex), "walking", (25.4, 28)))
    # ends with the walk, then 11° held 1 s (from 25 s) is a real return: re-armed
    assert [(t, r) for _, t, r in ev] == [(10.0, ""), (25.4, "walking"), (33.0, ""),
                                          (48.0, "released")]


@pytest.mark.parametrize(("hole_s", "starts"), [(0.38, 1), (1.5, 2)])
def test_a_dropout_the_pipeline_bridges_keeps_one_buzz_a_gap_re_arms(
        hole_s: float, starts: int) -> None:
    """A wearer held 25° throughout; the logger lost ``hole_s`` of samples at 60 s. A
    hole shorter than ``pipeline.gap_s`` cannot hide a return to upright (that needs a
    second under the release), so it is the same slouch: one buzz. A longer hole is a
    gap, which ends the episode; a new one needs the full delay again."""
    mount = Rotation.from_euler("xyz", [10, -20, 35], degrees=True).as_matrix()
    t = 100.0 + np.arange(0, 120, 0.01)
    flex = np.radians(np.where((t >= 130) & (t < 190), 25.0, 0.0))
    body = np.stack([-np.sin(flex), np.zeros_like(flex), np.cos(flex)], axis=1)
    acc = body @ mount + np.random.default_rng(2).normal(0, 0.003, (len(t), 3))
    keep = (t < 160.0) | (t >= 160.0 + hole_s)
    up = upright_from_still(acc[:500])
    pipe = Pipeline(Config(), Calibration(up, forward_from_lean(up, acc[4000:4500])))
    recs = pipe.process(SampleChunk(t[keep], acc[keep])) + pipe.flush()
    ev = [(r["type"], r["t"], r.get("reason", "")) for r in recs
          if r["type"] in ("slouch_start", "slouch_end", "gap")]
    assert [e[0] for e in ev].count("slouch_start") == starts
    assert (Config().pipeline.gap_s > hole_s) == (starts == 1)
    if starts == 2:  # the gap ended the first; the second waited the full delay
        ends = [e for e in ev if e[0] == "slouch_end"]
        assert ends[0][2] == "gap"
        second = [e for e in ev if e[0] == "slouch_start"][1]
        assert second[1] == pytest.approx(160.0 + hole_s + 5.0, abs=0.1)
