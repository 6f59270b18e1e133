"""The accelerometer's magnitude error as a function of how the board is turned.

A MEMS accelerometer's bias (tens of mg) and scale and cross-axis errors (a few %) make a
still board read |f| ≠ 1 g by an amount that depends on its orientation. A sit-to-stand
tips the trunk 10–45° forward and back, and the error's change along the way, integrated
twice, moves the rise by tens of centimetres over a 5-s window: on the development days
(with a gyro) 117 of 190 true stand-ups were found; with the simulated accelerometer's
bias and gain errors both removed 135 were, with either alone 117–121, ideal 140. The
zero-velocity edges of `edge.transitions` already remove any constant error; only its
change with orientation matters.

`MagnitudeFit` learns the error while the board is still, as a quadratic in the gravity
direction (sensor frame: constant, linear and the six quadratic terms, which a bias and
a symmetric gain error produce to first order), by ridge regression that keeps it at
zero until still postures in several orientations have been seen. It is then subtracted
from the vertical acceleration.

Streaming-exact: ticks fall in aligned windows of ``WINDOW_S``; each window is corrected
with the fit of all windows before it, and the sums are kept in integers (fixed point),
so neither the chunking nor the order of additions changes a bit of the result.
"""

from __future__ import annotations

import numpy as np

from spinesense.edge.filters import TICK_HZ

WINDOW_S = 60           # the fit in use changes only at these aligned boundaries
STILL_MG = 15.0         # a tick this close to the low-passed gravity is still ...
SAMPLE_EVERY = TICK_HZ  # ... and one still tick a second is a sample (enough, and cheap)
RIDGE = 10.0           # prior weight, in samples (seconds), holding the fit at zero
SCALE = 2.0 ** 24       # fixed point of the summed products
N_FEAT = 10
_IU = np.triu_indices(N_FEAT)


def features(u: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors → (n, 10): 1, x, y, z, x², y², z², xy, xz, yz."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    return np.column_stack([np.ones(len(u)), x, y, z, x * x, y * y, z * z,
                            x * y, x * z, y * z])


def _quadratic(u: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """``features(u) @ beta`` as c + u·(b + Q u), row by row in a fixed order (a BLAS
    product's rounding depends on the number of rows: the chunking would show)."""
    q = np.array([[beta[4], beta[7] / 2, beta[8] / 2],
                  [beta[7] / 2, beta[5], beta[9] / 2],
                  [beta[8] / 2, beta[9] / 2, beta[6]]])
    return beta[0] + np.einsum("ij,ij->i", u, np.einsum("ij,kj->ik", u, q) + beta[1:4])


class MagnitudeFit:
    """Streaming fit of |f| − 1 g against orientation; see the module doc."""

    def __init__(self) -> None:
        self.window = WINDOW_S * TICK_HZ
        width = len(_IU[0]) + N_FEAT
        self._done = np.zeros(width, np.int64)  # sums over the windows before the open one
        self._open = np.zeros(width, np.int64)  # the open window's so far
        self._open_w: int | None = None
        self._beta: np.ndarray | None = None    # the fit of ``_done`` (None: nothing yet)
        penalty = np.ones(N_FEAT)
        penalty[0] = 1e-6  # the constant is free (the zero-velocity edges remove it)
        self._ridge = np.diag(RIDGE * penalty)

    def error(self, k: np.ndarray, valid: np.ndarray, grav: np.ndarray, dyn_mg: np.ndarray,
              up: np.ndarray) -> np.ndarray:
        """The magnitude error (g) at each tick's orientation ``up`` (unit vectors, sensor
        frame), from the fit before its window; then learns from the still ticks here."""
        n = len(k)
        w = k // self.window
        take = valid & (k % SAMPLE_EVERY == 0)
        rows = None
        if take.any():
            with np.errstate(invalid="ignore"):
                take &= dyn_mg < STILL_MG
            rows = self._rows(grav[take]) if take.any() else None
        if n and w[0] == w[-1] == self._open_w:  # the usual live block: one open window
            if rows is not None:
                self._open = self._open + rows.sum(axis=0)
            return np.zeros(n) if self._beta is None else _quadratic(up, self._beta)
        out = np.zeros(n)
        cuts = np.flatnonzero(w[1:] != w[:-1]) + 1
        # each window's still samples: which rows of ``rows`` fall in it
        first = np.searchsorted(np.flatnonzero(take), np.concatenate(([0], cuts)))
        last = np.append(first[1:], 0 if rows is None else len(rows))
        for lo, hi, a, b in zip(np.concatenate(([0], cuts)).tolist(), [*cuts.tolist(), n],
                                first.tolist(), last.tolist(), strict=True):
            win = int(w[lo])
            if win != self._open_w:  # a new window: the fit of all before it
                self._done = self._done + self._open
                self._open = np.zeros_like(self._open)
                self._open_w = win
                self._beta = self._solve(self._done)
            if self._beta is not None:
                out[lo:hi] = _quadratic(up[lo:hi], self._beta)
            if b > a and rows is not None:
                self._open = self._open + rows[a:b].sum(axis=0)
        return out

    @staticmethod
    def _rows(g: np.ndarray) -> np.ndarray:
        """Fixed-point products (upper triangle of f fᵀ, then f·y) for still samples."""
        mag = np.sqrt(np.einsum("ij,ij->i", g, g))
        f = features(g / mag[:, None])
        prod = np.concatenate((f[:, _IU[0]] * f[:, _IU[1]], f * (mag - 1.0)[:, None]), axis=1)
        return np.rint(prod * SCALE).astype(np.int64)

    def _solve(self, sums: np.ndarray) -> np.ndarray | None:
        """The ridge fit of the summed products (None before any still sample)."""
        if sums[0] == 0:
            return None
        n_pairs = len(_IU[0])
        a = np.zeros((N_FEAT, N_FEAT))
        a[_IU] = sums[:n_pairs] / SCALE
        a = a + np.triu(a, 1).T + self._ridge
        return np.linalg.solve(a, sums[n_pairs:] / SCALE)
