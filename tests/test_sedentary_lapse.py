"""Standing that lapses into unknown (edge/activity.py) and the sedentary bout it begins
(edge/sedentary.py): a sit-down seen soon after the lapse re-dates the bout to itself,
and signs of standing soon after the lapse carry the stretch on."""

from __future__ import annotations

import numpy as np

from spinesense.edge.activity import IDLE_STAND_HOLD_S, STANDING, UNKNOWN, WALKING, classify
from spinesense.edge.features import Transition
from spinesense.edge.sedentary import LAPSE_BRIDGE_S, SedentaryParams, detect_sedentary

P = SedentaryParams(limit_s=1800.0, break_s=60.0, repeat_s=600.0)


def _sit_down(t: float) -> Transition:
    return Transition(t, "stand_to_sit", -0.4, 20.0, np.zeros(3))


def _events(sec: np.ndarray, walking: np.ndarray, transitions: list[Transition],
            split: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """Postures and sedentary events, in one block or split in two at ``split``."""
    if split is None:
        post, idle, _ = classify(sec, walking, np.zeros(len(sec)), transitions, 60.0)
        active = (post == STANDING) | (post == WALKING)
        return post, detect_sedentary(sec, active, P, None, idle)[0]
    a, b = slice(0, split), slice(split, None)
    pa, ia, pst = classify(sec[a], walking[a], np.zeros(split),
                           [t for t in transitions if t.t < sec[split]], 60.0)
    pb, ib, _ = classify(sec[b], walking[b], np.zeros(len(sec) - split),
                         [t for t in transitions if t.t >= sec[split]], 60.0, pst)
    ea, sst = detect_sedentary(sec[a], (pa == STANDING) | (pa == WALKING), P, None, ia)[::2]
    eb = detect_sedentary(sec[b], (pb == STANDING) | (pb == WALKING), P, sst, ib)[0]
    return np.concatenate((pa, pb)), ea + eb


def _alerts(events: list[dict]) -> list[float]:
    return [e["bout_start"] for e in events if e["type"] == "sitting_alert"]


def test_a_sit_down_seen_soon_after_standing_lapsed_starts_the_bout() -> None:
    """A walk, standing still (the lapse dates the bout back to the walk's end), then a
    sit-down 20 s into the lapse: the wearer was up until then, so the bout, and its
    alert, start at the sit-down. Block boundaries change nothing."""
    sec = np.arange(2600)
    walking = (sec >= 100) & (sec < 200)
    lapse = 200 + IDLE_STAND_HOLD_S
    sit = lapse + 20
    post, events = _events(sec, walking, [_sit_down(sit + 0.5)])
    assert (post[200:lapse] == STANDING).all() and post[lapse] == UNKNOWN
    assert _alerts(events) == [float(sit)]
    for split in (lapse + 5, sit, sit + 1, 1000):
        assert _events(sec, walking, [_sit_down(sit + 0.5)], split)[1] == events
    # without the sit-down, the bout stays dated from the walk's end
    assert _alerts(_events(sec, walking, [])[1]) == [200.0]


def test_a_sit_down_long_after_the_lapse_does_not_move_the_bout() -> None:
    """Seen more than a break's length into the lapse, a sit-down may come after sitting
    began unseen (or be a seated fidget read as one): the bout keeps its dating."""
    sec = np.arange(2600)
    walking = (sec >= 100) & (sec < 200)
    sit = 200 + IDLE_STAND_HOLD_S + int(P.break_s) + 5
    assert _alerts(_events(sec, walking, [_sit_down(sit + 0.5)])[1]) == [200.0]


def test_walking_soon_after_a_lapse_carries_the_stretch_on() -> None:
    """A walk that made its break, standing still until it lapses, then walking again
    within LAPSE_BRIDGE_S: nobody sat down in between, so no bout began; the next bout
    starts at the sit-down after the second walk. A longer lapse begins a bout."""
    sec = np.arange(2600)
    lapse = 200 + IDLE_STAND_HOLD_S
    again = lapse + int(LAPSE_BRIDGE_S) - 5
    walking = ((sec >= 100) & (sec < 200)) | ((sec >= again) & (sec < again + 30))
    sit = again + 31
    post, events = _events(sec, walking, [_sit_down(sit + 0.5)])
    assert post[lapse] == UNKNOWN
    assert [e["type"] for e in events].count("sitting_break") == 1
    assert _alerts(events) == [float(sit)]
    for split in (lapse + 2, again, again + 1):
        assert _events(sec, walking, [_sit_down(sit + 0.5)], split)[1] == events
    # a lapse longer than the bridge: a bout began with it (dated back to the walk's
    # end) and the second walk, under a break's length, does not end it
    late = lapse + int(LAPSE_BRIDGE_S) + 5
    walking = ((sec >= 100) & (sec < 200)) | ((sec >= late) & (sec < late + 30))
    events = _events(sec, walking, [_sit_down(late + 31.5)])[1]
    assert _alerts(events) == [200.0]


def test_faint_standing_that_lapses_is_not_carried_on() -> None:
    """A few steps (faint evidence: standing lapses before a break) and more steps soon
    after the lapse: the stretch is not carried across, so seated fidgets never add up
    to a break."""
    sec = np.arange(600)
    walking = np.isin(sec, (100, 101, 102, 170, 171, 172))
    post, events = _events(sec, walking, [])
    assert post[160] == UNKNOWN
    assert not any(e["type"] == "sitting_break" for e in events)
    # nor at the start of the day, before any bout: a fidget every 70 s from the first
    # second (each lapse 14 s before the next) still gets its sitting alert
    sec = np.arange(2400)
    walking = (sec % 70 < 3) & (sec < 2000)
    post, events = _events(sec, walking, [])
    assert post[60] == UNKNOWN and LAPSE_BRIDGE_S > 69 - 55
    assert len(_alerts(events)) == 1 and _alerts(events)[0] < 60
