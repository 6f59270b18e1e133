"""A clip that slips *during* a change of posture (edge/slip.py, edge/slip_estimate.py):
the gravity jump across it mixes the slip's flexion tilt with the posture change, and the
overlay of the flexion distributions before and after is shrunk toward zero as a slip of
that size warrants. Each alone leaves a large tilt half applied; the two are independent
measurements of the same tilt, and when they agree the tilt is kept."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from slip_helpers import feed_in_chunks

from spinesense.edge.slip_estimate import (
    direction_in,
    flexion_tilt,
    frame_of,
    jump_flexion,
    rot_z,
)

UP = np.array([0.0, -0.97, 0.24]) / np.linalg.norm([0.0, -0.97, 0.24])


def _slip(turn_deg: float, side_tilt: float) -> np.ndarray:
    """A turn about an axis tilted from the board normal toward the lateral axis (a clip
    that hinges on its spring): it also tilts flexion, by about side_tilt·sin(turn)."""
    normal = np.array([0.0, 0.0, 1.0])
    side = np.cross(normal, UP)
    axis = normal + side_tilt * side
    return Rotation.from_rotvec(np.radians(turn_deg) * axis / np.linalg.norm(axis)).as_matrix()


def _sit_down_day(slip: np.ndarray, landing_deg: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per second: 600 s of typing and upright sitting (6° and 0°, 100-s blocks), a
    4-s sit-down (a forward lean of 25°, moving) during which the clip slips, landing at
    ``landing_deg``, then the same postures again for 20 minutes."""
    frame = frame_of(UP)
    blocks = [6.0, 0.0] * 3
    flex = [f for b in blocks for f in [b] * 100]
    flex += [18.0, 25.0, 12.0, landing_deg]        # the sit-down, the slip in its middle
    flex += [landing_deg] * 30
    flex += [f for b in [0.0, 6.0] * 6 for f in [b] * 100]
    g = np.array([direction_in(frame, f, 0.0) for f in flex])
    g[601:] = g[601:] @ slip.T
    g += np.random.default_rng(7).normal(0.0, 0.002, g.shape)
    g /= np.linalg.norm(g, axis=1)[:, None]
    dyn = np.full(len(g), 20.0)
    dyn[599:605] = 400.0
    return np.arange(len(g)), g, dyn


def _feed(sec: np.ndarray, g: np.ndarray, dyn: np.ndarray, sizes: list[int]
          ) -> tuple[np.ndarray, list]:
    return feed_in_chunks(UP, sec, g, dyn, sizes)


def _flexion_error(total: np.ndarray, slip: np.ndarray) -> float:
    """Flexion (degrees) of the true upright after the slip on the watch's upright."""
    up = total @ UP
    frame = frame_of(up)
    true_up = slip @ UP
    return float(np.degrees(np.arctan2(true_up @ frame[1], true_up @ frame[0])))


@pytest.mark.parametrize("sizes", [[2000], [7, 3, 50, 13]])
def test_a_slip_during_a_sit_down_keeps_its_flexion_tilt(sizes: list[int]) -> None:
    """A 30° slip whose hinge tilts flexion by ~10°, in the middle of a sit-down that
    lands 5° further forward than before: the jump reads ~15°, the overlay ~10°. With
    only the shrunk overlay, 4–5° of the tilt were left (every posture read that much
    more forward: a slouch alert storm waiting at the threshold)."""
    slip = _slip(30.0, -0.35)
    before = _flexion_error(np.eye(3), slip)  # what the slip did to flexion, uncorrected
    assert before > 8.0
    total, decisions = _feed(*_sit_down_day(slip, 5.0), sizes)
    confirmed = [d for d in decisions if d.record and not d.provisional and d.record.get(
        "count", 0) >= 1]
    assert confirmed, [d.record for d in decisions]
    assert "the jump across the slip" in confirmed[0].record["reanchored"]
    assert abs(_flexion_error(total, slip)) < 2.5, _flexion_error(total, slip)


def test_the_same_posture_change_without_a_slip_tilt_is_left_alone() -> None:
    """The same sit-down and slip without a flexion tilt (the axis on the normal): the
    jump's 5° is the posture change, which the overlay (no shift) contradicts; the
    estimate stays near zero instead of following the jump."""
    slip = _slip(30.0, 0.0)
    total, _ = _feed(*_sit_down_day(slip, 5.0), [2000])
    assert abs(_flexion_error(total, slip)) < 2.0, _flexion_error(total, slip)


def test_the_jump_and_the_overlay_combine_as_two_measurements() -> None:
    # agreeing on a large tilt: kept (the overlay alone keeps about half)
    alone, both = flexion_tilt(12.0, 30.0), flexion_tilt(12.0, 30.0, jump=13.0)
    assert alone < 7.0 < 9.0 < both
    # a jump far off the overlay (a posture change across it) moves it little
    assert abs(flexion_tilt(2.0, 30.0, jump=20.0) - flexion_tilt(2.0, 30.0)) < 2.0
    # no overlay yet: the jump alone, shrunk as a slip of that size warrants
    assert 0.0 < flexion_tilt(None, 30.0, jump=8.0) < 8.0
    assert flexion_tilt(None, 30.0, jump=-8.0) == pytest.approx(-flexion_tilt(None, 30.0,
                                                                              jump=8.0))


def test_only_the_jump_that_crossed_the_slip_counts() -> None:
    """A jump measured on either side of the slip stays sideways by the whole turn after
    it is undone; a jump out of a deep slouch is mostly the wearer."""
    frame0 = frame_of(UP)
    turned = rot_z(np.radians(30.0)) @ UP
    frame1 = frame_of(turned)
    crossing = (direction_in(frame0, 1.0, 0.0), direction_in(frame1, 9.0, 1.0))
    before_it = (direction_in(frame0, 0.0, 0.0), direction_in(frame0, 6.0, 0.0))
    after_it = (direction_in(frame1, 0.0, 0.0), direction_in(frame1, 6.0, 0.0))
    from_slouch = (direction_in(frame0, 30.0, 0.0), direction_in(frame1, 4.0, 0.0))
    assert jump_flexion(UP, turned, 30.0, [before_it, crossing, after_it]) == \
        pytest.approx(8.0, abs=0.3)
    assert jump_flexion(UP, turned, 30.0, [before_it, after_it, from_slouch]) is None
    assert jump_flexion(UP, turned, 8.0, [crossing]) is None  # too small a turn to tell


def test_the_decisions_do_not_depend_on_the_chunking() -> None:
    day = _sit_down_day(_slip(30.0, -0.35), 5.0)
    one, dec_one = _feed(*day, [2000])
    many, dec_many = _feed(*day, [7, 3, 50, 13, 1])
    assert [(d.sec, d.record) for d in dec_one] == [(d.sec, d.record) for d in dec_many]
    # the jump finder's running sums start where each call does: equal to the last bits
    assert np.allclose(one, many, rtol=0.0, atol=1e-12)
