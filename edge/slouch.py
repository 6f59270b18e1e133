"""The slouch state machine (DESIGN A3), vectorised over ticks with carried state.

Definition (the same as the simulator's ground truth): an *onset* is the first tick with
flexion above ``threshold_deg``; if flexion stays above the threshold until ``delay_s``
later, that tick raises the alert (``slouch_start``); the episode ends at the first tick
below ``release_deg`` (``slouch_end``). A dip below the threshold before the alert cancels
the onset, so a reach shorter than the delay never alerts. Ticks that are *blocked*
(walking, lying, gap markers, no calibration yet) never start an episode; a pending onset
is cancelled and a running episode ends there (``reason`` says why). Reclining is
negative flexion and can never pass a positive threshold.

One buzz per slouch: an episode that walking or lying ended (rather than a return below
the release) re-arms only once flexion has come back below the release. Someone who
really stood up and walked away came back to upright on the way; a "walk" or "lie"
read while the trunk stays bent (a knock or a rhythmic shuffle in the chair, a deep
slouch crossing the lying angle) is the same slouch going on, not a new one. A gap
re-arms too: nothing is known about what happened inside it.

Only threshold crossings are looped over in Python; the ticks between them are handled
with numpy, so the cost is per event, not per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinesense.edge.filters import TICK_HZ

IDLE, PENDING, ALERTED, LATCHED = 0, 1, 2, 3  # LATCHED: ended by activity, not re-armed
BLOCK_REASONS = ("released", "gap", "walking", "lying", "uncalibrated")
LATCHING = (2, 3)  # block codes (walking, lying) after which a return to upright re-arms
Q = 10_000  # flexion sums are kept in 1e-4 degree integers: exact whatever the chunking


@dataclass
class SlouchParams:
    threshold_deg: float = 15.0
    release_deg: float = 12.0
    delay_s: float = 5.0

    @property
    def delay_ticks(self) -> int:
        return max(0, math.ceil(self.delay_s * TICK_HZ - 1e-6))


@dataclass
class SlouchState:
    phase: int = IDLE
    onset_k: int = 0
    alert_k: int = 0
    peak: float = -math.inf
    sum_q: int = 0
    count: int = 0
    episodes: int = 0


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
        below_release = ~(flex >= params.release_deg) | blocked
    fq = np.where(np.isnan(flex), 0, np.round(np.nan_to_num(flex) * Q)).astype(np.int64)
    idx_above = np.flatnonzero(above)
    idx_not_above = np.flatnonzero(~above)
    idx_release = np.flatnonzero(below_release)
    with np.errstate(invalid="ignore"):  # NaN (a gap marker) re-arms too
        idx_rearm = np.flatnonzero(~(flex >= params.release_deg) | (block == 1))
    d = params.delay_ticks
    i = 0

    def accumulate(lo: int, hi: int) -> None:
        if hi > lo:
            st.sum_q += int(fq[lo:hi].sum())
            st.count += hi - lo
            st.peak = max(st.peak, float(np.max(flex[lo:hi])))

    while i < n:
        if st.phase == LATCHED:
            j = _next(idx_rearm, i, n)
            if j >= n:
                break
            st.phase = IDLE
            i = j
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
            res.events.append(_end_event(st, int(k[e]), BLOCK_REASONS[int(block[e])]))
            st.phase = LATCHED if int(block[e]) in LATCHING else IDLE
            i = e
    return res, st


def _end_event(st: SlouchState, end_k: int, reason: str) -> dict[str, Any]:
    return {"type": "slouch_end", "t": end_k / TICK_HZ, "onset": st.onset_k / TICK_HZ,
            "alert_t": st.alert_k / TICK_HZ,
            "duration_s": round((end_k - st.onset_k) / TICK_HZ, 3),
            "peak_deg": round(st.peak, 2),
            "mean_deg": round(st.sum_q / max(st.count, 1) / Q, 2), "reason": reason}


def close_open(st: SlouchState, end_k: int) -> list[dict[str, Any]]:
    """At the end of the data: end a running episode (reason ``end_of_data``)."""
    if st.phase == ALERTED:
        st.phase = IDLE
        return [_end_event(st, end_k, "end_of_data")]
    st.phase = IDLE
    return []
