"""Sit-to-stand and stand-to-sit from the hips' net rise or drop over a movement.

A sit/stand moves the hips by tens of centimetres between two moments at which the trunk
is at rest (or walking). The detector does not threshold a filtered displacement signal
(whose high-pass rebound and squared horizontal accelerations look like rises); it finds
each *movement* (the smoothed dynamic acceleration above ``features.MOVING_MG``, with
holes shorter than ``BRIDGE_S`` bridged) and integrates the acceleration along the
gravity direction twice over a window that starts and ends ``EDGE_S`` outside it, with
the velocity's mean forced to zero over those two edges (zero-velocity bounds: before
and after the move the trunk is still, or walking, whose vertical velocity averages out).
That removes any constant bias, and the rise is the mean height over the tail edge minus
that over the head edge. The estimate is a fixed linear combination of the window's
accelerations (`zero_velocity_weights`).

* A movement shorter than ``SHORT_S``: one window around all of it; two movements less
  than ``MERGE_S`` apart are also judged as one first (a slow push pauses mid-way).
* A longer one (a walk that starts with standing up or ends with sitting down): windows
  anchored at its start (judged for a rise only, unless stepless: nobody sits down and then walks
  like that, while the first steps of a walk, whose tail edge lies in the gait, can
  read as a drop; a start without steps may drop: typing right after a sit-down keeps
  the movement going) and at its end, ``ANCHOR_S`` into it (at the end with a
  ``GAIT_EDGE_S`` head edge in the gait); their median counts only if they agree within
  ``AGREE`` (a drop that grows with the window is a drift through the walk) and the same
  length of movement before did not climb or descend the same way too (stairs: by over
  ``STAIRS_SHARE`` of it and ``STAIRS_MIN_M``).

A push counts when its rise or drop exceeds ``RISE_M`` / ``DROP_M`` beyond what the
change of tilt alone explains (``BEND_LEVER_M``), is under ``MAX_LIFT_M`` (stairs), the
trunk leaned forward by ``TRANSITION_LEAN_DEG`` or more on the way (moving the weight
over the feet; ``SIT_DOWN_LEAN_DEG`` for a drop, except out of a walk without a gyro),
and its tilt after the move is within ``MAX_TURN_DEG`` of before (a stand-up ends as
upright as it began; slouches, reaches and reclines do not), or
``MAX_SIT_TURN_DEG`` after a sit-down (which may go straight into a slouch;
``MAX_SLOUCH_SIT_TURN_DEG`` with a gyro and a drop of ``SLOUCH_SIT_DROP_M`` or more,
``LONE_SLOUCH_SIT_TURN_DEG`` if also judged alone: `sit_turn_bound`), or
``MAX_BEND_TURN_DEG`` after a stand-up that came back upright first and then bent the
way it had leaned (straight into a bend over a standing desk, `_upright_then_bent`). The lean's
lower bound may be met by the low-passed specific force's tilt, its upper bounds by the
trunk's own (gyro-tracked) lean only, since a push's thrust adds to the former; without a
gyro only the former is known, and a stand-up judged alone (not merged) may pass the
bound by ``UNTRACKED_THRUST_DEG`` if it rose ``THRUST_RISE_M`` or more and ends within
``MAX_TURN_DEG`` of its starting tilt (a seated reach tips the force as far, but reads a
smaller rise, ends bent, or is judged as one merged movement out and back). A walk
lies on the standing side of a transition: ``WALK_SIDE_S`` walking seconds after the
deepest lean rule out a sit-down, and before the first lean a stand-up; and
``STEPPED_DROP_STEPS`` step peaks while the hips drop rule out a sit-down (stairs down).
No fixed duration or velocity profile is assumed. Decisions are made on the window's
last tick, so they never depend on how the ticks were cut into blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from spinesense.edge.calibration import unit
from spinesense.edge.filters import TICK_HZ

RISE_M = 0.2
DROP_M = 0.2
EDGE_S = 1.0            # still (or walking) edges around a movement: zero mean velocity
GAIT_EDGE_S = 2.0       # the head edge at the end of a long movement (a walk): more steps
AGREE = 2.0             # a long movement's anchored windows must agree within this factor
MERGE_S = 2.0           # two movements this close are also judged as one
BRIDGE_S = 0.6          # a pause this short inside a movement does not end it
SHORT_S = 8.0           # longer movements are judged at their start and end
ANCHOR_S = (4.0, 5.0, 6.0)  # how far into a long movement its anchored windows reach
TRANSITION_LEAN_DEG = 8.0
SIT_DOWN_LEAN_DEG = 4.0  # a drop's lower bound: from a posture already leaning forward
#                          (standing 6°, a walk's own lean) a 10° sit-down reads 4°
TRANSITION_MAX_LEAN_DEG = 55.0  # more is lying down or getting up from lying
SIT_TO_STAND_MAX_LEAN_DEG = 45.0
STEPLESS_RISE_LEAN_DEG = 10.0  # a "rise" that leaned less, with no step in it: a seated
#                                shift (typing), not a stand-up
UNTRACKED_THRUST_DEG = 15.0  # without a gyro the bounds apply to the force's tilt, which
#                              a push's forward thrust (0.2-0.3 g) tips by up to this ...
THRUST_RISE_M = 0.4     # ... for a rise this large (a seated reach that tips the force
#                         that far reads up to ~0.37 m from the tilted gravity alone)
MAX_TURN_DEG = 15.0     # a stand-up ends as upright as it began ...
MAX_SIT_TURN_DEG = 20.0  # ... a sit-down may go straight into a slouch, and a stand-up
MAX_SLOUCH_SIT_TURN_DEG = 30.0  # (a deeper one when a gyro tracks the vertical and the
SLOUCH_SIT_DROP_M = 0.4  # ... hips dropped this far: a standing reach read 0.36 m),
LONE_SLOUCH_SIT_TURN_DEG = 40.0  # deeper still when judged alone (`sit_turn_bound`)
MAX_WALK_TURN_DEG = 25.0  # into a walk ends in the walk's own lean (up to ~10° more)
MAX_BEND_TURN_DEG = 45.0  # ... or straight into a bend over a standing desk, once upright
RETURN_DEG = 10.0       # (back by this much from its lean, within MAX_TURN_DEG of the start)
BEND_LEVER_M = 0.6      # a tilt change of θ alone moves the sensor up to this·(1 - cos θ)
MAX_LIFT_M = 1.5        # more is stairs, not a chair (a stand-up that steps off in its
#                         own movement read 1.0–1.6 m: thirteenth round)
STAIRS_SHARE = 0.5      # a long movement that rose or dropped this share before: stairs
STAIRS_MIN_M = 0.3      # ... in the same direction, and at least this much (a few
#                         stairs; a level walk's drift reads a few tenths either way)
WALK_STEPS = 5          # this many step peaks in a long movement's start: a walk (its
#                         first 6 s give 6 or more; typing after a sit-down up to 3)
WALK_SIDE_S = 2         # walking seconds on one side of the lean (see `_judge`)
UNTRACKED_STEPS = 4     # without a gyro: this many step peaks after the deepest lean,
UNTRACKED_STEPS_S = 1.5  # spread over this long, rule out a sit-down (see `_judge`)
STEPPED_DROP_STEPS = 3  # this many step peaks while the hips drop: stairs down, not a seat
STEPPED_DROP_SPAN = (0.2, 0.8)  # ... between these shares of the drop
SHALLOW_DROP_LEAN_DEG = 12.0  # with a gyro, a drop whose trunk leaned less than this
SHALLOW_DROP_SPAN = (0.1, 0.9)  # ... counts its step peaks over this wider span (a
#                               sit-down brings the weight over the feet with a forward
#                               lean; a few stairs down keep the trunk nearly upright and
#                               step through the whole drop)


@dataclass
class Transition:
    t: float
    kind: str            # sit_to_stand or stand_to_sit
    lift_m: float        # the estimated rise (+) or drop (-) of the sensor
    lean_deg: float
    direction: np.ndarray  # where the gravity vector swung (forward evidence); 0: none
    while_walking: bool = False  # in or right after a walking second (stairs?)


def zero_velocity_path(a: np.ndarray, edge: int, head_edge: int | None = None) -> np.ndarray:
    """The height path (n,) or (n, m) from accelerations ``a`` along axis 0 (m/s² at
    TICK_HZ): velocity with zero mean over the first ``head_edge`` (default ``edge``) and
    the last ``edge`` ticks (a constant acceleration bias and the initial velocity are
    fitted away), integrated; up to a constant."""
    n, dt = len(a), 1.0 / TICK_HZ
    v = np.cumsum(a, axis=0) * dt
    t = (np.arange(n) * dt).reshape((n,) + (1,) * (v.ndim - 1))
    head, tail = slice(0, edge if head_edge is None else head_edge), slice(n - edge, n)
    vh, vt = v[head].mean(0), v[tail].mean(0)
    th, tt = t[head].mean(), t[tail].mean()
    slope = (vt - vh) / (tt - th)
    return np.cumsum(v - (vh - slope * th) - slope * t, axis=0) * dt


@lru_cache(maxsize=512)
def zero_velocity_weights(n: int, edge: int, head_edge: int | None = None) -> np.ndarray:
    """Weights ``h`` (n,) with rise = h @ a: the `zero_velocity_path`'s mean over the
    last ``edge`` ticks minus that over the first (``head_edge`` ticks, if given), as
    one linear combination (the path of a unit impulse at each tick)."""
    p = zero_velocity_path(np.eye(n), edge, head_edge)
    out = p[n - edge:].mean(0) - p[:edge if head_edge is None else head_edge].mean(0)
    out.flags.writeable = False
    return out


class PushDetector:
    """Streaming: movements are tracked across blocks with the last ticks kept; each
    judgement waits for its window's last tick and is made in the block that holds it."""

    def __init__(self) -> None:
        self.edge = round(EDGE_S * TICK_HZ)
        self.bridge = round(BRIDGE_S * TICK_HZ)
        self.short = round(SHORT_S * TICK_HZ)
        self.anchors = tuple(round(a * TICK_HZ) for a in ANCHOR_S)
        self.keep = max(self.short, 2 * max(self.anchors)) + 2 * self.edge + self.bridge + 2
        self._ctx: dict[str, np.ndarray] | None = None
        self._start: int | None = None     # first moving tick of the open movement
        self._end = 0                      # one past its last moving tick so far
        self._long_done = False            # its start-anchored judgement is queued
        self._pending: list[_Job] = []
        self.merge = round(MERGE_S * TICK_HZ)
        self.gait_edge = round(GAIT_EDGE_S * TICK_HZ)
        self._prev: tuple[int, int] | None = None  # the last movement ended

    def feed(self, k: np.ndarray, valid: np.ndarray, vert: np.ndarray, moving: np.ndarray,
             grav: np.ndarray, fast: np.ndarray, lean: np.ndarray,
             trunk_lean: np.ndarray | None = None, step: np.ndarray | None = None,
             walking: np.ndarray | None = None) -> list[Transition]:
        """``lean``: the tilt of the low-passed specific force from its slow mean (a
        push's thrust adds to it); ``trunk_lean``: the trunk's own (gyro-tracked), if
        known. The lean must reach ``TRANSITION_LEAN_DEG`` in either and stay under the
        upper bounds in the trunk's own."""
        new = {"k": k, "valid": valid, "vert": vert, "grav": grav, "fast": fast,
               "lean": lean, "trunk": lean if trunk_lean is None else trunk_lean,
               "step": np.zeros(len(k), bool) if step is None else step,
               "walk": np.zeros(len(k), bool) if walking is None else walking,
               "tracked": np.full(len(k), trunk_lean is not None)}
        ctx = new if self._ctx is None else {
            n: np.concatenate((self._ctx[n], new[n])) for n in new}
        out: list[Transition] = []
        if len(k):
            # runs of moving ticks in this block (a gap marker is never moving)
            m = moving.astype(np.int8)
            d = np.diff(np.concatenate(([0], m, [0])))
            starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
            gap_at = k[~valid]
            for a, b in zip(k[starts].tolist(), (k[ends - 1] + 1).tolist(), strict=True):
                if self._start is not None and a - self._end < self.bridge and not np.any(
                        (gap_at >= self._end) & (gap_at < a)):
                    self._end = b
                else:
                    self._close()
                    self._start, self._end, self._long_done = a, b, False
                if not self._long_done and b - self._start > self.short:
                    self._long_done = True
                    s0 = self._start
                    self._pending.append(_Job(
                        [(s0 - self.edge, s0 + n) for n in self.anchors], s0,
                        s0 + max(self.anchors), max(a, s0 + self.short), rise_only=True))
            last_k = int(k[-1])
            if self._start is not None and last_k >= self._end + self.bridge - 1:
                self._close()
            due = [j for j in self._pending if j.at <= last_k]
            self._pending = [j for j in self._pending if j.at > last_k]
            found_at = set()
            for job in due:  # a movement judged whole first: its parts only if nothing
                if job.at not in found_at:
                    got = self._judge(ctx, job)
                    out += got
                    if got and job.whole:
                        found_at.add(job.at)
        kk = ctx["k"]
        keep = max(0, len(kk) - self.keep)
        need = [min(lo for lo, _ in j.windows) for j in self._pending]
        if self._start is not None and not self._long_done:
            need.append(self._start - self.edge)
        if need:
            keep = min(keep, int(np.searchsorted(kk, min(need))))
        self._ctx = {n: v[keep:] for n, v in ctx.items()}
        return out

    def _close(self) -> None:
        """The open movement has ended: queue its judgement."""
        if self._start is None:
            return
        s, e = self._start, self._end
        self._start = None
        at = e + self.edge - 1
        prev, self._prev = self._prev, (s, e)
        if prev is not None and s - prev[1] <= self.merge and e - prev[0] <= self.short:
            # a slow push can pause mid-way (little acceleration while the hips move at
            # a steady speed): judged whole first, and in parts only if that finds nothing
            self._pending.append(_Job([(prev[0] - self.edge, e + self.edge)], prev[0], e,
                                      at, whole=True))
        if e - s <= self.short:
            self._pending.append(_Job([(s - self.edge, e + self.edge)], s, e, at))
        else:
            far = max(self.anchors)
            self._pending.append(_Job([(e - n, e + self.edge) for n in self.anchors],
                                      e - far, e, at, (e - 2 * far, e - far + self.edge),
                                      head=self.gait_edge))

    def _judge(self, ctx: dict[str, np.ndarray], job: _Job) -> list[Transition]:
        kk = ctx["k"]
        rises, judged = [], []
        for lo, hi in job.windows:
            i, j = int(np.searchsorted(kk, lo)), int(np.searchsorted(kk, hi))
            if j - i != hi - lo or not ctx["valid"][i:j].all():
                continue  # a gap in the window: no judgement
            rises.append(float(zero_velocity_weights(hi - lo, self.edge, job.head)
                               @ ctx["vert"][i:j]))
            judged.append((i, j))
        if not rises:
            return []
        rise = float(np.median(rises))
        if -DROP_M < rise < RISE_M or abs(rise) > MAX_LIFT_M:
            return []
        if job.rise_only and rise < 0:  # a drop at the start of a long movement: only
            lo, hi = job.windows[-1]    # with no gait in it (typing after a sit-down)
            i, j = int(np.searchsorted(kk, lo)), int(np.searchsorted(kk, hi))
            if int(ctx["step"][i:j].sum()) >= WALK_STEPS:
                return []
        mags = np.abs(rises)
        if len(rises) > 1 and (min(rises) * max(rises) <= 0 or mags.max() > AGREE * mags.min()):
            return []  # grows with the window: a drift through the walk, not one push
        if job.before is not None:  # the movement before it climbed or descended too:
            lo, hi = job.before     # stairs, not a sit/stand
            i, j = int(np.searchsorted(kk, lo)), int(np.searchsorted(kk, hi))
            if j - i != hi - lo:
                return []
            climb = float(zero_velocity_weights(hi - lo, self.edge) @ ctx["vert"][i:j])
            if climb * rise > 0 and abs(climb) > max(STAIRS_SHARE * abs(rise), STAIRS_MIN_M):
                return []
        mi, mj = int(np.searchsorted(kk, job.move_lo)), int(np.searchsorted(kk, job.move_hi))
        if mj <= mi:
            return []
        tracked = bool(ctx["tracked"][mi:mj].any())  # a gyro follows the trunk's own lean
        walked = bool(ctx["walk"][mi:mj].any())
        p = mi + int(np.argmax(np.nan_to_num(ctx["lean"][mi:mj], nan=-1.0)))
        lean = float(ctx["lean"][p])
        # the lean comes with the transition and any walk lies on its standing side: a
        # walk after the deepest lean cannot end in a sit-down, one before the first lean
        # cannot precede a stand-up (a stand-up into a walk read as a drop through it).
        # The end of a long movement is a walk that may end sitting: its own walk may
        # lean deeper than the sit-down, so only the walk before matters there.
        trunk_lean = np.nan_to_num(ctx["trunk"][mi:mj], nan=-1.0)
        if rise < 0:
            q = mi + int(np.argmax(trunk_lean))
            walk = 0 if job.head is not None else int(ctx["walk"][q + 1:mj].sum())
        else:
            q = mi + int(np.argmax(trunk_lean >= TRANSITION_LEAN_DEG))
            walk = int(ctx["walk"][mi:q].sum())
        if walk >= WALK_SIDE_S * TICK_HZ:
            return []
        # without a gyro, the vertical tilts with every step's thrust, so a walk that
        # stops (or goes down a few stairs) reads as a drop, its deepest force tilt in
        # the gait: steps after it rule out a sit-down (a seat's landing jolts give a
        # few peaks too, but within a second or so)
        if rise < 0 and not tracked:
            after = np.flatnonzero(ctx["step"][p + 1:mj])
            if len(after) >= UNTRACKED_STEPS and (
                    after[-1] - after[0] >= UNTRACKED_STEPS_S * TICK_HZ):
                return []
        trunk = float(np.nanmax(ctx["trunk"][mi:mj], initial=-1.0))
        if rise < 0:  # the hips went down while the feet stepped: stairs, not a seat
            i, j = judged[int(np.argmin(np.abs(np.array(rises) - rise)))]
            span = SHALLOW_DROP_SPAN if tracked and trunk < SHALLOW_DROP_LEAN_DEG \
                else STEPPED_DROP_SPAN
            if self._steps_in_drop(ctx["vert"][i:j], ctx["step"][i:j], job.head,
                                   span) >= STEPPED_DROP_STEPS:
                return []
        if rise > 0 and trunk < STEPLESS_RISE_LEAN_DEG and not (
                walked or ctx["step"][mi:mj].any()):
            return []
        top = SIT_TO_STAND_MAX_LEAN_DEG if rise > 0 else TRANSITION_MAX_LEAN_DEG
        # without a gyro, a deeper force tilt may be the thrust: then only a stand-up
        # judged alone that ends as upright as it began (a seated reach out and back,
        # judged as one merged movement, tips the force as far and reads a rise)
        thrust = rise > 0 and trunk > top and not job.whole and not tracked
        if thrust and rise < THRUST_RISE_M:
            return []
        # without a gyro a walk that stops tilts the force a few degrees too (each step's
        # thrust): out of a walk, a drop needs a stand-up's lean there
        floor = TRANSITION_LEAN_DEG if rise > 0 or (walked and not tracked) \
            else SIT_DOWN_LEAN_DEG
        leaned = max(lean, trunk)
        if not (leaned >= floor and trunk <= top + (UNTRACKED_THRUST_DEG if thrust else 0.0)):
            return []
        shallow = leaned < TRANSITION_LEAN_DEG
        lean = trunk
        lo, hi = job.windows[0]
        i, j = int(np.searchsorted(kk, lo)), int(np.searchsorted(kk, hi))
        before = unit(ctx["fast"][i:i + self.edge].mean(0))
        after = unit(ctx["fast"][j - self.edge:j].mean(0))
        turn = float(np.degrees(np.arccos(np.clip(before @ after, -1.0, 1.0))))
        # a stand-up may end in a walk's own lean only if a walk follows it
        into_walk = job.rise_only and walked
        # with a gyro, a bend does not leak into the vertical: a clear drop may end in a
        # deeper slouch (the end of a climb or a standing reach turns as far, dropping less)
        sit_turn = sit_turn_bound(-rise, tracked, job.head is None and not job.whole)
        if turn > (sit_turn if rise < 0 else MAX_TURN_DEG if thrust else
                   MAX_WALK_TURN_DEG if into_walk else MAX_TURN_DEG) and not (
                rise > 0 and not thrust and turn <= MAX_BEND_TURN_DEG
                and _upright_then_bent(ctx["fast"][mi:j], before, after)):
            return []
        bend = BEND_LEVER_M * (1.0 - np.cos(np.radians(turn)))
        if abs(rise) - bend < (RISE_M if rise > 0 else DROP_M):
            return []
        # a swing this shallow shows no direction: no forward evidence (one such
        # sit-down delayed a learned sign by half an hour)
        direction = np.zeros(3) if shallow else unit(ctx["fast"][p]) - unit(ctx["grav"][i])
        return [Transition(job.at / TICK_HZ, "sit_to_stand" if rise > 0 else "stand_to_sit",
                           rise, lean, direction)]

    def _steps_in_drop(self, vert: np.ndarray, step: np.ndarray, head: int | None,
                       span: tuple[float, float]) -> int:
        """Step peaks while the height went from ``span[0]`` to ``span[1]`` of its drop
        (the window's `zero_velocity_path`). A sit-down lowers the hips with the feet
        planted (at most the seat's landing jolt or a last shuffle in that span); down a
        few stairs, each step takes the hips lower."""
        head = self.edge if head is None else head
        path = zero_velocity_path(vert, self.edge, head)
        start = path[:head].mean()
        share = (path - start) / (path[len(path) - self.edge:].mean() - start)
        lo = int(np.argmax(share >= span[0]))
        hi = int(np.argmax(share >= span[1]))
        return int(step[lo:hi + 1].sum())


def sit_turn_bound(drop_m: float, tracked: bool, alone: bool) -> float:
    """How far (°) a sit-down may end from its starting tilt: straight into a slouch;
    with a gyro (a bend does not leak into the vertical) and a clear drop, a deeper one;
    deeper still for one movement judged in its own window. A standing reach out and back
    is judged as one merged movement, and a walk that stops in a bend over a standing desk
    as a walk's end: those turn as far and read as large a drop. (The parts of a merged
    movement that found nothing are then judged alone, with the deeper bound.)"""
    if not tracked or drop_m < SLOUCH_SIT_DROP_M:
        return MAX_SIT_TURN_DEG
    return LONE_SLOUCH_SIT_TURN_DEG if alone else MAX_SLOUCH_SIT_TURN_DEG


def _upright_then_bent(fast: np.ndarray, before: np.ndarray, after: np.ndarray) -> bool:
    """A stand-up straight into a bend: the trunk leaned forward by
    ``TRANSITION_LEAN_DEG`` or more, came back by ``RETURN_DEG`` to within
    ``MAX_TURN_DEG`` of its starting tilt (the rise is over, the wearer upright), and only
    then bent, the way it had leaned (forward, over the desk: within 60°). A seated
    slouch turns the trunk without that return, and a seated reach that ends more
    upright than it began (after a sit-down's lean) turns it the other way."""
    norm = np.linalg.norm(fast, axis=1)
    cos = np.clip((fast @ before) / np.where(norm > 0, norm, 1.0), -1.0, 1.0)
    ang = np.degrees(np.arccos(cos))
    top = np.maximum.accumulate(ang)
    back = (ang <= MAX_TURN_DEG) & (top >= TRANSITION_LEAN_DEG) & (top - ang >= RETURN_DEG)
    if not back.any():
        return False
    first = int(np.argmax(back))
    lean = unit(fast[int(np.argmax(ang[:first]))]) - before
    bend = after - before
    return float(lean @ bend) > 0.5 * float(np.linalg.norm(lean) * np.linalg.norm(bend))


@dataclass
class _Job:
    windows: list[tuple[int, int]]  # tick ranges [lo, hi) whose rises are combined
    move_lo: int                    # where the forward lean is looked for
    move_hi: int
    at: int                         # the tick on which it is judged (all ticks here)
    before: tuple[int, int] | None = None  # the same length of movement before it
    whole: bool = False             # two movements judged as one
    head: int | None = None         # a longer head edge (it lies in a walk)
    rise_only: bool = False         # the start of a long movement: a stand-up into a walk
