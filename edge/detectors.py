"""Stage B of the pipeline: everything that needs the calibration.

Per tick: signed flexion (accelerometer angle, gyro-aided by a complementary filter
where a gyro exists) and lateral lean; the slouch state machine. Per second: posture,
sedentary bouts, metrics and (optionally) state records.
All state carries across blocks; see `spinesense.edge.pipeline` for the ordering rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal

from spinesense.config import Config
from spinesense.edge.activity import (
    LYING,
    POSTURES,
    RECLINE_CLUE_DEG,
    STANDING,
    WALKING,
    PostureState,
    classify,
)
from spinesense.edge.calibration import Calibration
from spinesense.edge.features import SecondFeatures, TickFeatures, gyro_flexion
from spinesense.edge.filters import TICK_HZ, StreamSOS, run_lengths, segment_starts
from spinesense.edge.metrics import MetricsAggregator, SecondRows
from spinesense.edge.sedentary import SedentaryParams, SedentaryState, detect_sedentary
from spinesense.edge.slouch import Q, SlouchParams, SlouchState, close_open, detect_slouch

GYRO_HIGHPASS_HZ = 0.005  # removes the gyro bias (drifting over minutes) before integration
SLOUCH_WALK_BLOCK_S = 2   # walking this long ends a slouch episode (reason "walking")


def tick_flexion(cal: Calibration, tf: TickFeatures, starts: np.ndarray,
                 rate_filter: StreamSOS | None, tau_s: float, prev: float | None
                 ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Signed flexion and lateral lean per tick (degrees); NaN on gap markers."""
    flex, lat = cal.angles(tf.fast)
    if tf.gyro is not None and rate_filter is not None:
        rate = (tf.gyro @ cal.lateral)[:, None]
        rate = rate_filter.run(rate, starts)[:, 0]
        flex, prev = gyro_flexion(flex, rate, starts, tau_s, prev)
    if not cal.signed:  # sign unknown: judged either way, never inverted
        flex, lat = np.abs(flex), np.abs(lat)
    return flex, lat, prev


def same_axes(old: Calibration, new: Calibration) -> int:
    """+1 if ``new`` has the same upright and flexion axis as ``old``, -1 if the same
    with flexion's sign turned, 0 otherwise."""
    if old.forward is None or new.forward is None or not np.array_equal(old.up, new.up):
        return 0
    c = float(old.lateral @ new.lateral)
    return 1 if c > 1.0 - 1e-9 else (-1 if c < -1.0 + 1e-9 else 0)


class Detectors:
    def __init__(self, cfg: Config, cal: Calibration, *, states: bool = False):
        self.cal = cal
        self.states = states
        self.configure(cfg)
        self.rate_filter = StreamSOS(signal.butter(1, GYRO_HIGHPASS_HZ, "high", fs=TICK_HZ,
                                                   output="sos"), 1)
        self.cf_prev: float | None = None
        self.fresh = True
        self.slouch_state = SlouchState()
        self.posture_state = PostureState()
        self.sed_state = SedentaryState()
        self.metrics = MetricsAggregator(cfg.metrics.interval_s)
        self.last_k: int | None = None
        # when a list: each block's per-tick flexion/blocking and per-second posture are
        # appended, so that `spinesense tune` can rerun the pure detectors over them
        self.capture: list[dict[str, np.ndarray]] | None = None

    def configure(self, cfg: Config) -> None:
        self.slouch = SlouchParams(cfg.slouch.threshold_deg, cfg.slouch.release_deg,
                                   cfg.slouch.delay_s)
        self.sedentary = SedentaryParams(cfg.sitting.limit_min * 60.0, cfg.sitting.break_s,
                                         cfg.sitting.repeat_min * 60.0)
        self.tau_s = cfg.pipeline.gyro_time_constant_s

    def set_calibration(self, cal: Calibration) -> None:
        """Use ``cal`` from the next block on. The gyro's bias estimate carries on,
        projected on the new flexion axis (the bias is the sensor's): restarting it took
        the rotation rate of the moment for the bias, and a calibration often changes
        during a sit-down (the sign learned from it) or a slip; flexion then read ~14° low
        for half a minute (dev seed 20735, a slouch right after it missed). The
        complementary filter restarts from the accelerometer angle, unless only flexion's
        sign changed (a facing learned or given up, a mount warning): then it carries on,
        negated if the sign turned."""
        old = self.cal
        turn = same_axes(old, cal)
        self.cal = cal
        if self.rate_filter.z is not None:
            both = old.forward is not None and cal.forward is not None
            self.rate_filter.z = self.rate_filter.z * (
                float(old.lateral @ cal.lateral) if both else 0.0)
        if turn == 0 or self.cf_prev is None:
            self.cf_prev = None
        else:
            self.cf_prev *= turn

    def snooze(self, until: float) -> None:
        self.sed_state.snooze_until = until

    def run(self, tf: TickFeatures, sf: SecondFeatures,
            frontier_sec: int | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        v = tf.valid
        starts = segment_starts(v, self.fresh)
        if len(v):  # the next block starts a segment if this ended in a gap
            self.fresh = not bool(v[-1])
        if v.any():
            self.last_k = int(tf.k[v][-1])
        flex, lat, self.cf_prev = tick_flexion(self.cal, tf, starts, self.rate_filter,
                                               self.tau_s, self.cf_prev)
        m = len(sf.sec)
        # per-second flexion from the valid ticks (exact integer sums)
        sec_of_tick = np.searchsorted(sf.sec, np.floor_divide(tf.k, TICK_HZ))
        first = np.flatnonzero(np.concatenate(([True], np.diff(sec_of_tick[v]) != 0))) \
            if v.any() else np.zeros(0, np.int64)
        fq = np.round(np.nan_to_num(flex[v]) * Q).astype(np.int64)
        lq = np.round(np.nan_to_num(lat[v]) * Q).astype(np.int64)
        if m:
            flex_sum = np.add.reduceat(fq, first)
            lat_sum = np.add.reduceat(lq, first)
            flex_max = np.maximum.reduceat(flex[v], first)
        else:
            flex_sum = lat_sum = np.zeros(0, np.int64)
            flex_max = np.zeros(0)
        tilt = self.cal.tilt(sf.grav) if m else np.zeros(0)
        reclined = (flex_sum / np.maximum(sf.n, 1) / Q < -RECLINE_CLUE_DEG) \
            if self.cal.signed and m else None
        walk_carry, last_sec = self.posture_state.walk_run, self.posture_state.last_sec
        posture, idle_since, self.posture_state = classify(
            sf.sec, sf.walking, tilt, sf.transitions, self.sedentary.break_s,
            self.posture_state, reclined, sf.steps)
        # slouch, per tick: blocked while walking or lying, and on gap markers; a lone
        # walking second (a rhythmic shuffle in the chair) does not cut an episode in two
        prev = np.concatenate(([sf.sec[0] - 1 if last_sec is None else last_sec],
                               sf.sec[:-1])) if m else sf.sec
        walk_run = run_lengths(posture == WALKING, sf.sec - prev == 1, walk_carry)
        pblock = np.where(walk_run < SLOUCH_WALK_BLOCK_S, np.where(posture == WALKING, -1,
                                                                     posture), posture)
        ptick = np.full(len(tf.k), -1, np.int8)
        ptick[v] = pblock[sec_of_tick[v]]
        block = np.where(~v, 1, np.where(ptick == WALKING, 2, np.where(ptick == LYING, 3, 0)))
        res, self.slouch_state = detect_slouch(tf.k, flex, block.astype(np.int8), self.slouch,
                                               self.slouch_state)
        out += res.events
        slouch_ticks = (np.add.reduceat(res.alerted[v].astype(np.int64), first) if m
                        else np.zeros(0, np.int64))
        for tr in sf.transitions:
            out.append({"type": tr.kind, "t": tr.t, "lift_m": round(tr.lift_m, 3),
                        "lean_deg": round(tr.lean_deg, 1)})
        active = (posture == STANDING) | (posture == WALKING)
        if self.capture is not None:
            self.capture.append({"k": tf.k, "flex": flex, "block": block.astype(np.int8),
                                 "sec": sf.sec, "posture": posture, "lateral": lat,
                                 "walking": sf.walking, "steps": sf.steps,
                                 "idle_since": idle_since})
        sed_events, bout_of, self.sed_state = detect_sedentary(sf.sec, active, self.sedentary,
                                                               self.sed_state, idle_since)
        out += sed_events
        if self.states and m:
            mean = flex_sum / np.maximum(sf.n, 1) / Q
            lmean = lat_sum / np.maximum(sf.n, 1) / Q
            out += [{"type": "state", "t": float(s), "posture": POSTURES[p],
                     "flexion_deg": round(float(f), 1), "lateral_deg": round(float(la), 1)}
                    for s, p, f, la in zip(sf.sec.tolist(), posture.tolist(), mean.tolist(),
                                           lmean.tolist(), strict=True)]
        steps = np.where(posture == WALKING, sf.steps, 0)
        rows = SecondRows(sf.sec, sf.n, flex_sum, flex_max, lat_sum, slouch_ticks, posture,
                          steps, sf.dyn_rms ** 2 * sf.n, bout_of)
        if frontier_sec is None:
            self.metrics.add(rows, -(2**62))
        else:
            out += self.metrics.add(rows, frontier_sec)
        return out

    def idle(self, frontier_sec: int) -> list[dict[str, Any]]:
        return self.metrics.add(SecondRows(*(np.zeros(0) for _ in range(10))), frontier_sec)

    def flush(self) -> list[dict[str, Any]]:
        out = []
        if self.last_k is not None:
            out += close_open(self.slouch_state, self.last_k + 1)
        return out + self.metrics.flush()
