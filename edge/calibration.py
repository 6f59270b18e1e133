"""The upright reference and the forward (sagittal) axis, in the sensor's own frame.

The sensor may sit on the back at any rotation. Two directions are enough to get signed
angles out of it:

* ``up``: the direction of the measured specific force (gravity reaction) while the wearer
  sits or stands upright and still;
* ``forward``: the unit direction, perpendicular to ``up``, in which that measured vector
  moves when the trunk flexes forward (it is the body's *backward* axis: leaning forward
  tips the sensor so that gravity's reaction swings toward the back).

Flexion is then ``atan2(g·forward, g·up)`` (forward positive, reclined negative) and
lateral lean ``atan2(g·(forward × up), g·up)`` (positive toward the wearer's right, for a
right-handed sensor frame).

The mounting model (DESIGN A3): the board lies flat on the upper back, so its z axis is
the back's normal. With ``mount = "back-out"`` z points away from the body, i.e. along
the body's backward axis, which is where gravity's reaction swings when the trunk flexes
forward: ``forward`` is then the projection of +z perpendicular to ``up`` (the
anatomical forward direction is its opposite, the projection of −z). ``back-in``
reverses it. ``facing`` records which of the two a calibration uses; ``signed`` is False
while the sign is not known (``mount = "auto"`` before the evidence is sure), and slouch
is then judged on the size of the sagittal flexion, either way.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class CalibrationError(ValueError):
    """Calibration data that cannot give a trustworthy reference (one line, with the fix)."""


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to length 1; a zero vector stays zero. For running means in the hot
    paths (a push's gravity, a slip window's direction); a direction that must be valid
    goes through `_unit`, which refuses it."""
    n = math.sqrt(float(v @ v))  # as np.linalg.norm computes it, without its overhead
    return v / n if n > 0 else v


def unit_or_none(v: np.ndarray) -> np.ndarray | None:
    """``v`` scaled to length 1, or None when it has no direction (zero or not finite):
    for evidence that is skipped rather than refused."""
    n = math.sqrt(float(v @ v))
    return v / n if n > 1e-9 and math.isfinite(n) else None


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float).reshape(3)
    n = float(np.linalg.norm(v))
    if not math.isfinite(n) or n < 1e-9:
        raise CalibrationError("zero or invalid direction vector")
    return v / n


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two directions in degrees."""
    a, b = _unit(a), _unit(b)
    return math.degrees(math.atan2(float(np.linalg.norm(np.cross(a, b))), float(a @ b)))


@dataclass
class Calibration:
    up: np.ndarray
    forward: np.ndarray | None = None
    method: str = "window"            # how `up` was found
    forward_method: str = "unknown"   # how `forward` was found
    window: tuple[float, float] | None = None
    created: float = field(default_factory=time.time)
    info: dict[str, Any] = field(default_factory=dict)
    facing: str = ""                  # back-out / back-in ("": derived from forward)
    signed: bool = True               # False: flexion sign unknown, judged either way

    def __post_init__(self) -> None:
        self.up = _unit(self.up)
        if self.forward is not None:
            self.forward = orthogonal_forward(self.up, self.forward)
            if not self.facing:
                self.facing = facing_of(self.up, self.forward)

    @property
    def complete(self) -> bool:
        return self.forward is not None

    @property
    def lateral(self) -> np.ndarray:
        """The body's left axis in the sensor frame: flexion is a rotation about it."""
        if self.forward is None:
            raise CalibrationError("forward axis not known yet")
        return np.cross(self.forward, self.up)

    def angles(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed flexion and lateral lean (degrees) of gravity vectors g (n, 3)."""
        f = self.forward
        if f is None:
            raise CalibrationError("forward axis not known yet")
        gu = g @ self.up
        flex = np.degrees(np.arctan2(g @ f, gu))
        lat = np.degrees(np.arctan2(g @ self.lateral, gu))
        return flex, lat

    def tilt(self, g: np.ndarray) -> np.ndarray:
        """Unsigned angle (degrees) between g (n, 3) and upright."""
        n = np.linalg.norm(g, axis=1)
        cos = np.clip((g @ self.up) / np.where(n > 0, n, 1.0), -1.0, 1.0)
        return np.degrees(np.arccos(cos))

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "up": [float(x) for x in self.up],
                "forward": None if self.forward is None else [float(x) for x in self.forward],
                "method": self.method, "forward_method": self.forward_method,
                "window": None if self.window is None else list(self.window),
                "created": self.created, "info": self.info, "facing": self.facing,
                "signed": self.signed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        try:
            return cls(up=np.array(d["up"], float),
                       forward=None if d.get("forward") is None else np.array(d["forward"],
                                                                              float),
                       method=str(d.get("method", "window")),
                       forward_method=str(d.get("forward_method", "unknown")),
                       window=None if d.get("window") is None else tuple(d["window"]),
                       created=float(d.get("created", 0.0)), info=dict(d.get("info", {})),
                       facing=str(d.get("facing", "")), signed=bool(d.get("signed", True)))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"not a calibration record ({exc}); run `spinesense "
                                   "calibrate` again") from None

    def save(self, path: str | Path) -> None:
        """Write atomically, so a power cut never leaves half a file."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CalibrationError(f"{p}: no calibration file; run `spinesense calibrate`"
                                   ) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{p}: unreadable calibration ({exc}); run `spinesense "
                                   "calibrate` again") from None
        return cls.from_dict(data)

    def summary(self) -> str:
        fwd = "unknown" if self.forward is None else self.forward_method
        return f"upright from {self.method}, forward axis from {fwd}"


FACING_SIGN = {"back-out": 1.0, "back-in": -1.0}
BOARD_Z = np.array([0.0, 0.0, 1.0])
MAX_NORMAL_TILT_DEG = 60.0  # a board normal closer than 30° to upright is not "on the back"


def normal_to_upright_deg(up: np.ndarray) -> float:
    """Angle between the board's z axis (either way) and upright: about 90° for a board
    flat on the back of an upright wearer."""
    return math.degrees(math.acos(min(1.0, abs(float(_unit(up)[2])))))


def board_axis(up: np.ndarray) -> np.ndarray:
    """The board's z axis projected perpendicular to upright (unit): the body's backward
    axis for a back-out board (see `normal_to_upright_deg` for how far to trust it)."""
    return orthogonal_forward(up, BOARD_Z)


def forward_from_mount(up: np.ndarray, facing: str) -> np.ndarray:
    """Where gravity's reaction swings on forward flexion, from the mount facing."""
    return FACING_SIGN[facing] * board_axis(up)


def facing_of(up: np.ndarray, forward: np.ndarray) -> str:
    """Which facing a forward axis implies (the sign of its board-normal component)."""
    up = _unit(up)
    z = BOARD_Z - up[2] * up
    return "back-out" if float(np.asarray(forward, float) @ z) >= 0 else "back-in"


def orthogonal_forward(up: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The part of ``direction`` perpendicular to ``up``, as a unit vector."""
    up = _unit(up)
    d = np.asarray(direction, float).reshape(3)
    d = d - (d @ up) * up
    if np.linalg.norm(d) < 1e-6:
        raise CalibrationError("the forward direction is parallel to upright")
    return _unit(d)


def _spread_deg(acc: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Each sample's angle (degrees) from ``up`` (default: the mean gravity direction)."""
    norm = np.linalg.norm(acc, axis=1)
    up = _unit(acc.mean(axis=0)) if up is None else up
    return np.degrees(np.arccos(np.clip((acc / norm[:, None]) @ up, -1, 1)))


def _check_window(acc: np.ndarray) -> np.ndarray:
    acc = np.asarray(acc, float)
    acc = acc[np.isfinite(acc).all(axis=1)]
    if len(acc) < 10:
        raise CalibrationError(f"calibration window has {len(acc)} samples; it needs at "
                               "least 10 (a few seconds of data)")
    norm = np.linalg.norm(acc, axis=1)
    if not 0.7 < float(np.median(norm)) < 1.3:
        raise CalibrationError(f"calibration window reads {np.median(norm):.2f} g, not about "
                               "1 g; is the data in g?")
    return acc


def upright_from_still(acc: np.ndarray, *, max_spread_deg: float = 4.0) -> np.ndarray:
    """Mean gravity direction of a still window; refuses a window with movement in it."""
    acc = _check_window(acc)
    spread = float(np.percentile(_spread_deg(acc), 90))
    if spread > max_spread_deg:
        raise _moved(spread, max_spread_deg)
    return _unit(acc.mean(axis=0))


def _moved(spread: float, max_spread_deg: float) -> CalibrationError:
    return CalibrationError(f"the wearer moved during the calibration window (90% of "
                            f"samples within {spread:.1f}°, allowed {max_spread_deg}°); "
                            "sit or stand still and upright")


def still_part(acc: np.ndarray, *, max_spread_deg: float = 4.0, min_share: float = 0.5,
               settle_deg: float = 8.0) -> slice:
    """The longest contiguous part of a given window (``--calibrate``) that is still.

    A wearer often settles into upright during the first seconds of the window they name
    (or starts to move before it ends). The still part, at least ``min_share`` of the
    window, then gives upright, provided that every sample of the window lies within
    ``settle_deg`` of it: a settle of a few degrees, not a slouch or a lean (a still part
    that far from the rest could be the slouch, so the window is refused as before).
    ``acc`` must be finite rows; returns the whole window when it is still throughout.
    """
    acc = _check_window(acc)
    n = len(acc)
    spread = float(np.percentile(_spread_deg(acc), 90))
    if spread <= max_spread_deg:
        return slice(0, n)
    step = max(1, n // 40)
    for length in range(n - step, max(10, math.ceil(min_share * n)) - 1, -step):
        starts = np.unique(np.r_[np.arange(0, n - length + 1, step), n - length])
        p90 = [float(np.percentile(_spread_deg(acc[a:a + length]), 90)) for a in starts]
        best = int(np.argmin(p90))
        if p90[best] <= max_spread_deg:
            part = slice(int(starts[best]), int(starts[best]) + length)
            if float(_spread_deg(acc, _unit(acc[part].mean(axis=0))).max()) <= settle_deg:
                return part
            break
    raise _moved(spread, max_spread_deg)


def forward_from_lean(up: np.ndarray, lean_acc: np.ndarray, *,
                      min_deg: float = 8.0) -> np.ndarray:
    """The forward axis from data recorded while leaning forward (guided step).

    Uses the most-tilted quarter of the samples (the lean itself, not the way there and
    back) and refuses a lean too shallow to give a direction.
    """
    lean_acc = np.asarray(lean_acc, float)
    lean_acc = lean_acc[np.isfinite(lean_acc).all(axis=1)]
    if len(lean_acc) < 8:
        raise CalibrationError("no data from the lean-forward step")
    up = _unit(up)
    g = lean_acc / np.linalg.norm(lean_acc, axis=1, keepdims=True)
    tilt = np.degrees(np.arccos(np.clip(g @ up, -1.0, 1.0)))
    deep = tilt >= np.percentile(tilt, 75)
    ang = float(np.median(tilt[deep]))
    if ang < min_deg:
        raise CalibrationError(f"you leaned only {ang:.0f}° (needs {min_deg:.0f}° or more); "
                               "lean forward further during the lean step")
    return orthogonal_forward(up, g[deep].mean(axis=0))


def make_calibration(up: np.ndarray, up_method: str, mount: str, *,
                     window: tuple[float, float] | None = None, locked_t: float = 0.0,
                     given_forward: np.ndarray | None = None,
                     up_confidence: str = "normal") -> Calibration:
    """A complete calibration from upright and the mounting model (see module doc)."""
    tilt = normal_to_upright_deg(up)
    on_back = tilt >= 90.0 - MAX_NORMAL_TILT_DEG
    info: dict[str, Any] = {"locked_t": locked_t, "mount": mount}
    if given_forward is None and tilt < 1.0:  # z along upright: no sagittal axis at all
        helper = np.eye(3)[int(np.argmin(np.abs(up)))]
        cal = Calibration(up=up, forward=np.cross(up, helper), method=up_method,
                          forward_method="unknown: the board's z axis is along upright, "
                          "it does not lie on the back (axis arbitrary, judged either way)",
                          window=window, facing="unknown", signed=False)
        cal.info = {**info, "confidence": "none"}
        return cal
    if given_forward is not None:
        cal = Calibration(up=up, forward=given_forward, method=up_method,
                          forward_method="stored calibration", window=window)
        info["confidence"] = up_confidence
    elif mount == "auto":
        cal = Calibration(up=up, forward=board_axis(up), method=up_method,
                          forward_method="board normal, sign not known yet (mount auto): "
                          "slouch judged on sagittal flexion either way",
                          window=window, facing="unknown", signed=False)
        info["confidence"] = "low"
    else:
        cal = Calibration(up=up, forward=forward_from_mount(up, mount), method=up_method,
                          forward_method=f"board normal, mount {mount}", window=window,
                          facing=mount)
        info["confidence"] = up_confidence if on_back else "low"
    if not on_back:
        info["forward_method_note"] = (f"board z axis only {tilt:.0f}° from upright: "
                                       "not flat on the back?")
    cal.info = info
    return cal


def calibrated_record(cal: Calibration, t: float, **extra: Any) -> dict[str, Any]:
    """The ``calibrated`` record for ``cal``, effective from ``t``."""
    return {"type": "calibrated", "t": t, "method": cal.method,
            "forward_method": cal.forward_method, "facing": cal.facing,
            "signed": int(cal.signed),
            "up": [round(float(x), 5) for x in cal.up],
            "forward": [round(float(x), 5) for x in cal.forward],  # type: ignore[union-attr]
            **{k: v for k, v in cal.info.items() if k != "locked_t"}, **extra}
