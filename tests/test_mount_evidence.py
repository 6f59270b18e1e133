"""Evidence for the board's facing from sit-to-stand and stand-to-sit transitions
(`edge.mount`): a push whose swing direction caught the trunk coming back from the lean
(its time off by a second or two) is no evidence, and the sign learned with
``mount = "auto"`` does not depend on how the input was cut into chunks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spinesense.config import Config
from spinesense.edge.calibration import make_calibration
from spinesense.edge.mount import MountTracker
from spinesense.edge.pipeline import Pipeline
from spinesense.edge.replay import replay
from spinesense.edge.robustness import day_for_seed, labels_of
from spinesense.edge.transitions import Transition
from spinesense.firmware.worldsim import simulate_world


def _tracker_with_a_lean(lean_at: tuple[int, int]) -> MountTracker:
    """Seconds 0-20 upright, leaning 20° forward (back-out) in ``lean_at``."""
    tr = MountTracker(make_calibration(np.array([0.0, 0.97, 0.25]) / np.hypot(0.97, 0.25),
                                       "test", "auto"), "auto")
    up, fwd = tr.cal.up, tr.ref
    g = np.tile(up, (21, 1))
    th = np.radians(20.0)
    g[lean_at[0]:lean_at[1]] = np.cos(th) * up + np.sin(th) * fwd
    tr._hist_sec, tr._hist_g = np.arange(21, dtype=np.int64), g
    return tr


@pytest.mark.parametrize(("swing", "counted"), [(1.0, True), (-1.0, False)])
def test_a_push_counts_only_when_the_lean_around_it_agrees(swing: float,
                                                           counted: bool) -> None:
    tr = _tracker_with_a_lean((9, 11))
    push = Transition(12.3, "stand_to_sit", -0.4, 20.0, swing * tr.ref)  # stamped late
    tr._transition(push)
    assert (tr.weight, tr.score) == ((1.0, pytest.approx(1.0)) if counted else (0.0, 0.0))


def test_a_push_with_no_swing_direction_is_no_evidence() -> None:
    """A sit-down that leaned under ``TRANSITION_LEAN_DEG`` carries no direction (its
    swing is too shallow to show one): it is no evidence, even with a lean around it."""
    tr = _tracker_with_a_lean((9, 11))
    tr._transition(Transition(12.3, "stand_to_sit", -0.4, 5.0, np.zeros(3)))
    assert tr.weight == 0.0


def test_a_push_with_no_data_around_it_is_no_evidence() -> None:
    tr = _tracker_with_a_lean((9, 11))
    tr._transition(Transition(40.0, "sit_to_stand", 0.4, 20.0, tr.ref.copy()))
    assert tr.weight == 0.0


def test_the_sign_learned_in_auto_is_the_same_in_any_chunking() -> None:
    seed = 20404  # a 24-min standing-desk day: stand-ups and sit-downs decide the sign
    sim = simulate_world(day_for_seed(seed), seed, labels=labels_of(Config()))
    cfg = Config()
    cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor, mount="auto"))
    window = (sim.truth["calibration"]["start"], sim.truth["calibration"]["end"])
    chunk = sim.chunk()
    whole = replay(chunk, cfg, calibrate=window, states=True)
    learned = [r for r in whole if r["type"] == "calibrated" and r["signed"]]
    assert learned and learned[0]["facing"] == sim.truth["facing"]
    for sizes in ([997], [13, 4096, 250]):
        pipe = Pipeline(cfg, states=True, calibrate_window=window)
        out, i, j = [], 0, 0
        while i < len(chunk):
            n = sizes[j % len(sizes)]
            out += pipe.process(chunk[i:i + n])
            i, j = i + n, j + 1
        assert out + pipe.flush() == whole
