"""Per-second posture: sitting, standing, walking, lying or unknown.

What an upper-back sensor can and cannot tell:

* walking: rhythmic vertical acceleration with steps (measured directly);
* lying: the trunk far from upright (more than ``LYING_DEG``; measured directly), unless
  the wearer is standing and it is brief (a deep bend: nobody lies down from standing);
* reclining: held ``RECLINE_CLUE_DEG`` or more back of upright for ``RECLINE_CLUE_S``
  means sitting (against a backrest; nobody stands leaning back like that);
* sitting vs standing: the trunk is upright in both, so tilt alone cannot tell. The
  pipeline *infers* it from what happened last: a sit-to-stand push or walking means
  standing, a stand-to-sit drop (or getting up from ``LYING_CLUE_S`` of lying) means
  sitting. Walking counts once it shows a step peak or lasts ``STEPLESS_WALK_S``: a
  shorter stepless rhythm (a seated fidget as often as a shuffle) only makes a seated
  posture unknown. Before any such clue, or after a long gap, the answer is
  ``unknown``, not a guess. Standing must keep being shown, per standing episode
  (`_episode_holds`): a young one holds to ``STAND_HOLD_S`` after its start (clear
  evidence: over a break's length) or ``WEAK_STAND_HOLD_S`` (faint evidence, which a
  reach or a fidget can fake: under a 60-s break, whatever more faint signs follow);
  an older clear one lapses ``IDLE_STAND_HOLD_S`` after its last sign. A lapse gives
  ``unknown`` (sedentary), so a missed sit-down is not "standing" for half an hour;
  the bout is then dated from the last second that showed the wearer on their feet,
  or from a sit-down seen soon after the lapse (``idle_since`` marks it with its own
  second; see `edge.sedentary`).

Vectorised: the clues are written into a per-second array and forward-filled (the
standing episodes loop once per run of support seconds, a small share of a day).
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
STEPLESS_WALK_S = 4  # ... but a rhythm without a step peak only once it lasts this long
LANDING_S = 6  # ... unless right after a sit-down (its landing bounce can look rhythmic)
STAND_HOLD_S = 65  # a standing episode begun by a sustained walk or a clear stand-up
STRONG_WALK_S = 5  # (a walk this long)          stays known this long (over break_s) ...
WEAK_STAND_HOLD_S = 55  # ... one begun by a faint stand-up or a few steps (under 60 s)
IDLE_STAND_HOLD_S = 25  # once older than that, standing lapses this long after a sign
CLEAR_PUSH_M = 0.3  # a stand-up this large is clear
RECLINE_CLUE_DEG = 12.0  # held this far back of upright, nobody is standing
RECLINE_CLUE_S = 8
LYING_CLUE_S = 10  # lying means "sits up first" only once held (a deep bend is brief)


@dataclass
class PostureState:
    seated: int = UNKNOWN  # SITTING, STANDING or UNKNOWN: the inferred base posture
    last_sec: int | None = None
    walk_run: int = 0      # consecutive walking seconds up to last_sec
    walk_steps: int = 0    # step peaks in that run of walking seconds
    support_sec: int | None = None  # the last second that showed the wearer on their feet
    support_hold: int = STAND_HOLD_S  # how long that second keeps standing known
    sat_sec: int | None = None      # the last sit-down's second
    recline_run: int = 0   # consecutive reclined seconds up to last_sec
    lying_run: int = 0     # consecutive lying seconds up to last_sec
    episode_sec: int | None = None  # when the current standing episode began
    episode_strong: bool = False    # it was begun or confirmed by clear evidence
    episode_push: bool = False      # it holds a (faint) stand-up ...
    episode_steps: bool = False     # ... and steps: together, clear evidence
    reset_sec: int | None = None    # the last second that said sitting or unknown
    lapsed: bool = False   # the last second was standing that had lapsed into unknown


def classify(sec: np.ndarray, walking: np.ndarray, tilt_deg: np.ndarray,
             transitions: list[Transition], forget_s: float,
             state: PostureState | None = None, reclined: np.ndarray | None = None,
             steps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, PostureState]:
    """Posture code per second (see module doc) and, where standing has just lapsed
    into ``unknown``, the time the wearer was last seen on their feet (NaN elsewhere):
    the sedentary bout is dated from there. ``forget_s``: a gap this long (missing
    seconds) makes the base posture unknown again. ``steps``: step peaks per second (a
    rhythm without any is a standing clue only once it lasts ``STEPLESS_WALK_S``)."""
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
    # a few rhythmic seconds without a single step peak are as often a fidget in the
    # chair as a shuffle on one's feet: they show standing only once they last longer,
    # and until then only unsettle a seated posture into unknown (see below)
    stepped = np.ones(m, bool)
    if steps is not None:
        in_run = _run_sums(np.where(walking, steps, 0), run, st.walk_steps)
        st.walk_steps = int(in_run[-1])
        stepped = (in_run > 0) | (run >= STEPLESS_WALK_S)
    # (a bounce lasts a second or two: a walk of STRONG_WALK_S shows the sit-down was none)
    walk_clue = (run >= WALK_CLUE_S) & ((sec - (run - 1) - sat_sec > LANDING_S)
                                        | (run >= STRONG_WALK_S))
    clue[walk_clue & stepped] = STANDING
    faint_walk = walk_clue & ~stepped
    # whoever gets up from lying sits up first (lying held: a deep bend over a standing
    # desk or a reach to the floor passes the angle for a moment)
    lrun = run_lengths(lying, sec - prev == 1, st.lying_run)
    st.lying_run = int(lrun[-1])
    clue[lrun >= LYING_CLUE_S] = SITTING
    if reclined is not None:  # leaning back for a while: against a backrest
        rrun = run_lengths(reclined & ~walking, sec - prev == 1, st.recline_run)
        st.recline_run = int(rrun[-1])
        clue[rrun >= RECLINE_CLUE_S] = SITTING
    pushed = np.zeros(m, bool)
    clear_push = np.zeros(m, bool)
    for tr in transitions:
        i = int(np.searchsorted(sec, int(np.floor(tr.t)), side="right")) - 1
        if i >= 0:
            clue[i] = STANDING if tr.kind == "sit_to_stand" else SITTING
            pushed[i] = tr.kind == "sit_to_stand"
            clear_push[i] = pushed[i] and abs(tr.lift_m) >= CLEAR_PUSH_M
    seated = _carry_forward(clue, st.seated)
    unsettle = faint_walk & (clue < 0) & (seated == SITTING)
    if unsettle.any():  # the stepless rhythm: sitting is no longer known
        clue[unsettle] = UNKNOWN
        seated = _carry_forward(clue, st.seated)
    # standing is only known while something keeps showing it: a walking second or a
    # stand-up; a sit-down missed after it must not leave "standing" for half an hour
    # (see `_episode_holds`)
    standing = clue == STANDING
    support = walking | standing
    sup_i = np.maximum.accumulate(np.where(support, np.arange(m), -1))
    prior = -(10**12) if st.support_sec is None else st.support_sec
    sup_sec = np.where(sup_i >= 0, sec[np.maximum(sup_i, 0)], prior)
    prior_hold = st.support_hold
    hold_at = _episode_holds(st, sec, support, clue, walking & (run >= WALK_CLUE_S),
                             walking & (run >= STRONG_WALK_S), pushed & standing,
                             clear_push & standing)
    hold = np.where(sup_i >= 0, hold_at[np.maximum(sup_i, 0)], prior_hold)
    lapsed = (seated == STANDING) & (sec - sup_sec > hold)
    st.seated = int(seated[-1])  # before the lapse: the next block lapses (and dates) alike
    seated = np.where(lapsed, UNKNOWN, seated).astype(np.int8)
    idle_since = np.where(lapsed, sup_sec + 1.0, np.nan)
    # a sit-down seen while standing had lapsed shows when sitting really began: the bout
    # that the lapse dated back to the last sign of standing is re-dated to it
    was_lapsed = np.concatenate(([st.lapsed], lapsed[:-1]))
    sat_down = (sat == np.arange(m)) & was_lapsed
    idle_since[sat_down] = sec[sat_down]
    st.lapsed = bool(lapsed[-1])
    st.support_sec = int(sup_sec[-1])
    st.support_hold = int(hold[-1])
    # nobody lies down straight from standing: a standing deep bend is not lying
    lying &= (lrun >= LYING_CLUE_S) | (seated != STANDING)
    posture = np.where(walking, WALKING, np.where(lying, LYING, seated)).astype(np.int8)
    st.last_sec = int(sec[-1])
    return posture, idle_since, st


def _carry_forward(clue: np.ndarray, before: int) -> np.ndarray:
    """Each second's base posture: the last clue up to it (``before`` if none yet)."""
    last = np.maximum.accumulate(np.where(clue >= 0, np.arange(len(clue)), -1))
    return np.where(last >= 0, clue[np.maximum(last, 0)], before).astype(np.int8)


def _run_sums(x: np.ndarray, run: np.ndarray, carry: int) -> np.ndarray:
    """Sum of ``x`` over the run ending at each element (``run`` its run lengths, 0
    outside a run; ``carry`` the sum of the run open before the first element)."""
    c = np.concatenate(([0], np.cumsum(x)))
    idx = np.arange(len(x))
    lo = idx + 1 - run
    return np.where(run > 0, c[idx + 1] - c[np.maximum(lo, 0)]
                    + np.where(lo < 0, carry, 0), 0)


def _episode_holds(st: PostureState, sec: np.ndarray, support: np.ndarray, clue: np.ndarray,
                   steps: np.ndarray, sustained: np.ndarray, push: np.ndarray,
                   clear_push: np.ndarray) -> np.ndarray:
    """How long standing stays known after each second of support (set at the last
    second of each run of support). A standing *episode* runs from its first sign of
    standing until a sign of sitting (or unknown) or a lapse. While it is young, standing
    is held until ``STAND_HOLD_S`` after its start when the evidence is clear (a clear
    stand-up, a sustained walk, or a faint stand-up with steps), ``WEAK_STAND_HOLD_S``
    when it is faint (a faint push or a few steps, which a reach or a seated fidget can
    fake: no break from that alone, however many follow); a clear one, once older,
    ``IDLE_STAND_HOLD_S`` after its last sign, so that a sit-down missed after a long
    walk does not leave a minute of "standing". Updates ``st``; one loop step per run
    of support."""
    m = len(sec)
    hold_at = np.zeros(m, np.int64)
    idx = np.arange(m)
    resets = np.maximum.accumulate(np.where((clue == SITTING) | (clue == UNKNOWN), idx, -1))
    standing = clue == STANDING
    linked = np.diff(sec) == 1
    prev_on = np.concatenate(([False], support[:-1] & linked))
    next_on = np.concatenate((support[1:] & linked, [False]))
    starts = np.flatnonzero(support & ~prev_on)
    ends = np.flatnonzero(support & ~next_on) + 1
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        r = int(resets[a])
        reset_sec = int(sec[r]) if r >= 0 else st.reset_sec
        first = int(sec[a])
        last = int(sec[b - 1])
        if (st.episode_sec is None or st.support_sec is None
                or first - st.support_sec > st.support_hold
                or (reset_sec is not None and reset_sec >= st.support_sec)):
            st.episode_strong = st.episode_push = st.episode_steps = False
            if not standing[a:b].any():  # a lone rhythmic second starts nothing
                st.episode_sec, st.support_sec, st.support_hold = None, last, 0
                continue
            st.episode_sec = first
        if not st.episode_strong and clear_push[a:b].any():  # a clear stand-up: standing
            st.episode_sec = int(sec[a + int(np.argmax(clear_push[a:b]))])  # begins here
        st.episode_push |= bool(push[a:b].any())
        st.episode_steps |= bool(steps[a:b].any())
        st.episode_strong |= bool(clear_push[a:b].any() or sustained[a:b].any()) or (
            st.episode_push and st.episode_steps)
        st.support_sec = last
        if st.episode_strong:
            st.support_hold = max(IDLE_STAND_HOLD_S, STAND_HOLD_S - (last - st.episode_sec))
        else:  # more faint signs do not stretch it into a break
            st.support_hold = max(0, WEAK_STAND_HOLD_S - (last - st.episode_sec))
        hold_at[b - 1] = st.support_hold
    if m and resets[-1] >= 0:
        st.reset_sec = int(sec[resets[-1]])
    return hold_at
