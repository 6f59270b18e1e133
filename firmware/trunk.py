"""Render a `Timeline` into body-frame sensor signals, chunk by chunk.

The trunk's yaw, flexion and lean are the timeline's knot tracks plus slow sway (scaled
per activity) plus gait oscillations while walking; the hip's acceleration comes from
its position tracks (sit-to-stand) and the gait. Because every component is a
continuous function of time, chunks are independent: memory stays bounded for a long
day and the result does not depend on the chunk size.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from spinesense.firmware import kinematics as kin
from spinesense.firmware.timeline import Timeline

CHUNK = 1 << 18


def _gait(tl: Timeline, tq: np.ndarray, flex: kin.Sig, lean: kin.Sig, yaw: kin.Sig,
          hip: np.ndarray, variability: list[kin.Sway]) -> None:
    """Add the walking oscillations in place, computed on the walking samples only.

    Steps are not a metronome: the phase wanders (±0.5 rad over a few seconds, about 2 %
    cadence variability) and the amplitude breathes by ±10 %."""
    ranges = [np.searchsorted(tq, [w.start, w.end]) for w in tl.walks]
    walks = [(w, a, b) for w, (a, b) in zip(tl.walks, ranges, strict=True) if b > a]
    if not walks:
        return
    idx = np.concatenate([np.arange(a, b) for _, a, b in walks])
    tw = tq[idx]
    env = tl.walk_env.evaluate(tw) * (variability[1].evaluate(tw).scale(0.1)
                                      + kin.Sig(np.ones_like(tw), np.zeros_like(tw),
                                                np.zeros_like(tw)))
    phase, omega = np.empty_like(tw), np.empty_like(tw)
    amps = {k: np.empty_like(tw) for k in tl.walks[0].amp}
    pos = 0
    for w, a, b in walks:
        sl = slice(pos, pos + b - a)
        pos += b - a
        omega[sl] = 2 * np.pi * w.freq_hz
        phase[sl] = omega[sl] * (tw[sl] - w.start) + w.phase0
        for k, v in w.amp.items():
            amps[k][sl] = v
    wander = variability[0].evaluate(tw).scale(0.5)
    phase_sig = kin.Sig(phase + wander.v, omega + wander.d1, wander.d2)

    def osc(key: str, harmonic: float, offset: float, gain: float = 1.0) -> kin.Sig:
        return kin.oscillation(env, gain * amps[key], phase_sig, harmonic, offset)

    # vertical bounce at the step frequency (plus a harmonic), fore-aft at the step
    # frequency, side-to-side at the stride frequency (half the step rate)
    hip[idx, 2] += osc("vert_g", 1.0, np.pi / 2).v + osc("vert_g", 2.0, 0.3, 0.2).v
    hip[idx, 0] += osc("ap_g", 1.0, 0.0).v
    hip[idx, 1] += osc("ml_g", 0.5, 0.0).v
    for sig, key, harmonic, offset in ((flex, "pitch_deg", 1.0, 0.8),
                                       (lean, "roll_deg", 0.5, 0.4),
                                       (yaw, "yaw_deg", 0.5, 1.9)):
        sig.add_at(idx, osc(key, harmonic, offset))


def _breathing(tq: np.ndarray, breath: tuple[float, float, kin.Sway, kin.Sway]) -> kin.Sig:
    """Chest and upper back rise and fall with each breath: ~0.25° of flexion at 12–18
    breaths a minute, the rhythm and depth varying a little."""
    freq, phase0, wander, depth = breath
    w = wander.evaluate(tq).scale(0.6)
    phase = kin.Sig(2 * np.pi * freq * tq + phase0 + w.v, 2 * np.pi * freq + w.d1, w.d2)
    ones = kin.Sig(np.ones_like(tq), np.zeros_like(tq), np.zeros_like(tq))
    env = ones + depth.evaluate(tq).scale(0.2)
    return kin.oscillation(env, np.float64(0.25), phase, 1.0, 0.0)


def _knocks(tl: Timeline, tq: np.ndarray, hip: np.ndarray) -> None:
    """Add each bump's damped oscillation to the hip acceleration (in place)."""
    if not len(tq):
        return
    for k in tl.knocks:
        a, b = np.searchsorted(tq, [k.t, k.t + 6 * k.decay_s])
        if b <= a:
            continue
        tau = tq[a:b] - k.t
        pulse = k.peak_g * np.exp(-tau / k.decay_s) * np.sin(2 * np.pi * k.freq_hz * tau)
        hip[a:b] += pulse[:, None] * np.asarray(k.direction)


def _chunk(tl: Timeline, sways: list[kin.Sway], breath: tuple,
           tq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    amp = [track.evaluate(tq) for track in tl.sway]
    flex = (tl.flex.evaluate(tq) + amp[0] * sways[0].evaluate(tq)
            + amp[3] * sways[3].evaluate(tq) + _breathing(tq, breath))
    lean = tl.lean.evaluate(tq) + amp[1] * sways[1].evaluate(tq)
    yaw_base = tl.yaw.evaluate(tq)
    yaw = yaw_base + amp[2] * sways[2].evaluate(tq) + amp[3] * sways[4].evaluate(tq)
    hip = np.zeros((len(tq), 3))
    hip[:, 0] = tl.hip_x.evaluate(tq).d2 / kin.G
    hip[:, 2] = tl.hip_z.evaluate(tq).d2 / kin.G
    if tl.walks:
        _gait(tl, tq, flex, lean, yaw, hip, sways[5:7])
    _knocks(tl, tq, hip)
    rad = np.pi / 180.0
    acc, gyro = kin.body_motion(yaw.scale(rad), flex.scale(rad), lean.scale(rad),
                                yaw_base.v * rad, hip)
    return acc, gyro, np.column_stack([yaw.v, flex.v, lean.v])


def render(tl: Timeline, rng: np.random.Generator, duration: float, tq: np.ndarray,
           mount: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensor-frame specific force (g) and angular rate (deg/s) as float32, and the ZYX
    Euler angles (deg: yaw, flexion, lean) at times ``tq``; ``mount`` is the sensor→body
    rotation."""
    sways = [kin.Sway(rng, duration), kin.Sway(rng, duration),
             kin.Sway(rng, duration, knot_s=2.0, smooth_s=6.0),
             kin.Sway(rng, duration, knot_s=0.1, smooth_s=0.08),
             kin.Sway(rng, duration, knot_s=0.1, smooth_s=0.08),
             kin.Sway(rng, duration, knot_s=1.0, smooth_s=3.0),  # gait phase wander
             kin.Sway(rng, duration, knot_s=1.0, smooth_s=2.0)]  # gait amplitude
    breath = (rng.uniform(0.2, 0.3), rng.uniform(0, 2 * np.pi),
              kin.Sway(rng, duration, knot_s=2.0, smooth_s=5.0),
              kin.Sway(rng, duration, knot_s=4.0, smooth_s=10.0))
    acc, gyro = np.empty((len(tq), 3), np.float32), np.empty((len(tq), 3), np.float32)
    euler = np.empty((len(tq), 3))
    for start in range(0, len(tq), CHUNK):
        sl = slice(start, start + CHUNK)
        acc_body, gyro_body, euler[sl] = _chunk(tl, sways, breath, tq[sl])
        for j in range(3):  # row-wise Mᵀ·v, body → sensor (10x faster than `@` here)
            acc[sl, j] = (acc_body[:, 0] * mount[0, j] + acc_body[:, 1] * mount[1, j]
                          + acc_body[:, 2] * mount[2, j])
            gyro[sl, j] = (gyro_body[:, 0] * mount[0, j] + gyro_body[:, 1] * mount[1, j]
                           + gyro_body[:, 2] * mount[2, j])
    return acc, gyro, euler


MOVING = ("walking", "sit_to_stand", "stand_to_sit", "lie_down", "sit_up", "reach")


def slip_mounting(acc: np.ndarray, gyro: np.ndarray, tq: np.ndarray, segments: list,
                  slip_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Let the sensor slip on the back by ``slip_deg`` in all, in place.

    The clip turns about a random axis in the plane of the back (the sensor's x-y plane),
    and it moves only while the wearer moves (walking, transitions, reaches), in
    proportion to the time spent moving, or evenly if they never move. ``acc``/``gyro``
    are the sensor-frame signals of the initial mounting M0; the return value is Q(T),
    the slip at the end, so the final mounting is M0 @ Q(T).
    """
    beta = rng.uniform(0.0, 2 * np.pi)
    axis = np.array([np.cos(beta), np.sin(beta), 0.0])
    moving = np.zeros(len(tq))
    for seg in segments:
        if seg.activity in MOVING:
            moving[np.searchsorted(tq, seg.start):np.searchsorted(tq, seg.end)] = 1.0
    if moving.sum() == 0:
        moving[:] = 1.0
    angle = np.radians(slip_deg) * np.cumsum(moving) / moving.sum()  # s(t), radians
    rate = np.degrees(np.gradient(angle, tq)) if len(tq) > 1 else np.zeros_like(tq)
    # readings in the slipped frame: v' = Q(t)ᵀ v, Rodrigues with angle −s(t)
    c, s = np.cos(-angle)[:, None], np.sin(-angle)[:, None]
    for v in (acc, gyro):
        k_dot_v = (v @ axis)[:, None]
        v[:] = v * c + np.cross(axis, v) * s + axis * k_dot_v * (1.0 - c)
    gyro += rate[:, None] * axis  # the slip itself is a (slow) rotation the gyro sees
    return Rotation.from_rotvec(axis * angle[-1]).as_matrix() if len(tq) else np.eye(3)
