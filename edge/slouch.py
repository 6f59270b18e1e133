"""The slouch state machine (DESIGN A3), vectorised over ticks with carried state.

Definition (the same as the simulator's ground truth): an *onset* is the first tick with
flexion above ``threshold_deg``; if flexion stays above the threshold until ``delay_s``
later, that tick raises the alert (``slouch_start``); the episode ends at the first tick
below ``release_deg`` (``slouch_end``). A dip below the threshold before the alert cancels
the onset, so a reach shorter than the delay never alerts. Ticks that are *blocked*
(walking, lying, gap markers, no calibration yet) never start an episode; a pending onset
is cancelled and a running episode ends there (``reason`` says why). Reclining is
negative flexion and can never pass a positive threshold.

One buzz per slouch, a new one only after a *real return* to upright: flexion below
the release by ``RETURN_MARGIN_DEG`` (more than the estimation noise), or below the
release for ``RETURN_HOLD_S``. A shallow blip under the release (a 0.2 s dip to 11.5°)
does not end an episode: the end waits, at most ``RETURN_HOLD_S``, for the return to be
real, and the episode goes on if flexion comes back first. An episode that walking or
lying ended re-arms only after a real return too: someone who stood up and walked away
came back to upright on the way; a "walk" or "lie" read while the trunk stays bent (a
knock or a rhythmic shuffle in the chair, a deep slouch crossing the lying angle) is
the same slouch going on. A gap ends an episode at once and re-arms: nothing is known
about what happened inside it.

Only threshold crossings are looped over in Python; the ticks between them are handled
with numpy, so the cost is per event, not per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.edge.filters import TICK_HZ

# RELEASING: alerted and under the release, the return not yet real; LATCHED: ended by
# walking or lying, waiting for a real return before a new episode may start
IDLE, PENDING, ALERTED, LATCHED, RELEASING = 0, 1, 2, 3, 4
BLOCK_REASONS = ("released", "gap", "walking", "lying", "uncalibrated")
LATCHING = (2, 3)  # block codes (walking, lying) after which a real return re-arms
RETURN_MARGIN_DEG = 3.0  # below the release by this much: a real return at once
RETURN_HOLD_S = 1.0      # ... or below the release for this long
Q = 10_000  # flexion sums are kept in 1e-4 degree integers: exact whatever the chunking


@dataclass
class SlouchParams:
    threshold_deg: float = 15.0
    release_deg: float = 12.0
    delay_s: float = 5.0

    @property
    def delay_ticks(self) -> int:
        return max(0, math.ceil(self.delay_s * TICK_HZ - 1e-6))

    @property
    def hold_ticks(self) -> int:
        return max(0, math.ceil(RETURN_HOLD_S * TICK_HZ - 1e-6))


@dataclass
class SlouchState:
    phase: int = IDLE
    onset_k: int = 0
    alert_k: int = 0
    peak: float = -math.inf
    sum_q: int = 0
    count: int = 0
    episodes: int = 0
    low_k: int | None = None  # first tick of the current run under the release


@dataclass
class SlouchResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    alerted: np.ndarray | None = None  # bool per tick: inside an alerted episode


def _next(idx: np.ndarray, i: int, n: int) -> int:
    """First entry of sorted ``idx`` that is >= i, or n."""
    p = int(np.searchsorted(idx, i))
    return int(idx[p]) if p < len(idx) else n


def detect_slouch(k: np.ndarray, flex: np.ndarray, block: np.ndarray,
                  params: SlouchParams, state: SlouchState | None = None
                  ) -> tuple[SlouchResult, SlouchState]:
    """Run the state machine over ticks ``k`` (int, consecutive within a segment).

    ``flex`` is signed flexion in degrees (NaN where unknown); ``block`` is 0 where a
    slouch may be detected, else an index into BLOCK_REASONS (why an episode stopped
    there). Returns the events and the state to carry on with.
    """
    blocked = block > 0
    st = SlouchState() if state is None else state
    n = len(k)
    alerted = np.zeros(n, bool)
    res = SlouchResult(alerted=alerted)
    if n == 0:
        return res, st
    with np.errstate(invalid="ignore"):
        above = (flex > params.threshold_deg) & ~blocked
        back = flex >= params.release_deg  # NaN (a gap) is not back
        deep = flex < params.release_deg - RETURN_MARGIN_DEG
    fq = np.where(np.isnan(flex), 0, np.round(np.nan_to_num(flex) * Q)).astype(np.int64)
    idx_above = np.flatnonzero(above)
    idx_not_above = np.flatnonzero(~above)
    idx_release = np.flatnonzero(~back | blocked)
    idx_back = np.flatnonzero(back)
    idx_low = np.flatnonzero(~back)  # NaN (gap) included
    idx_deep = np.flatnonzero(deep)
    idx_gap = np.flatnonzero(block == 1)
    idx_blocked = np.flatnonzero(blocked)
    d = params.delay_ticks
    i = 0

    def returned(lo: int, *, ends_on: np.ndarray) -> tuple[int, str]:
        """From ``lo`` on, under the release since tick ``st.low_k``: the first index
        where flexion came back (``back``), a tick of ``ends_on`` came (``blocked``), or
        the return became real (``real``); (n, "") if none within this block."""
        low_k = st.low_k if st.low_k is not None else int(k[lo])
        hold = int(np.searchsorted(k, low_k + params.hold_ticks))
        cands = ((_next(idx_back, lo, n), 0, "back"), (_next(ends_on, lo, n), 1, "blocked"),
                 (min(_next(idx_deep, lo, n), hold), 2, "real"))
        j, _, what = min(cands)  # on the same tick: back, then blocked, then real
        return (j, what) if j < n else (n, "")

    def accumulate(lo: int, hi: int) -> None:
        if hi > lo:
            st.sum_q += int(fq[lo:hi].sum())
            st.count += hi - lo
            st.peak = max(st.peak, float(np.max(flex[lo:hi])))

    while i < n:
        if st.phase == LATCHED:
            if st.low_k is None:
                j = _next(idx_low, i, n)
                if j >= n:
                    break
                st.low_k, i = int(k[j]), j
            j, what = returned(i, ends_on=idx_gap)
            if what == "":
                break
            st.low_k, i = None, j
            if what == "back":
                continue
            st.phase = IDLE  # a real return (or a gap): re-armed
        if st.phase == IDLE:
            j = _next(idx_above, i, n)
            if j >= n:
                break
            st.phase, st.onset_k = PENDING, int(k[j])
            st.peak, st.sum_q, st.count = -math.inf, 0, 0
            i = j
        if st.phase == PENDING:
            e = _next(idx_not_above, i, n)
            a = int(np.searchsorted(k, st.onset_k + d))  # first tick at onset + delay
            if a < e and a < n:
                accumulate(i, a)
                st.phase, st.alert_k = ALERTED, int(k[a])
                st.episodes += 1
                res.events.append({"type": "slouch_start", "t": st.alert_k / TICK_HZ,
                                   "onset": st.onset_k / TICK_HZ,
                                   "threshold_deg": params.threshold_deg})
                i = a
            elif e < n:
                st.phase = IDLE
                i = e
                continue
            else:
                accumulate(i, n)
                break
        if st.phase == ALERTED:
            e = _next(idx_release, i, n)
            accumulate(i, e)
            alerted[i:e] = True
            if e >= n:
                break
            i = e
            if blocked[e]:
                _end(st, res, int(k[e]), int(block[e]), flex[e], params)
                continue
            st.phase, st.low_k = RELEASING, int(k[e])
        if st.phase == RELEASING:
            j, what = returned(i, ends_on=idx_blocked)
            accumulate(i, j)
            alerted[i:j] = True
            if what == "":
                break
            i = j
            if what == "back":
                st.phase, st.low_k = ALERTED, None
            elif what == "blocked":
                _end(st, res, int(k[j]), int(block[j]), flex[j], params)
            else:
                _end(st, res, int(k[j]), 0, flex[j], params)
    return res, st


def _end(st: SlouchState, res: SlouchResult, end_k: int, code: int, flex: float,
         params: SlouchParams) -> None:
    """End the running episode at ``end_k`` for block ``code`` (0: a real return)."""
    res.events.append(_end_event(st, end_k, BLOCK_REASONS[code]))
    st.phase = LATCHED if code in LATCHING else IDLE
    below = not flex >= params.release_deg  # a run under the release goes on
    if st.phase != LATCHED or not below:
        st.low_k = None
    elif st.low_k is None:
        st.low_k = end_k


def _end_event(st: SlouchState, end_k: int, reason: str) -> dict[str, Any]:
    return {"type": "slouch_end", "t": end_k / TICK_HZ, "onset": st.onset_k / TICK_HZ,
            "alert_t": st.alert_k / TICK_HZ,
            "duration_s": round((end_k - st.onset_k) / TICK_HZ, 3),
            "peak_deg": round(st.peak, 2),
            "mean_deg": round(st.sum_q / max(st.count, 1) / Q, 2), "reason": reason}


def close_open(st: SlouchState, end_k: int) -> list[dict[str, Any]]:
    """At the end of the data: end a running episode (reason ``end_of_data``)."""
    st.low_k = None
    if st.phase in (ALERTED, RELEASING):
        st.phase = IDLE
        return [_end_event(st, end_k, "end_of_data")]
    st.phase = IDLE
    return []
