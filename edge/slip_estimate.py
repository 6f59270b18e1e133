"""Geometry of a clip slip and the estimate of its rotation (used by `edge.slip`).

A slipping clip turns the board about an axis near its own normal. Two parts of that
rotation matter to the detectors:

* the *turn about the normal* (most of it), which makes every posture read as a lateral
  lean of about the same size: measured well, as the turn that brings the median lateral
  lean after the slip back to zero;
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


def flexion_tilt(shift: float | None, spin_deg: float) -> float:
    """The flexion tilt to apply, the mean of its posterior given the measured
    distribution ``shift``. Prior: a turn of θ = ``spin_deg`` tilts flexion by ε·sin θ,
    ε ~ N(0, ``AXIS_TILT_RAD``). Measurement: the tilt plus the wearer's own drift, which
    is N(0, ``BEHAVIOUR_SD_DEG``) most of the time but, one time in ``CHANGED_SHARE``, a
    change of habit that may shift the overlay anywhere in the plausible range (uniform
    over ±`plausible_tilt_deg`). So a small shift is kept in proportion to what a slip of
    that size can do, and a large one counts the less the less a slip explains it."""
    if shift is None:
        return 0.0
    prior = math.degrees(AXIS_TILT_RAD * math.sin(math.radians(min(abs(spin_deg), 90.0))))
    var = prior * prior + BEHAVIOUR_SD_DEG ** 2
    slip_like = math.exp(-0.5 * shift * shift / var) / math.sqrt(2 * math.pi * var)
    habit_like = 1.0 / (2.0 * plausible_tilt_deg(spin_deg))
    p_slip = (1 - CHANGED_SHARE) * slip_like / ((1 - CHANGED_SHARE) * slip_like +
                                                CHANGED_SHARE * habit_like)
    return p_slip * shift * prior * prior / var


def estimate_rotation(up0: np.ndarray, pre: np.ndarray, post: np.ndarray, lat0: float
                      ) -> tuple[np.ndarray, dict[str, Any]]:
    """A slip's rotation from the reference ``up0``, given the windows' unit gravity
    before (``pre``) and after it (``post``): the turn about the board normal that brings
    the median lateral back to ``lat0``, then the flexion tilt of the distribution's shift
    (`flexion_shift`), shrunk as the turn's size warrants (`flexion_tilt`)."""
    phi = 0.0
    for _ in range(4):
        lat = np.median(sagittal_angles(rot_z(phi) @ up0, post)[1]) - lat0
        lat2 = np.median(sagittal_angles(rot_z(phi + 0.01) @ up0, post)[1]) - lat0
        slope = (lat2 - lat) / 0.01
        if abs(slope) < 1e-6:
            break
        phi -= float(np.clip(lat / slope, -0.5, 0.5))
    up1 = unit(rot_z(phi) @ up0)
    spin = math.degrees(phi)
    shift = flexion_shift(sagittal_angles(up0, pre)[0], sagittal_angles(up1, post)[0],
                          plausible_tilt_deg(spin))
    flex = flexion_tilt(shift, spin)
    d = math.radians(flex)
    up2 = unit(math.cos(d) * up1 + math.sin(d) * board_axis(up1))
    lat_off = float(np.median(sagittal_angles(up0, post)[1]) - lat0)
    return rotation_between(up0, up2), {
        "spin_deg": spin, "flex_deg": flex, "shift_raw": shift,
        "shift": "n/a" if shift is None else f"{shift:+.1f}°", "lateral_deg": lat_off}
