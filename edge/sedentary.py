"""Sedentary bouts, sitting alerts, reminders, snooze and breaks (DESIGN A2/A3).

Works on per-second postures. Sedentary time is everything but standing and walking
(sitting, lying, and ``unknown`` while not moving about), the same rule as the ground
truth. A bout runs from the first sedentary second until a *break*: ``break_s`` or more
of continuous standing/walking; the bout ends where that stretch started and the break
is recognised ``break_s`` later (``sitting_break``). Shorter stand-ups stay in the bout.

The alert is due at bout start + limit, reminders every ``repeat_s`` after it. One that
falls due while the wearer is already up is held back: if the stand-up becomes a break
it is dropped, otherwise it fires when they sit down again. Snooze postpones anything due
before the snooze ends. Missing data (a gap) of ``break_s`` or more could hide a break,
so the bout ends there silently (no event); a shorter gap keeps the bout. Likewise a
shorter gap with the wearer up on both sides keeps the standing/walking stretch (its time
counts): nobody sits down and gets up again unseen in it for long enough to matter, while
restarting the stretch after a logger's dropout delayed the break past its tolerance.

Standing that lapsed into ``unknown`` (a long walk, then nothing: `activity.classify`)
begins a bout dated back to the last sign of standing, since a sit-down may have been
missed. Two later signs refine that: a sit-down seen within ``break_s`` of the lapse
re-dates the bout to itself (the wearer was up until then), and a sign of standing within
``LAPSE_BRIDGE_S`` of it, after a stretch that had made its break, cancels the bout and
carries the stretch on (nobody sat down in between). A faint stretch that lapsed before
its break is never carried on, so seated fidgets cannot add up to one.

The loop runs over *spans* of constant activity, not over seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

LAPSE_BRIDGE_S = 15.0  # standing that lapsed this briefly before the next sign goes on


@dataclass
class SedentaryParams:
    limit_s: float = 1800.0
    break_s: float = 60.0
    repeat_s: float = 600.0


@dataclass
class SedentaryState:
    bout_start: float | None = None
    run_start: float | None = None  # start of the current standing/walking stretch
    next_due: float | None = None   # when the next alert/reminder falls due
    reminders: int = 0              # 0: the alert itself is next
    snooze_until: float = -math.inf
    last_sec: int | None = None
    # the bout was dated back to the last sign of standing: a sit-down seen before this
    # (a break's length after the lapse began) re-dates it
    redate_until: float | None = None
    # a stretch up that had made a break and then lapsed into unknown: (its start, the
    # lapse's first second), while nothing but the lapse followed
    lapse: tuple[float, float] | None = None


def _due_events(st: SedentaryState, p: SedentaryParams, lo: float, hi: float,
                out: list[dict[str, Any]]) -> None:
    """Emit everything due before ``hi`` while sitting in [lo, hi)."""
    while st.bout_start is not None and st.next_due is not None and st.next_due < hi:
        t = max(st.next_due, lo, st.snooze_until)
        if t >= hi:
            break
        rec: dict[str, Any] = {"t": t, "bout_start": st.bout_start,
                               "bout_s": round(t - st.bout_start, 3)}
        if st.reminders == 0:
            out.append({"type": "sitting_alert", **rec})
        else:
            out.append({"type": "sitting_reminder", "n": st.reminders, **rec})
        st.reminders += 1
        st.next_due = (st.next_due + p.repeat_s) if p.repeat_s > 0 else None
        if st.next_due is not None and st.next_due <= t:  # held back: keep the rhythm
            st.next_due = t + p.repeat_s


def detect_sedentary(sec: np.ndarray, active: np.ndarray, p: SedentaryParams,
                     state: SedentaryState | None = None,
                     idle_since: np.ndarray | None = None
                     ) -> tuple[list[dict[str, Any]], np.ndarray, SedentaryState]:
    """Run over seconds ``sec`` (sorted ints) with ``active`` (standing or walking).
    ``idle_since`` (optional, NaN where unknown): when inactivity that starts a bout
    really began, if earlier (standing that lapsed into unknown: since the last walk).

    Returns the events, the bout start per second (NaN outside a bout) and the state.
    """
    st = SedentaryState() if state is None else state
    events: list[dict[str, Any]] = []
    m = len(sec)
    bout_of = np.full(m, np.nan)
    if m == 0:
        return events, bout_of, st
    prev = np.concatenate(([sec[0] - 1 if st.last_sec is None else st.last_sec], sec[:-1]))
    jump = sec - prev - 1  # missing seconds before each second
    change = np.concatenate(([True], (active[1:] != active[:-1]) | (jump[1:] > 0)))
    starts = np.flatnonzero(change)
    ends = np.concatenate((starts[1:], [m]))
    for a, b in zip(starts, ends, strict=True):
        lo, hi = float(sec[a]), float(sec[b - 1] + 1)
        if jump[a] > 0:
            st.lapse = None
            if not (active[a] and jump[a] < p.break_s):  # see the module doc
                st.run_start = None
            if jump[a] >= p.break_s:
                st.bout_start = st.next_due = None
        if active[a]:
            st.redate_until = None  # up again: a later sit-down no longer dates the bout
            if st.lapse is not None and lo - st.lapse[1] < LAPSE_BRIDGE_S:
                # up again soon after a lapse with no sign of sitting in it: the wearer
                # stood throughout (as across a short gap); the bout the lapse began is none
                st.run_start = st.lapse[0]
                st.bout_start = st.next_due = None
            st.lapse = None
            if st.run_start is None:
                st.run_start = lo
            brk = st.run_start + p.break_s
            if st.bout_start is not None and brk <= hi:
                bout_of[a:a + math.ceil(brk - lo)] = st.bout_start
                events.append({"type": "sitting_break", "t": brk,
                               "bout_start": st.bout_start, "bout_end": st.run_start,
                               "bout_s": round(st.run_start - st.bout_start, 3)})
                st.bout_start = st.next_due = None
            elif st.bout_start is not None:
                bout_of[a:b] = st.bout_start
        else:
            lapsed = idle_since is not None and bool(np.all(idle_since[a:b] < sec[a:b]))
            if st.run_start is not None and lapsed and st.bout_start is None \
                    and lo - st.run_start >= p.break_s:
                st.lapse = (st.run_start, lo)
            elif not lapsed:
                st.lapse = None
            st.run_start = None
            if st.bout_start is None:
                since = lo if idle_since is None or not np.isfinite(idle_since[a]) \
                    else min(lo, float(idle_since[a]))
                st.bout_start, st.next_due, st.reminders = since, since + p.limit_s, 0
                st.redate_until = lo + p.break_s if since < lo else None
            if st.redate_until is not None and idle_since is not None:
                _redate(st, p, sec[a:b], idle_since[a:b], events, lo)
            _due_events(st, p, lo, hi, events)
            bout_of[a:b] = st.bout_start
    st.last_sec = int(sec[-1])
    return events, bout_of, st


def _redate(st: SedentaryState, p: SedentaryParams, sec: np.ndarray, since: np.ndarray,
            events: list[dict[str, Any]], lo: float) -> None:
    """A bout dated back to the last sign of standing starts at a sit-down seen later in
    it (marked by ``since`` equal to its own second), unless its alert came first."""
    assert st.redate_until is not None
    sat = np.flatnonzero((since == sec) & (sec < st.redate_until))
    if not len(sat):  # none yet; later, sitting may have begun unseen
        if len(sec) and sec[-1] + 1 >= st.redate_until:
            st.redate_until = None
        return
    at = float(sec[sat[0]])
    _due_events(st, p, lo, at, events)  # what fell due before the sit-down was seen
    st.redate_until = None
    if st.reminders == 0:
        st.bout_start, st.next_due = at, at + p.limit_s


def snooze(st: SedentaryState, until: float) -> None:
    st.snooze_until = until
