"""``mount = "auto"``: before the flexion sign is known, a first walk up the stairs (a
forward lean of ~20°) must not re-anchor a right upright, or every later slouch is read
against a tilted reference and missed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spinesense.config import Config
from spinesense.edge.calibration import make_calibration
from spinesense.edge.mount import MountTracker
from spinesense.edge.robustness import run_seed


def _tracker(mount: str) -> MountTracker:
    up = np.array([0.0, 0.97, 0.25])  # the board on the back, z out and a little up
    return MountTracker(make_calibration(up, "test", mount), mount)


def _leaned(tr: MountTracker, flex_deg: float, lat_deg: float) -> np.ndarray:
    cal = tr.cal
    rot = Rotation.from_rotvec(np.radians(-flex_deg) * cal.lateral) * \
        Rotation.from_rotvec(np.radians(lat_deg) * -cal.forward)
    return rot.apply(cal.up)


@pytest.mark.parametrize("flex", [22.0, -22.0])
def test_unsigned_walking_lean_of_stairs_size_is_gait(flex: float) -> None:
    tr = _tracker("auto")
    assert not tr.cal.signed
    assert tr._walking_lean(_leaned(tr, flex, 0.0))      # either way: sign not known
    assert not tr._walking_lean(_leaned(tr, 35.0, 0.0))  # deeper than stairs: stale
    assert not tr._walking_lean(_leaned(tr, 3.0, 25.0))  # sideways: stale


def test_signed_walking_lean_keeps_its_sign() -> None:
    tr = _tracker("back-out")
    assert tr.cal.signed
    assert tr._walking_lean(_leaned(tr, 22.0, 0.0))
    assert not tr._walking_lean(_leaned(tr, -22.0, 0.0))


def test_auto_day_whose_first_walk_is_stairs_finds_every_slouch() -> None:
    """Dev seed 20210 (a lounge day): the first walk is 60 s up the stairs."""
    run = run_seed(20210, Config(), mount="auto", via="memory")
    assert run.metrics["slouch_recall"] == 1.0
    assert run.metrics["slouch_as_recline"] == 0.0


def test_auto_day_whose_sign_is_learned_during_a_sit_down_finds_every_slouch() -> None:
    """Dev seed 20735 (a walker day): the sign is learned in the second the wearer sits
    down into a 25° slouch. Restarting the gyro fusion then took the sit-down's rotation
    rate for the gyro's bias and read the slouch as 10-13°: missed. Only the sign
    changed, so the fusion now carries on."""
    run = run_seed(20735, Config(), mount="auto", via="memory")
    assert run.metrics["slouch_recall"] == 1.0
