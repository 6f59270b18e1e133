"""A sharp jump across which the wearer held still (edge/slip.py, SlipWatch): its rotation
is the slip's own, flexion tilt included, and is kept when the holds confirm the slip even
if the flexion overlay (which the wearer's new habits after the slip can mislead) does not
agree; a jump across which the wearer also moved (a stand-up, a reach) is not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from slip_helpers import feed_in_chunks

from spinesense.edge.slip_estimate import direction_in, frame_of


def _day(moving_s: int, lean_deg: float = 0.0
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per second: 600 s upright, a 1-s slip (25° about an axis tilted from the board
    normal, which also tilts flexion), then 60 s upright, 300 s leaning 5° forward and
    60 s upright (a posture never held before the slip). ``moving_s`` seconds of dynamic
    acceleration around the slip (2: the slip alone; 7: a stand-up with it); the second
    of the slip leans ``lean_deg`` forward (a quick sit-down's lean on the way)."""
    up = np.array([0.0, -0.97, 0.24])
    up /= np.linalg.norm(up)
    frame = frame_of(up)
    normal = np.array([0.0, 0.0, 1.0])
    side = np.cross(normal, up)
    slip = Rotation.from_rotvec(np.radians(25.0) * (normal + 0.35 * up + 0.35 * side)
                                / np.linalg.norm(normal + 0.35 * up + 0.35 * side)
                                ).as_matrix()
    flex = np.concatenate([np.zeros(600), np.zeros(60), np.full(300, 5.0), np.zeros(60)])
    g = np.array([direction_in(frame, f, 0.0) for f in flex])
    g[600:] = g[600:] @ slip.T
    g[600] = (g[599] + g[601]) / np.linalg.norm(g[599] + g[601])  # the second it turned
    g[600] = direction_in(frame_of(g[600]), lean_deg, 0.0)
    g += np.random.default_rng(4).normal(0.0, 0.002, g.shape)
    g /= np.linalg.norm(g, axis=1)[:, None]
    dyn = np.full(len(g), 20.0)
    dyn[600 - moving_s // 2:600 - moving_s // 2 + moving_s] = 300.0
    return np.arange(len(g)), g, dyn, up, slip


@pytest.mark.parametrize("sizes", [[1080], [7, 3, 50, 13]])
def test_a_jump_held_still_keeps_its_flexion_tilt_when_confirmed(sizes: list[int]) -> None:
    results = {}
    for moving_s, lean in ((2, 0.0), (7, 0.0), (2, 15.0)):
        sec, g, dyn, up, slip = _day(moving_s, lean)
        total, decisions = feed_in_chunks(up, sec, g, dyn, sizes)
        assert [d.provisional for d in decisions][:1] == [True]
        assert any(d.record and d.record.get("count", 0) >= 1 and not d.provisional
                   for d in decisions)  # confirmed by the holds
        results[moving_s, lean] = np.degrees(np.arccos(np.clip((total @ up) @ (slip @ up), -1, 1)))
    # held still: the jump's own rotation (exact); moving: the overlay, which the new
    # posture misleads (no measurement: no tilt), so the slip's tilt is left
    assert results[2, 0.0] < 1.0, results
    assert results[7, 0.0] > 3.0, results  # moving for longer than a slip takes
    assert results[2, 15.0] > 3.0, results  # off the arc of one turn on the way
