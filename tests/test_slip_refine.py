"""Refining a confirmed slip's rotation (edge/slip.py `_refine`, edge/slip_estimate.py):
an estimate whose flexion says nothing keeps the tilt in use, and a refinement waits for
three estimates in a row that agree."""

from __future__ import annotations

import math

import numpy as np

from spinesense.edge.slip import REFINE_EVERY, SlipWatch
from spinesense.edge.slip_estimate import direction_in, estimate_rotation, frame_of, rot_z

UP0 = np.array([1.0, 0.0, 0.0])  # upright in the board's plane; the board normal is z


def _windows(up: np.ndarray, flexes: np.ndarray, lat: float = 0.0) -> np.ndarray:
    frame = frame_of(up)
    return np.array([direction_in(frame, float(f), lat) for f in flexes])


def test_an_overlay_that_finds_nothing_keeps_the_tilt_in_use() -> None:
    rng = np.random.default_rng(7)
    pre = _windows(UP0, rng.normal(2.0, 1.0, 120))
    # after a turn of 25°: the wearer slouched deep for the rest of the day, far beyond
    # what a slip of that size can tilt (the overlay gives no shift), and no jump
    up1 = rot_z(math.radians(25.0)) @ UP0
    post = _windows(up1, rng.normal(27.0, 1.0, 40))
    _rot, first = estimate_rotation(UP0, pre, post, 0.0)
    assert first["shift_raw"] is None and first["jump_deg"] is None
    assert abs(first["spin_deg"] - 25.0) < 1.0
    assert first["flex_deg"] == 0.0  # nothing measured yet: the prior's zero
    _rot, again = estimate_rotation(UP0, pre, post, 0.0, unmeasured_tilt=-4.5)
    assert again["flex_deg"] == -4.5  # when refining: the tilt in use, not zero
    # a measured shift is not overridden
    post2 = _windows(up1, rng.normal(5.0, 1.0, 40))
    _rot, measured = estimate_rotation(UP0, pre, post2, 0.0, unmeasured_tilt=-4.5)
    assert measured["shift_raw"] is not None and measured["flex_deg"] > 0.0


def _watch_with_estimates(rots: list[np.ndarray]) -> tuple[SlipWatch, list]:
    watch = SlipWatch(up=UP0.copy())
    watch._slip = {"w": 0, "confirmed": 0, "up_before": UP0.copy(), "rot": np.eye(3),
                   "next": REFINE_EVERY, "jumps": []}
    queue = list(rots)
    watch._estimate = lambda w: (queue.pop(0), {"flex_deg": 0.0})  # type: ignore[method-assign]
    out = []
    for i in range(len(rots)):
        out.append(watch._refine(REFINE_EVERY * (i + 1)))
    return watch, out


def test_a_refinement_waits_for_three_estimates_that_agree() -> None:
    a, b, c = (rot_z(math.radians(d)) for d in (5.0, 5.4, 5.2))
    _w, out = _watch_with_estimates([a, b, c])
    assert out[0] is None and out[1] is None  # two agreeing estimates are not enough
    assert out[2] is not None and out[2].refined
    # an estimate that flips back in between starts the count again
    far = rot_z(math.radians(-3.0))
    _w, out = _watch_with_estimates([a, far, b, c])
    assert all(d is None for d in out)
