"""Rules that depend on steps or on the gyro: steps while the hips drop (stairs; over a
wider span when a gyro shows the trunk hardly leaned), steps after a drop's deepest lean
without a gyro, a sustained walk right after a "sit-down", a sit-down into a deeper
slouch with a gyro, and a stand-up's lean bound without a gyro (see docs/pipeline.md,
"Activity and posture")."""

from __future__ import annotations

import itertools

import numpy as np

from spinesense.edge.activity import (
    LANDING_S,
    SITTING,
    STANDING,
    STRONG_WALK_S,
    WALKING,
    classify,
)
from spinesense.edge.transitions import (
    LONE_SLOUCH_SIT_TURN_DEG,
    MAX_SIT_TURN_DEG,
    MAX_SLOUCH_SIT_TURN_DEG,
    MAX_TURN_DEG,
    SHALLOW_DROP_LEAN_DEG,
    SIT_TO_STAND_MAX_LEAN_DEG,
    SLOUCH_SIT_DROP_M,
    STEPLESS_RISE_LEAN_DEG,
    STEPPED_DROP_STEPS,
    THRUST_RISE_M,
    UNTRACKED_STEPS,
    UNTRACKED_THRUST_DEG,
    PushDetector,
    Transition,
    sit_turn_bound,
)


def _drop(steps_after: int, tracked: bool, cuts: list[int] | None = None,
          gap_s: float = 0.6, step_times: list[float] | None = None, depth: float = 0.4,
          slouch_deg: float = 0.0, lean_deg: float = 25.0) -> list[Transition]:
    """A ``depth`` (m) drop over 10.0–11.5 s with a ``lean_deg`` lean peaking at 10.7 s (ticks at
    25 Hz), with ``steps_after`` step peaks ``gap_s`` apart after the lean, inside the
    movement (or peaks at ``step_times``), then (optionally) a slouch forward to
    ``slouch_deg`` by 12.5 s, held; the trunk's own lean is given only if ``tracked`` (a
    gyro)."""
    k = np.arange(0, 25 * 25)
    t = k / 25.0
    u = np.clip((t - 10.0) / 1.5, 0.0, 1.0)
    z = -depth * (3 * u**2 - 2 * u**3)
    vert = np.gradient(np.gradient(z, t), t)
    moving = (t >= 9.6) & (t < 12.8)
    lean = lean_deg * np.exp(-0.5 * ((t - 10.7) / 0.3) ** 2)
    if step_times is None:
        step_times = [10.9 + gap_s * i for i in range(steps_after)]
    step = _peaks(len(k), step_times)
    slouch = slouch_deg * np.clip(t - 11.5, 0.0, 1.0)
    return _feed(k, vert, moving, _tilted(slouch), np.maximum(lean, slouch), tracked, step,
                 cuts)


def _peaks(n: int, times: list[float] | tuple[float, ...]) -> np.ndarray:
    """Step-peak flags on ``n`` ticks at 25 Hz, set at ``times`` (s)."""
    step = np.zeros(n, bool)
    step[[round(ts * 25) for ts in times]] = True
    return step


def _tilted(deg: np.ndarray) -> np.ndarray:
    """The specific force of a trunk tilted forward by ``deg`` (1 g, about the x axis)."""
    th = np.radians(deg)
    return np.stack((np.zeros(len(th)), np.sin(th), np.cos(th)), axis=1)


def _feed(k: np.ndarray, vert: np.ndarray, moving: np.ndarray, fast: np.ndarray,
          lean: np.ndarray, tracked: bool, step: np.ndarray, cuts: list[int] | None
          ) -> list[Transition]:
    """A fresh detector fed in blocks cut at ``cuts``; gravity straight up, no walking;
    the trunk's own lean is ``lean`` if ``tracked``."""
    up = np.tile([0.0, 0.0, 1.0], (len(k), 1))
    det = PushDetector()
    out: list[Transition] = []
    for a, b in itertools.pairwise([0, *(cuts or []), len(k)]):
        sl = slice(a, b)
        out += det.feed(k[sl], np.ones(b - a, bool), vert[sl], moving[sl], up[sl], fast[sl],
                        lean[sl], lean[sl] if tracked else None, step[sl],
                        np.zeros(b - a, bool))
    return out


def test_steps_after_the_lean_rule_out_a_sit_down_only_without_a_gyro() -> None:
    """Without a gyro the vertical tilts with each step's thrust: a walk that stops (or
    goes down a few stairs) reads as a drop with steps after its deepest force tilt."""
    assert [tr.kind for tr in _drop(0, tracked=False)] == ["stand_to_sit"]
    assert [tr.kind for tr in _drop(UNTRACKED_STEPS - 2, tracked=False)] == ["stand_to_sit"]
    assert _drop(UNTRACKED_STEPS, tracked=False) == []
    assert _drop(UNTRACKED_STEPS, tracked=False, cuts=[263, 271, 300]) == []
    # a seat's landing jolts: as many peaks, but within a second
    assert [tr.kind for tr in _drop(UNTRACKED_STEPS, tracked=False, gap_s=0.3)] == \
        ["stand_to_sit"]
    # with a gyro the vertical does not tilt with the gait: the rule does not apply
    assert [tr.kind for tr in _drop(UNTRACKED_STEPS, tracked=True)] == ["stand_to_sit"]


def test_a_drop_made_while_stepping_is_stairs_not_a_sit_down() -> None:
    """A sit-down lowers the hips with the feet planted; down a few stairs, each step
    takes them lower. The drop's middle 20–80 % lies at 10.43–11.07 s here."""
    stairs = [10.45, 10.75, 11.05]
    assert len(stairs) == STEPPED_DROP_STEPS
    for tracked in (True, False):
        assert _drop(0, tracked, step_times=stairs) == []
        # the walk up to the chair, then the seat's landing: a sit-down
        assert [tr.kind for tr in _drop(0, tracked, step_times=[8.9, 9.4, 9.9, 11.4])] \
            == ["stand_to_sit"]
        # a last shuffle and the landing jolt inside the drop: still a sit-down
        assert [tr.kind for tr in _drop(0, tracked, step_times=stairs[1:])] == \
            ["stand_to_sit"]
    # the same however the ticks are cut into blocks
    assert _drop(0, True, cuts=[262, 270, 277], step_times=stairs) == []


def test_with_a_gyro_a_shallow_drop_counts_its_steps_over_a_wider_span() -> None:
    """A sit-down leans the trunk over the feet; a few stairs down keep it nearly upright
    and step through the whole drop. Here the steps lie in its 10–90 % (10.29–11.21 s)
    but only one in its 20–80 % (10.43–11.07 s)."""
    stairs = [10.36, 10.75, 11.14]
    shallow = SHALLOW_DROP_LEAN_DEG - 2.0
    assert _drop(0, True, step_times=stairs, lean_deg=shallow) == []
    assert _drop(0, True, cuts=[259, 270, 279], step_times=stairs, lean_deg=shallow) == []
    # a sit-down's lean: only the steps in the middle of the drop count
    assert [tr.kind for tr in _drop(0, True, step_times=stairs,
                                    lean_deg=SHALLOW_DROP_LEAN_DEG + 2.0)] == ["stand_to_sit"]
    # without a gyro the force's tilt (with each step's thrust) is no trunk lean
    assert [tr.kind for tr in _drop(0, False, step_times=stairs, lean_deg=shallow)] == \
        ["stand_to_sit"]
    # the walk up to the chair and the seat's landing lie outside even the wider span
    assert [tr.kind for tr in _drop(0, True, step_times=[8.9, 9.4, 9.9, 11.4],
                                    lean_deg=shallow)] == ["stand_to_sit"]


def test_a_sustained_walk_right_after_a_sit_down_means_standing() -> None:
    """A landing bounce lasts a second or two; a walk of STRONG_WALK_S seconds starting
    within LANDING_S of a "sit-down" shows it was none (a stand-up read as a drop)."""
    sec = np.arange(300)
    walking = np.zeros(len(sec), bool)
    walking[102:120] = True                      # 18 s of walking, 2 s after the drop
    sit = [Transition(100.3, "stand_to_sit", -0.3, 10.0, np.zeros(3))]
    assert LANDING_S >= 102 - 100
    post, _, _ = classify(sec, walking, np.zeros(len(sec)), sit, 60.0)
    assert (post[100:102] == SITTING).all() and (post[102:120] == WALKING).all()
    assert (post[120:150] == STANDING).all()
    # a short rhythmic spell (a landing bounce) still leaves sitting
    short = np.zeros(len(sec), bool)
    short[101:101 + STRONG_WALK_S - 1] = True
    post, _, _ = classify(sec, short, np.zeros(len(sec)), sit, 60.0)
    assert (post[101 + STRONG_WALK_S - 1:200] == SITTING).all()
    # the same across blocks
    a, _, st = classify(sec[:110], walking[:110], np.zeros(110), sit, 60.0)
    b, _, _ = classify(sec[110:], walking[110:], np.zeros(190), [], 60.0, st)
    full, _, _ = classify(sec, walking, np.zeros(len(sec)), sit, 60.0)
    assert np.array_equal(np.concatenate((a, b)), full)


def test_with_a_gyro_a_clear_sit_down_may_go_straight_into_a_deeper_slouch() -> None:
    """A sit-down may end MAX_SIT_TURN_DEG from its starting tilt (straight into a
    slouch); with a gyro (the vertical turns with the trunk, so the bend does not leak
    into the drop) one that dropped SLOUCH_SIT_DROP_M or more may end as far as
    MAX_SLOUCH_SIT_TURN_DEG, or LONE_SLOUCH_SIT_TURN_DEG when judged alone (as this one
    is). The end of a climb or a standing reach turns as far but drops less, and without
    a gyro a bend reads as a drop."""
    deeper = MAX_SIT_TURN_DEG + 7.0
    clear = SLOUCH_SIT_DROP_M + 0.05
    for tracked in (True, False):  # a shallow slouch, either way
        got = _drop(0, tracked, depth=clear, slouch_deg=MAX_SIT_TURN_DEG - 5)
        assert [tr.kind for tr in got] == ["stand_to_sit"]
    assert [tr.kind for tr in _drop(0, True, depth=clear, slouch_deg=deeper)] == \
        ["stand_to_sit"]
    assert [tr.kind for tr in _drop(0, True, depth=clear, slouch_deg=deeper,
                                    cuts=[270, 281, 300])] == ["stand_to_sit"]
    assert _drop(0, False, depth=clear, slouch_deg=deeper) == []
    assert _drop(0, True, depth=SLOUCH_SIT_DROP_M - 0.08, slouch_deg=deeper) == []
    lone = LONE_SLOUCH_SIT_TURN_DEG - 3.0
    assert lone > MAX_SLOUCH_SIT_TURN_DEG + 5.0
    assert [tr.kind for tr in _drop(0, True, depth=clear + 0.1, slouch_deg=lone)] == \
        ["stand_to_sit"]
    assert _drop(0, True, depth=clear + 0.1, slouch_deg=LONE_SLOUCH_SIT_TURN_DEG + 5) == []


def test_only_a_sit_down_judged_alone_may_turn_as_far_as_the_lone_bound() -> None:
    """A standing reach out and back is judged as one merged movement, and a walk that
    stops in a bend over a standing desk as a walk's end: both turn 30-40° and read drops
    of 0.4-0.9 m (standing-desk days 80000-180000), so they keep MAX_SLOUCH_SIT_TURN_DEG;
    a gyro and a clear drop are needed for either allowance."""
    clear = SLOUCH_SIT_DROP_M + 0.1
    assert sit_turn_bound(clear, True, alone=True) == LONE_SLOUCH_SIT_TURN_DEG
    assert sit_turn_bound(clear, True, alone=False) == MAX_SLOUCH_SIT_TURN_DEG
    for alone in (True, False):
        assert sit_turn_bound(clear, False, alone) == MAX_SIT_TURN_DEG
        assert sit_turn_bound(SLOUCH_SIT_DROP_M - 0.05, True, alone) == MAX_SIT_TURN_DEG
    assert MAX_SIT_TURN_DEG < MAX_SLOUCH_SIT_TURN_DEG < LONE_SLOUCH_SIT_TURN_DEG


def _rise(peak_deg: float, tracked: bool, bend_deg: float = 0.0,
          cuts: list[int] | None = None, lift: float = 0.45,
          pause: tuple[float, float] | None = None,
          step_times: tuple[float, ...] = (12.0,)) -> list[Transition]:
    """A ``lift`` (m) rise over 10.0–11.5 s whose forward lean peaks at ``peak_deg`` at 10.7 s
    and is back upright by 11.5 s, then (optionally) a bend forward to ``bend_deg`` by
    12.5 s, held; the specific force tilts that way. The trunk's own lean is given only
    if ``tracked``; a ``pause`` (s) splits the movement in two; step peaks at
    ``step_times`` (by default one, the first step after standing)."""
    k = np.arange(0, 25 * 25)
    t = k / 25.0
    u = np.clip((t - 10.0) / 1.5, 0.0, 1.0)
    z = lift * (3 * u**2 - 2 * u**3)
    vert = np.gradient(np.gradient(z, t), t)
    moving = (t >= 9.6) & (t < 12.8)
    if pause is not None:
        moving &= (t < pause[0]) | (t >= pause[1])
    lean = peak_deg * np.exp(-0.5 * ((t - 10.7) / 0.25) ** 2) * (t < 11.5)
    lean += bend_deg * np.clip(t - 11.5, 0.0, 1.0)
    return _feed(k, vert, moving, _tilted(lean), lean, tracked, _peaks(len(k), step_times),
                 cuts)


def test_without_a_gyro_a_stand_up_may_tip_the_force_past_the_lean_bound() -> None:
    """Without a gyro the lean bound applies to the specific force's tilt, which the
    push's forward thrust tips by up to UNTRACKED_THRUST_DEG more than the trunk leans;
    such a stand-up must rise THRUST_RISE_M or more and end as upright as it began (a
    seated reach tips the force as far, but reads a smaller rise or ends bent)."""
    deep = SIT_TO_STAND_MAX_LEAN_DEG + 7.0  # a trunk at 40-45° plus a thrust of ~0.2 g
    assert [tr.kind for tr in _rise(40.0, tracked=False)] == ["sit_to_stand"]
    assert [tr.kind for tr in _rise(deep, tracked=False)] == ["sit_to_stand"]
    assert [tr.kind for tr in _rise(deep, False, cuts=[262, 268, 290])] == ["sit_to_stand"]
    # the gyro says the trunk itself leaned that far: not a stand-up
    assert _rise(deep, tracked=True) == []
    # beyond what a thrust explains
    assert _rise(SIT_TO_STAND_MAX_LEAN_DEG + UNTRACKED_THRUST_DEG + 5, tracked=False) == []
    # a smaller rise is a stand-up only within the bound
    small = THRUST_RISE_M - 0.07
    assert [tr.kind for tr in _rise(40.0, tracked=False, lift=small)] == ["sit_to_stand"]
    assert _rise(deep, tracked=False, lift=small) == []
    # two movements judged as one (a seated reach out and back): only within the bound
    split = (10.5, 11.3)  # neither part rises enough alone
    assert [tr.kind for tr in _rise(40.0, tracked=False, pause=split)] == ["sit_to_stand"]
    assert _rise(deep, tracked=False, pause=split) == []
    # upright, then bent over a desk: a stand-up within the bound, not past it
    bend = MAX_TURN_DEG + 10
    assert [tr.kind for tr in _rise(40.0, tracked=False, bend_deg=bend)] == ["sit_to_stand"]
    assert _rise(deep, tracked=False, bend_deg=bend) == []


def test_a_shallow_rise_without_a_step_is_a_seated_shift_not_a_stand_up() -> None:
    """Typing or a shift on the seat can tip the trunk just past the 8° lean and read as
    a rise; a stand-up that leans under STEPLESS_RISE_LEAN_DEG must show a step peak in
    its movement (or walking). A deeper lean needs none (a stand-up at a standing desk)."""
    shallow = STEPLESS_RISE_LEAN_DEG - 1.0
    for tracked in (True, False):
        assert _rise(shallow, tracked, step_times=()) == []
        assert [tr.kind for tr in _rise(shallow, tracked)] == ["sit_to_stand"]
        assert [tr.kind for tr in _rise(STEPLESS_RISE_LEAN_DEG + 3.0, tracked,
                                        step_times=())] == ["sit_to_stand"]
    assert _rise(shallow, True, cuts=[262, 268, 290], step_times=()) == []
    assert [tr.kind for tr in _rise(shallow, True, cuts=[262, 268, 290])] == ["sit_to_stand"]
