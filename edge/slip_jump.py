"""Sharp jumps of the gravity direction between two steady stretches (used by `edge.slip`).

A slipping clip turns the board in 0.3–2 s. When the wearer is steady on both sides of
it (sitting, standing, one walking bout, or back in the same posture after a reach), the
gravity direction *jumps*: steady, a few seconds of movement, steady again at another
direction. The rotation across that jump is the slip's own rotation (its flexion part
included, which nothing else measures directly), and it is known within seconds, before
a slouch alert raised by the slip's flexion tilt (5 s) could fire. Whether a jump looks
like a slip (mostly a turn about the board normal, i.e. sideways) is `SlipWatch`'s
decision; this module only finds the jumps, vectorised, with a carried tail so that the
result does not depend on the chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STEADY_S = 3              # a second is steady when it and the 2 before lie within ...
STEADY_DEG = 2.5          # ... this angle of their mean
MAX_GAP_S = 15            # steady again within this many seconds of the last steady one
TAIL_S = STEADY_S + MAX_GAP_S + STEADY_S  # seconds carried over between calls
MOVING_MG = 80.0          # a second whose dynamic acceleration (rms) is above this moved


@dataclass
class Jump:
    sec: int                  # the second that completed the steady stretch after it
    before: np.ndarray        # mean unit gravity of the steady stretch before (3 s)
    after: np.ndarray         # ... and after
    moving_s: int = 0         # seconds of movement (dynamic acceleration) across it
    detour_deg: float = 0.0   # how far the seconds between strayed from the arc joining them


def _detour(a: np.ndarray, b: np.ndarray, between: np.ndarray) -> float:
    """The largest angle (degrees) of ``between``'s directions from the great circle
    through ``a`` and ``b``: a slip turns the board about one axis, so the gravity
    direction moves along (nearly) that arc; a posture change on the way (the forward
    lean of a sit-down or stand-up, a reach) strays from it."""
    normal = np.cross(a, b)
    size = float(np.linalg.norm(normal))
    if len(between) == 0 or size < 1e-9:
        return 0.0
    return float(np.degrees(np.arcsin(np.clip(np.max(np.abs(between @ normal)) / size,
                                              0.0, 1.0))))


@dataclass
class JumpFinder:
    """Finds `Jump`s in per-second unit gravity directions; see the module doc."""

    _sec: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _g: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    _moved: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def feed(self, sec: np.ndarray, g: np.ndarray, dyn_mg: np.ndarray | None = None
             ) -> list[Jump]:
        """Seconds (int, increasing), unit gravity (n, 3) and the dynamic acceleration's
        rms (mg; None: unknown, counted as moving); returns the jumps these seconds
        complete, in time order."""
        n_old = len(self._sec)
        s = np.concatenate((self._sec, sec.astype(np.int64)))
        gg = np.concatenate((self._g, g))
        moved = np.concatenate((self._moved, np.ones(len(sec), bool) if dyn_mg is None
                                else np.asarray(dyn_mg) > MOVING_MG))
        keep = max(0, len(s) - TAIL_S)
        self._sec, self._g, self._moved = s[keep:], gg[keep:], moved[keep:]
        n = len(s)
        if n < STEADY_S or len(sec) == 0:
            return []
        k = STEADY_S - 1
        # mean direction of each second with the k before it, and its spread
        csum = np.cumsum(np.vstack((np.zeros((1, 3)), gg)), axis=0)
        mean = csum[k + 1:] - csum[:-k - 1]  # rows i - k .. i, for i = k .. n-1
        mean /= np.maximum(np.linalg.norm(mean, axis=1), 1e-12)[:, None]
        low = np.full(len(mean), 1.0)
        for j in range(STEADY_S):
            low = np.minimum(low, np.einsum("ij,ij->i", gg[j:n - k + j], mean))
        consecutive = s[k:] - s[:n - k] == k
        steady = np.zeros(n, bool)
        steady[k:] = consecutive & (low >= math.cos(math.radians(STEADY_DEG)))
        means = np.zeros((n, 3))
        means[k:] = mean
        prev_steady = np.concatenate(([False], steady[:-1])) & \
            np.concatenate(([False], s[1:] - s[:-1] == 1))
        starts = np.flatnonzero(steady & ~prev_steady)
        out: list[Jump] = []
        idx_steady = np.flatnonzero(steady)
        for i in starts[starts >= max(n_old, k)].tolist():
            p = np.searchsorted(idx_steady, i) - 1  # the last steady second before i
            if p < 0:
                continue
            j = int(idx_steady[p])
            # the stretch after must not overlap the one before
            if s[i] - s[j] <= MAX_GAP_S and s[i] - s[j] >= STEADY_S:
                # from the last second of the steady stretch before to the first after
                moving = int(moved[max(j - 1, 0):i - k + 1].sum())
                out.append(Jump(int(s[i]), means[j].copy(), means[i].copy(), moving,
                                _detour(means[j], means[i], gg[j + 1:i - k])))
        return out
