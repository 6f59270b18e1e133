"""A straightforward per-sample Python implementation of the pipeline's per-tick work.

This is the baseline the benchmark compares against, and a cross-check in the tests: the
same grid resampling, the same biquad filters (direct form II transposed, as scipy's
``sosfilt``), flexion with the complementary filter, step peaks, per-second walking and
the slouch state machine, written the obvious way: one Python loop iteration per sample
and per tick. It needs a complete calibration (no learning) and leaves out sit/stand
transitions, sedentary bouts, the mounting tracker and metrics formatting. Not used by the product.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal

from spinesense.edge import gait
from spinesense.edge.calibration import Calibration
from spinesense.edge.detectors import GYRO_HIGHPASS_HZ
from spinesense.edge.features import STEP_BAND_HZ, STEP_MIN_G, STEP_MIN_INTERVAL_S
from spinesense.edge.filters import TICK_HZ, TICK_S, bandpass, lowpass
from spinesense.edge.slouch import RETURN_MARGIN_DEG, SlouchParams
from spinesense.samples import SampleChunk


class Biquads:
    """Cascaded second-order sections for one channel, one sample at a time."""

    def __init__(self, sos: np.ndarray):
        self.sos = [tuple(map(float, row)) for row in sos]
        self.zi = [tuple(map(float, z)) for z in signal.sosfilt_zi(sos)]
        self.z = [[0.0, 0.0] for _ in self.sos]

    def reset(self, x0: float) -> None:
        self.z = [[z0 * x0, z1 * x0] for z0, z1 in self.zi]

    def step(self, x: float) -> float:
        for (b0, b1, b2, _a0, a1, a2), z in zip(self.sos, self.z, strict=True):
            y = b0 * x + z[0]
            z[0] = b1 * x - a1 * y + z[1]
            z[1] = b2 * x - a2 * y
            x = y
        return x


def run_reference(chunk: SampleChunk, cal: Calibration, *, gap_s: float = 0.5,
                  gravity_cutoff_hz: float = 0.5, flexion_cutoff_hz: float = 1.5,
                  tau_s: float = 0.5, params: SlouchParams | None = None
                  ) -> list[dict[str, Any]]:
    """Slouch events of ``chunk`` (walking blocks slouching), computed sample by sample."""
    params = params or SlouchParams()
    up = [float(x) for x in cal.up]
    fwd = [float(x) for x in cal.forward]  # type: ignore[union-attr]
    lat = [float(x) for x in cal.lateral]
    grav = [Biquads(lowpass(gravity_cutoff_hz)) for _ in range(3)]
    fast = [Biquads(lowpass(flexion_cutoff_hz)) for _ in range(3)]
    mag_lp = Biquads(lowpass(0.03, order=1))
    step_bp = Biquads(bandpass(*STEP_BAND_HZ))
    rate_hp = Biquads(signal.butter(1, GYRO_HIGHPASS_HZ, "high", fs=TICK_HZ, output="sos"))
    a_cf = tau_s / (tau_s + TICK_S)
    has_gyro = chunk.gyro is not None
    events: list[dict[str, Any]] = []
    # per-tick state
    restart = True
    theta = 0.0
    prev_bp = [math.nan, math.nan]
    last_step_k = -(10**12)
    min_step = round(STEP_MIN_INTERVAL_S * TICK_HZ)
    # per-second state
    sec_cur: int | None = None
    sec_ticks: list[tuple[int, float]] = []
    sec_steps, sec_sq, sec_n = 0, 0.0, 0
    prev = (-(10**12), 0.0, 0)  # (second, mean square band value, rhythmic run)
    bp_hist: dict[int, float] = {}  # band-passed vertical acceleration, last seconds
    # slouch state (phases as in edge/slouch.py: 0 idle, 1 pending, 2 alerted,
    # 3 latched after walking, 4 releasing)
    phase, onset_k, alert_k = 0, 0, 0
    low_k: int | None = None
    delay = params.delay_ticks
    hold = params.hold_ticks
    deep = params.release_deg - RETURN_MARGIN_DEG

    def end_episode(k: int, flex: float, walking: bool) -> None:
        nonlocal phase, low_k
        events.append({"type": "slouch_end", "t": k / TICK_HZ,
                       "onset": onset_k / TICK_HZ, "alert_t": alert_k / TICK_HZ})
        phase = 3 if walking else 0
        if phase == 0 or flex >= params.release_deg:
            low_k = None
        elif low_k is None:
            low_k = k

    def slouch_tick(k: int, flex: float, blocked: bool) -> None:
        nonlocal phase, onset_k, alert_k, low_k
        gap = math.isnan(flex)
        low = not flex >= params.release_deg
        if phase == 2 and (blocked or low):
            if blocked:
                end_episode(k, flex, not gap)
            else:
                phase, low_k = 4, k
        if phase == 4:
            if flex >= params.release_deg:
                phase, low_k = 2, None
                if blocked:
                    end_episode(k, flex, not gap)
            elif blocked:
                end_episode(k, flex, not gap)
            elif flex < deep or k >= low_k + hold:  # type: ignore[operator]
                end_episode(k, flex, False)
        if phase == 3:
            if gap:
                phase, low_k = 0, None
            elif not low:
                low_k = None
            else:
                low_k = k if low_k is None else low_k
                if flex < deep or k >= low_k + hold:
                    phase, low_k = 0, None
        above = (not blocked) and flex > params.threshold_deg
        if phase == 1 and not above:
            phase = 0
        if phase == 0 and above:
            phase, onset_k = 1, k
        if phase == 1 and k >= onset_k + delay:
            phase, alert_k = 2, k
            events.append({"type": "slouch_start", "t": k / TICK_HZ,
                           "onset": onset_k / TICK_HZ})

    def periodic(end_k: int) -> bool:
        """Peak normalised autocorrelation at a step lag over the window ending there."""
        w = gait.WINDOW_S * TICK_HZ
        x = [bp_hist.get(k, 0.0) for k in range(end_k - w, end_k)]
        mean = sum(x) / w
        x = [v - mean for v in x]
        best = -1.0
        for lag in range(round(gait.LAG_S[0] * TICK_HZ), round(gait.LAG_S[1] * TICK_HZ) + 1):
            num = sum(x[i] * x[i + lag] for i in range(w - lag))
            den = math.sqrt(sum(v * v for v in x[:w - lag]) * sum(v * v for v in x[lag:]))
            if den > 0:
                best = max(best, num / den)
        return best > gait.MIN_PERIODICITY

    def close_second() -> None:
        nonlocal prev
        if sec_cur is None or sec_n == 0:
            return
        ms = sec_sq / sec_n
        contiguous = sec_cur - prev[0] == 1
        ms2 = (ms + prev[1]) / 2 if contiguous else ms
        raw = ms2 > gait.WALK_RMS_G ** 2 and ms > gait.WALK_NOW_G ** 2 and \
            periodic((sec_cur + 1) * TICK_HZ)
        run = (prev[2] + 1 if contiguous else 1) if raw else 0
        walking = run >= gait.IN_A_ROW
        prev = (sec_cur, ms, run)
        for k, flex in sec_ticks:
            slouch_tick(k, flex, walking or math.isnan(flex))
        for k in [k for k in bp_hist if k < (sec_cur + 1) * TICK_HZ - gait.WINDOW_S * TICK_HZ]:
            del bp_hist[k]

    t_arr = chunk.t.tolist()
    acc_arr = chunk.acc.tolist()
    gyro_arr = chunk.gyro.tolist() if has_gyro else None
    last: tuple[float, list[float], list[float] | None] | None = None
    next_k = 0
    for i, t in enumerate(t_arr):
        a = acc_arr[i]
        g = gyro_arr[i] if gyro_arr is not None else None
        if not all(math.isfinite(x) for x in a) or (last is not None and t <= last[0]):
            continue
        if last is None:
            next_k = math.ceil(t * TICK_HZ)
            last = (t, a, g)
        lt, la, lg = last
        tt0, tt1 = lt * TICK_HZ, t * TICK_HZ
        marked = False
        for k in range(next_k, math.floor(tt1) + 1):
            gx = None
            if k == tt1:                                  # a tick on this sample
                x, gx = a, g
            elif t - lt > gap_s:                          # inside a gap: one marker
                if marked:
                    continue
                marked, x = True, None
            else:
                w = (k - tt0) / (tt1 - tt0)
                x = [la[j] + w * (a[j] - la[j]) for j in range(3)]
                if g is not None and lg is not None:
                    gx = [lg[j] + w * (g[j] - lg[j]) for j in range(3)]
            sec = k // TICK_HZ
            if sec != sec_cur:
                close_second()
                sec_cur, sec_ticks = sec, []
                sec_steps, sec_sq, sec_n = 0, 0.0, 0
            if x is None:
                sec_ticks.append((k, math.nan))
                prev_bp = [math.nan, math.nan]
                restart = True
                continue
            if restart:
                for f, v in zip(grav + fast, x + x, strict=True):
                    f.reset(v)
            _gravity = [f.step(v) for f, v in zip(grav, x, strict=True)]
            fv = [f.step(v) for f, v in zip(fast, x, strict=True)]
            mag = math.sqrt(x[0] ** 2 + x[1] ** 2 + x[2] ** 2)
            if restart:
                mag_lp.reset(mag)
            a_vert = mag - mag_lp.step(mag)
            if restart:
                step_bp.reset(a_vert)
            bp = step_bp.step(a_vert)
            gu = sum(fv[j] * up[j] for j in range(3))
            flex = math.degrees(math.atan2(sum(fv[j] * fwd[j] for j in range(3)), gu))
            if gx is not None:
                rate = sum(gx[j] * lat[j] for j in range(3))
                if restart:
                    rate_hp.reset(rate)
                    theta = flex
                rate = rate_hp.step(rate)
                theta = a_cf * (theta + rate * TICK_S) + (1 - a_cf) * flex
                flex = theta
            restart = False
            b0, b1 = prev_bp
            if b1 > b0 and b1 >= bp and b1 > STEP_MIN_G and k - last_step_k >= min_step:
                sec_steps += 1
                last_step_k = k
            prev_bp = [b1, bp]
            sec_sq += bp * bp
            bp_hist[k] = bp
            sec_n += 1
            sec_ticks.append((k, flex))
        next_k = max(next_k, math.floor(tt1) + 1)
        last = (t, a, g)
    close_second()
    return events
