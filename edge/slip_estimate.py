"""Geometry of a clip slip and the estimate of its rotation (used by `edge.slip`).

A slipping clip turns the board about an axis near its own normal. Two parts of that
rotation matter to the detectors:

* the *turn about the normal* (most of it), which makes every posture read as a lateral
  lean of about the same size: measured well, as the turn that brings the median lateral
  lean after the slip back to zero (over the windows within ``TURN_RANGE_DEG`` of the
  upright before it: lying on one side, ~90° sideways, had outweighed the upright
  postures on lounge days);
* the *flexion tilt*: the axis is tilted from the normal by a small angle ε (a clip
  hinges on its spring, ~0.2 rad per axis), and a turn of θ about it shifts flexion by
  about ε·sin θ. Nothing in the gravity direction tells a board tipped forward from a
  wearer leaning forward, so this part can only be inferred from behaviour: the wearer's
  postures (upright sitting, typing, standing, walking, reclines) recur before and after
  the slip, so the whole distribution of flexion shifts by the tilt. `flexion_shift`
  finds the shift that overlays the two distributions best, every mode at once (a single
  densest band picked the sitting mode on one side and the recline or typing mode on the
  other when the activity mix changed). Since behaviour varies by a few degrees from
  hour to hour, that measurement is shrunk toward zero as a slip of that size warrants
  (`flexion_tilt`): little for a large turn, much for a small one.

A second, independent measurement of the tilt is the gravity *jump* across the slip itself
(`edge.slip_jump`), when the wearer was upright on both sides of it: its flexion is the
tilt plus whatever posture change came with it (a sit-down or a stand-up moves the upright
posture by a few degrees). Either measurement alone can be wrong (a change of habit, a
posture change across the jump); two that agree are the slip (`jump_flexion`,
`flexion_tilt` with ``jump``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spinesense.edge.calibration import board_axis, unit

PLAUSIBLE_PER_DEG = 0.5   # a turn of θ tilts flexion by at most ~θ/2 ...
PLAUSIBLE_MIN_DEG = 3.0   # ... or this, whichever is larger
AXIS_TILT_RAD = 0.2       # typical tilt of the slip axis from the board normal (per axis)
BEHAVIOUR_SD_DEG = 3.0    # how far the wearer's flexion distribution drifts by itself
CHANGED_SHARE = 0.2       # ... and how often a change of habit moves it further
BIN_DEG = 0.25            # histogram bins of flexion
BANDWIDTH_DEG = 2.0       # smoothing of each window's flexion (its own sway and noise)
FLEX_RANGE_DEG = 60.0     # lying and deep bends say nothing about upright postures
TURN_RANGE_DEG = 60.0     # windows further than this from the upright before the slip
#                           (lying on one side reads ~90° sideways) say nothing about its turn
JUMP_POSTURE_SD_DEG = 4.0  # a jump across a slip: posture change from one upright to another
JUMP_OTHER_SHARE = 0.3    # ... and how often the wearer changed posture more than that
JUMP_OTHER_DEG = 30.0     # ... (anywhere within this)
JUMP_UPRIGHT_DEG = 8.0    # the jump starts this close to straight (flexion and lateral) ...
JUMP_LAND_DEG = 30.0      # ... and lands short of a deep slouch or recline
JUMP_CROSS_DEG = 10.0     # undone by the slip's turn within this (the wearer's own
#                           sideways lean differs by that much from one posture to the
#                           next, a bag's included) and within half the turn: it crossed
JUMP_MIN_TURN_DEG = 12.0  # below this, a jump that crosses the slip is not told from others
JUMP_SHIFT_LIMIT_DEG = 25.0  # with a jump to check it, the overlay may find a shift this far
TILT_GRID = np.arange(-45.0, 45.0 + 1e-9, 0.25)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b (Rodrigues)."""
    v = np.cross(a, b)
    s, c = float(np.linalg.norm(v)), float(a @ b)
    if s < 1e-12:
        return np.eye(3)
    k = v / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def angle_of(rot: np.ndarray) -> float:
    """The angle (degrees) of a rotation matrix."""
    return math.degrees(math.acos(max(-1.0, min(1.0, (float(np.trace(rot)) - 1) / 2))))


def rot_z(phi: float) -> np.ndarray:
    """A turn by ``phi`` (radians) about the board normal (sensor z)."""
    c, s = math.cos(phi), math.sin(phi)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def sagittal_angles(up: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flexion toward the board normal and lateral lean (degrees) of unit vectors g (n, 3)
    against ``up``; signs follow the board, not the facing (they only need to agree with
    themselves)."""
    b = board_axis(up)
    lat = np.cross(b, up)
    gu = g @ up
    return np.degrees(np.arctan2(g @ b, gu)), np.degrees(np.arctan2(g @ lat, gu))


def frame_of(up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upright, the board-normal flexion axis and the lateral axis (see `sagittal_angles`)."""
    b = board_axis(up)
    return up, b, np.cross(b, up)


def angles_in(frame: tuple[np.ndarray, np.ndarray, np.ndarray], g: np.ndarray
              ) -> tuple[float, float]:
    """`sagittal_angles` of one unit vector in a precomputed frame (the per-window path)."""
    gu = float(g @ frame[0])
    return (math.degrees(math.atan2(float(g @ frame[1]), gu)),
            math.degrees(math.atan2(float(g @ frame[2]), gu)))


def direction_in(frame: tuple[np.ndarray, np.ndarray, np.ndarray], flex: float,
                 lat: float) -> np.ndarray:
    """The unit vector whose `angles_in` ``frame`` are (``flex``, ``lat``) degrees."""
    v = frame[0] + math.tan(math.radians(flex)) * frame[1] + \
        math.tan(math.radians(lat)) * frame[2]
    return v / float(np.linalg.norm(v))


def plausible_tilt_deg(spin_deg: float) -> float:
    """The largest flexion tilt a turn of ``spin_deg`` can bring (more is the wearer)."""
    return max(PLAUSIBLE_MIN_DEG, PLAUSIBLE_PER_DEG * abs(spin_deg))


def flexion_shift(before: np.ndarray, after: np.ndarray, limit: float) -> float | None:
    """The shift s of the flexion values ``after`` against ``before`` (degrees, one per
    window) that overlays their distributions best: the maximum over |s| <= 2·``limit`` of
    Σᵢⱼ exp(−(aⱼ − bᵢ − s)² / 4h²), h = ``BANDWIDTH_DEG``, computed on histograms. None
    when either side has fewer than 3 values in range, or when the best overlay is beyond
    ``limit``: then the wearer's behaviour changed (a long slouch after the slip lined up
    with upright sitting before it), and the overlay says nothing about the slip."""
    before = before[np.abs(before) < FLEX_RANGE_DEG]
    after = after[np.abs(after) < FLEX_RANGE_DEG]
    if len(before) < 3 or len(after) < 3:
        return None
    nb = round(2 * FLEX_RANGE_DEG / BIN_DEG) + 1
    hb = np.bincount(np.rint((before + FLEX_RANGE_DEG) / BIN_DEG).astype(np.int64),
                     minlength=nb).astype(float)
    ha = np.bincount(np.rint((after + FLEX_RANGE_DEG) / BIN_DEG).astype(np.int64),
                     minlength=nb).astype(float)
    sigma = math.sqrt(2.0) * BANDWIDTH_DEG / BIN_DEG  # two kernels convolved
    half = math.ceil(4 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    lag = math.floor(2.0 * limit / BIN_DEG)
    full = np.correlate(ha, hb, mode="full")  # index nb - 1 + s: after shifted by s bins
    centre = nb - 1
    span = full[centre - lag - half:centre + lag + half + 1]
    score = np.convolve(span, kernel, mode="valid")  # lags -lag..lag
    best = float((int(np.argmax(score)) - lag) * BIN_DEG)
    return best if abs(best) <= limit else None


def _mixture(x: np.ndarray, sd: float, other: float, width: float) -> np.ndarray:
    """Likelihood of an error ``x``: N(0, sd) with probability 1 − ``other``, else uniform
    over ±``width``."""
    return (1 - other) * np.exp(-0.5 * (x / sd) ** 2) / (math.sqrt(2 * math.pi) * sd) + \
        other / (2 * width)


def flexion_tilt(shift: float | None, spin_deg: float, jump: float | None = None) -> float:
    """The flexion tilt to apply, the mean of its posterior given the measured
    distribution ``shift`` (and the jump across the slip, ``jump``). Prior: a turn of
    θ = ``spin_deg`` tilts flexion by ε·sin θ, ε ~ N(0, ``AXIS_TILT_RAD``). Measurement:
    the tilt plus the wearer's own drift, which is N(0, ``BEHAVIOUR_SD_DEG``) most of the
    time but, one time in ``CHANGED_SHARE``, a change of habit that may shift the overlay
    anywhere in the plausible range (uniform over ±`plausible_tilt_deg`). So a small shift
    is kept in proportion to what a slip of that size can do, and a large one counts the
    less the less a slip explains it. The jump is the tilt plus the posture change across
    it: N(0, ``JUMP_POSTURE_SD_DEG``), or (``JUMP_OTHER_SHARE``) a larger change. With a
    jump the posterior is computed on a grid; without, in closed form (the same model)."""
    prior = math.degrees(AXIS_TILT_RAD * math.sin(math.radians(min(abs(spin_deg), 90.0))))
    if jump is not None:
        post = np.exp(-0.5 * (TILT_GRID / max(prior, 0.1)) ** 2) * _mixture(
            jump - TILT_GRID, JUMP_POSTURE_SD_DEG, JUMP_OTHER_SHARE, JUMP_OTHER_DEG)
        if shift is not None:
            post *= _mixture(shift - TILT_GRID, BEHAVIOUR_SD_DEG, CHANGED_SHARE,
                             plausible_tilt_deg(spin_deg))
        return float((post @ TILT_GRID) / post.sum())
    if shift is None:
        return 0.0
    var = prior * prior + BEHAVIOUR_SD_DEG ** 2
    slip_like = math.exp(-0.5 * shift * shift / var) / math.sqrt(2 * math.pi * var)
    habit_like = 1.0 / (2.0 * plausible_tilt_deg(spin_deg))
    p_slip = (1 - CHANGED_SHARE) * slip_like / ((1 - CHANGED_SHARE) * slip_like +
                                                CHANGED_SHARE * habit_like)
    return p_slip * shift * prior * prior / var


def jump_flexion(up0: np.ndarray, up1: np.ndarray, spin_deg: float,
                 jumps: list[tuple[np.ndarray, np.ndarray]], lat0: float = 0.0
                 ) -> float | None:
    """The flexion of the gravity jump that crossed the slip, from ``jumps`` (before,
    after: unit gravity of the steady stretches), measured before on the reference ``up0``
    and after on ``up1`` (``up0`` turned by the slip's ``spin_deg`` about the board normal).
    A jump crossed the slip when that turn undoes its sideways part (the seconds before
    and after are about equally straight; a jump on one side of the slip stays off by the
    whole turn); the closest one counts when it starts upright (a jump out of a
    slouch or a recline is mostly the wearer) and lands short of a deep posture. None
    when no jump qualifies, or the turn is too small to tell the crossing one."""
    if abs(spin_deg) < JUMP_MIN_TURN_DEG:
        return None
    f0, f1 = frame_of(up0), frame_of(up1)
    best, found = min(JUMP_CROSS_DEG, abs(spin_deg) / 2), None
    for before, after in jumps:
        fl0, la0 = angles_in(f0, before)
        fl1, la1 = angles_in(f1, after)
        miss = abs(la1 - la0)
        if max(abs(fl0), abs(la0 - lat0)) <= JUMP_UPRIGHT_DEG and abs(fl1) < JUMP_LAND_DEG and \
                miss <= best:
            best, found = miss, fl1 - fl0
    return found


def estimate_rotation(up0: np.ndarray, pre: np.ndarray, post: np.ndarray, lat0: float,
                      jumps: list[tuple[np.ndarray, np.ndarray]] | None = None,
                      unmeasured_tilt: float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """A slip's rotation from the reference ``up0``, given the windows' unit gravity
    before (``pre``) and after it (``post``): the turn about the board normal that brings
    the median lateral back to ``lat0``, then the flexion tilt of the distribution's shift
    (`flexion_shift`), shrunk as the turn's size warrants, and checked against the jump
    across the slip when one of ``jumps`` crossed it (`jump_flexion`, `flexion_tilt`).
    When neither says anything about the tilt (no jump, and the overlay found no shift a
    slip explains), the tilt is ``unmeasured_tilt``: the prior's zero at the first
    estimate, the tilt in use when refining (no measurement is not a measurement of 0)."""
    near = post[post @ up0 >= math.cos(math.radians(TURN_RANGE_DEG))]
    upright = near if len(near) else post
    phi = 0.0
    for _ in range(4):
        lat = np.median(sagittal_angles(rot_z(phi) @ up0, upright)[1]) - lat0
        lat2 = np.median(sagittal_angles(rot_z(phi + 0.01) @ up0, upright)[1]) - lat0
        slope = (lat2 - lat) / 0.01
        if abs(slope) < 1e-6:
            break
        phi -= float(np.clip(lat / slope, -0.5, 0.5))
    up1 = unit(rot_z(phi) @ up0)
    spin = math.degrees(phi)
    jump = jump_flexion(up0, up1, spin, jumps or [], lat0)
    limit = plausible_tilt_deg(spin)
    shift = flexion_shift(sagittal_angles(up0, pre)[0], sagittal_angles(up1, post)[0],
                          limit if jump is None else max(limit, JUMP_SHIFT_LIMIT_DEG))
    flex = unmeasured_tilt if shift is None and jump is None else flexion_tilt(shift, spin, jump)
    d = math.radians(flex)
    up2 = unit(math.cos(d) * up1 + math.sin(d) * board_axis(up1))
    lat_off = float(np.median(sagittal_angles(up0, upright)[1]) - lat0)
    return rotation_between(up0, up2), {
        "spin_deg": spin, "flex_deg": flex, "shift_raw": shift, "jump_deg": jump,
        "shift": ("n/a" if shift is None else f"{shift:+.1f}°") + (
            "" if jump is None else f"; the jump across the slip {jump:+.1f}°"),
        "lateral_deg": lat_off}
