"""Per-second posture: sitting, standing, walking, lying or unknown.

What an upper-back sensor can and cannot tell:

* walking: rhythmic vertical acceleration with steps (measured directly);
* lying: the trunk far from upright (more than ``LYING_DEG``; measured directly);
* reclining: held ``RECLINE_CLUE_DEG`` or more back of upright for ``RECLINE_CLUE_S``
  means sitting (against a backrest; nobody stands leaning back like that);
* sitting vs standing: the trunk is upright in both, so tilt alone cannot tell. The
  pipeline *infers* it from what happened last: a sit-to-stand push or walking means
  standing, a stand-to-sit drop (or getting up from lying) means sitting. Before any such
  clue, or after a long gap, the answer is ``unknown``, not a guess. Standing must keep
  being shown: without walking or a stand-up it lapses into ``unknown`` (sedentary)
  after ``STAND_HOLD_S`` (a sustained walk or a clear push) or ``WEAK_STAND_HOLD_S`` (a
  faint push or a few steps, which a reach or a fidget can fake: under a 60-s break), so
  a missed sit-down is not "standing" for half an hour; the bout is then dated from the
  last second that showed the wearer on their feet.

Vectorised: the clues are written into a per-second array and forward-filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinesense.edge.features import Transition
from spinesense.edge.filters import run_lengths

POSTURES = ("sitting", "standing", "walking", "lying", "unknown")
SITTING, STANDING, WALKING, LYING, UNKNOWN = range(5)
LYING_DEG = 50.0


WALK_CLUE_S = 2  # even a few steps put the wearer on their feet ...
LANDING_S = 6  # ... unless right after a sit-down (its landing bounce can look rhythmic)
STAND_HOLD_S = 65  # standing this long after a sustained walk: no longer known (over break_s) ...
STRONG_WALK_S = 5  # (a walk this long)
WEAK_STAND_HOLD_S = 55  # ... after a faint stand-up or a few steps (under a break's 60 s)
CLEAR_PUSH_M = 0.3  # a stand-up this large is clear
RECLINE_CLUE_DEG = 12.0  # held this far back of upright, nobody is standing
RECLINE_CLUE_S = 8


@dataclass
class PostureState:
    seated: int = UNKNOWN  # SITTING, STANDING or UNKNOWN: the inferred base posture
    last_sec: int | None = None
    walk_run: int = 0      # consecutive walking seconds up to last_sec
    support_sec: int | None = None  # the last second that showed the wearer on their feet
    support_hold: int = STAND_HOLD_S  # how long that second keeps standing known
    sat_sec: int | None = None      # the last sit-down's second
    recline_run: int = 0   # consecutive reclined seconds up to last_sec


def classify(sec: np.ndarray, walking: np.ndarray, tilt_deg: np.ndarray,
             transitions: list[Transition], forget_s: float,
             state: PostureState | None = None, reclined: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, PostureState]:
    """Posture code per second (see module doc) and, where standing has just lapsed
    into ``unknown``, the time the wearer was last seen on their feet (NaN elsewhere):
    the sedentary bout is dated from there. ``forget_s``: a gap this long (missing
    seconds) makes the base posture unknown again."""
    st = PostureState() if state is None else state
    m = len(sec)
    if m == 0:
        return np.zeros(0, np.int8), np.zeros(0), st
    lying = (tilt_deg > LYING_DEG) & ~walking
    clue = np.full(m, -1, np.int8)
    prev = np.concatenate(([sec[0] - 1 if st.last_sec is None else st.last_sec], sec[:-1]))
    clue[(sec - prev - 1) >= forget_s] = UNKNOWN
    # walking means standing once it has lasted WALK_CLUE_S, except for the landing
    # bounce of a sit-down
    sat = np.full(m, -1)
    for tr in transitions:
        i = int(np.searchsorted(sec, int(np.floor(tr.t)), side="right")) - 1
        if i >= 0 and tr.kind == "stand_to_sit":
            sat[i] = i
    sat_i = np.maximum.accumulate(sat)
    sat_sec = np.where(sat_i >= 0, sec[np.maximum(sat_i, 0)],
                       -(10**12) if st.sat_sec is None else st.sat_sec)
    st.sat_sec = int(sat_sec[-1])
    run = run_lengths(walking, sec - prev == 1, st.walk_run)
    st.walk_run = int(run[-1])
    clue[(run >= WALK_CLUE_S) & (sec - (run - 1) - sat_sec > LANDING_S)] = STANDING
    clue[lying] = SITTING  # whoever gets up from lying sits up first
    if reclined is not None:  # leaning back for a while: against a backrest
        rrun = run_lengths(reclined & ~walking, sec - prev == 1, st.recline_run)
        st.recline_run = int(rrun[-1])
        clue[rrun >= RECLINE_CLUE_S] = SITTING
    clear_push = np.zeros(m, bool)
    for tr in transitions:
        i = int(np.searchsorted(sec, int(np.floor(tr.t)), side="right")) - 1
        if i >= 0:
            clue[i] = STANDING if tr.kind == "sit_to_stand" else SITTING
            clear_push[i] = tr.kind == "sit_to_stand" and abs(tr.lift_m) >= CLEAR_PUSH_M
    last = np.maximum.accumulate(np.where(clue >= 0, np.arange(m), -1))
    seated = np.where(last >= 0, clue[np.maximum(last, 0)], st.seated).astype(np.int8)
    # standing is only known while something keeps showing it: a walking second or a
    # stand-up; a sit-down missed after it must not leave "standing" for half an hour
    # (only a sustained walk or a clear stand-up holds it past a break's length: a faint
    # push or a few steps, which a reach or a seated fidget can fake, lapse before they
    # make a break)
    support = walking | (clue == STANDING)
    strong = (walking & (run >= STRONG_WALK_S)) | (clear_push & (clue == STANDING))
    hold_of = np.where(strong, STAND_HOLD_S, WEAK_STAND_HOLD_S)
    sup_i = np.maximum.accumulate(np.where(support, np.arange(m), -1))
    prior = -(10**12) if st.support_sec is None else st.support_sec
    sup_sec = np.where(sup_i >= 0, sec[np.maximum(sup_i, 0)], prior)
    hold = np.where(sup_i >= 0, hold_of[np.maximum(sup_i, 0)], st.support_hold)
    lapsed = (seated == STANDING) & (sec - sup_sec > hold)
    seated = np.where(lapsed, UNKNOWN, seated).astype(np.int8)
    idle_since = np.where(lapsed, sup_sec + 1.0, np.nan)
    st.support_sec = int(sup_sec[-1])
    st.support_hold = int(hold[-1])
    posture = np.where(walking, WALKING, np.where(lying, LYING, seated)).astype(np.int8)
    st.seated = int(seated[-1])
    st.last_sec = int(sec[-1])
    return posture, idle_since, st
