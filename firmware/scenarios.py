"""Named scenarios: programs of activities on a `Timeline`.

Each program fills the timeline up to (at least) the requested duration; the simulator
cuts it there. Short scenarios are a scripted part followed by a repeated body, so a
longer ``duration_s`` gives more of the same and a shorter one a prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spinesense.firmware.timeline import Timeline

MIN = 60.0


@dataclass(frozen=True)
class Scenario:
    description: str
    default_s: float
    program: Callable[[Timeline, float], None]


def _loguniform(tl: Timeline, lo: float, hi: float) -> float:
    return float(np.exp(tl.rng.uniform(np.log(lo), np.log(hi))))


def short_break(tl: Timeline) -> None:
    """Up and back within ~45 s (fetch a paper, stretch): must NOT end a sitting bout."""
    tl.sit_to_stand()
    if tl.rng.random() < 0.5:
        tl.stand(tl.u(8.0, 35.0))
    else:
        tl.stand(tl.u(2.0, 5.0))
        tl.walk(tl.u(10.0, 20.0))
        tl.stand(tl.u(2.0, 5.0))
    tl.stand_to_sit()


def real_break(tl: Timeline, kind: str | None = None) -> None:
    """At least ~70 s of standing and/or walking: ends a sitting bout."""
    kind = kind or str(tl.rng.choice(["stretch", "coffee", "walk", "walk", "standing_desk"]))
    tl.sit_to_stand()
    if kind == "standing_desk":
        standing_block(tl, tl.u(8.0, 20.0) * MIN)
    elif kind == "stretch":
        tl.stand(tl.u(70.0, 180.0))
    elif kind == "coffee":
        tl.walk(tl.u(30.0, 90.0))
        tl.stand(tl.u(60.0, 240.0))
        tl.walk(tl.u(30.0, 90.0))
    else:
        tl.walk(tl.u(2 * MIN, 10 * MIN))
    tl.stand_to_sit()


def sitting_block(tl: Timeline, length: float, *, short_breaks: int = 0) -> None:
    """Desk work for ``length`` seconds: typing, upright sitting, slouches of many lengths,
    reaches, reclines, armrest leans, and ``short_breaks`` brief stand-ups."""
    end = tl.now + length
    break_at = sorted(tl.now + tl.u(0.15, 0.85) * length for _ in range(short_breaks))
    kinds = ["typing", "sit", "slouch", "reach", "recline", "armrest"]
    weights = np.array([0.32, 0.2, 0.24, 0.12, 0.08, 0.04])
    while end - tl.now > 1e-6:
        remaining = end - tl.now
        if break_at and tl.now >= break_at[0] and remaining > 90.0:
            break_at.pop(0)
            short_break(tl)
            continue
        kind = str(tl.rng.choice(kinds, p=weights / weights.sum()))
        if remaining < 20.0:
            tl.sit(remaining)
        elif kind == "typing":
            tl.typing(min(remaining, tl.u(60.0, 600.0)))
        elif kind == "sit":
            tl.sit(min(remaining, tl.u(20.0, 240.0)))
        elif kind == "slouch":
            ramp = tl.u(3.0, 15.0)
            tl.slouch(max(1.0, min(remaining - ramp - 5.0, _loguniform(tl, 3.0, 900.0))),
                      ramp=ramp)
            tl.sit(min(end - tl.now, tl.u(10.0, 60.0)))  # sit back up
        elif kind == "reach":
            tl.reach()
            tl.sit(min(end - tl.now, tl.u(8.0, 40.0)))
        elif kind == "recline":
            tl.recline(min(remaining - 10.0, tl.u(10.0, 300.0)))
        else:
            tl.armrest_lean(min(remaining, tl.u(30.0, 180.0)))


def standing_block(tl: Timeline, length: float) -> None:
    """Work at a standing desk: typing, standing, slouching over the desk, reaches and
    a few steps. Slouches here happen while standing (still eligible for alerts)."""
    end = tl.now + length
    while end - tl.now > 1e-6:
        remaining = end - tl.now
        kind = str(tl.rng.choice(["typing", "stand", "slouch", "reach", "walk"],
                                 p=[0.35, 0.2, 0.25, 0.1, 0.1]))
        if remaining < 25.0:
            tl.stand(remaining)
        elif kind == "typing":
            tl.typing(min(remaining, tl.u(30.0, 300.0)))
        elif kind == "stand":
            tl.stand(min(remaining, tl.u(15.0, 120.0)))
        elif kind == "slouch":
            ramp = tl.u(3.0, 10.0)
            tl.slouch(max(1.0, min(remaining - ramp - 10.0, _loguniform(tl, 4.0, 240.0))),
                      depth=tl.u(18.0, 32.0), ramp=ramp)
            tl.stand(min(end - tl.now, tl.u(10.0, 40.0)))
        elif kind == "reach":
            tl.reach()
            tl.stand(min(end - tl.now, tl.u(8.0, 30.0)))
        else:
            tl.walk(min(remaining, tl.u(10.0, 40.0)))


def _bout_length(tl: Timeline, long: bool) -> float:
    """Sitting bouts kept at least 3 min away from the 30-min limit, so that a slightly
    early or late detector cannot be "right" by accident."""
    return tl.u(33.0, 60.0) * MIN if long else tl.u(8.0, 27.0) * MIN


def lunch(tl: Timeline) -> None:
    """Walk to lunch, queue, eat sitting (a bout of its own), walk back."""
    tl.sit_to_stand()
    tl.walk(tl.u(8.0, 15.0) * MIN)
    tl.stand(tl.u(60.0, 180.0))  # queue
    tl.walk(tl.u(30.0, 60.0))
    tl.stand_to_sit()
    sitting_block(tl, tl.u(15.0, 25.0) * MIN)
    tl.sit_to_stand()
    tl.walk(tl.u(8.0, 15.0) * MIN)
    tl.stand_to_sit()


def workday(tl: Timeline, target: float) -> None:
    tl.calibration()
    lunch_done, nap_done = False, tl.rng.random() < 0.5
    n = 0
    while tl.now < target:
        bout_start = tl.now
        length = _bout_length(tl, long=n % 3 != 1)
        if not nap_done and tl.now > 5.5 * 3600:  # a short lie-down counts as sedentary
            nap_done = True
            tl.lie_down(side=tl.rng.random() < 0.5)
            tl.lying(tl.u(3.0, 6.0) * MIN)
            tl.sit_up()
        sitting_block(tl, length - (tl.now - bout_start),
                      short_breaks=int(tl.rng.integers(0, 3)))
        if not lunch_done and tl.now > 3.6 * 3600:
            lunch_done = True
            lunch(tl)
        else:
            real_break(tl)
        n += 1


def _repeat(body: Callable[[Timeline], None]) -> Callable[[Timeline, float], None]:
    def program(tl: Timeline, target: float) -> None:
        tl.calibration()
        while tl.now < target:
            body(tl)
    return program


def _calibration_body(tl: Timeline) -> None:
    tl.sit(20.0)
    tl.slouch(30.0, depth=25.0, ramp=4.0)
    tl.sit(20.0)
    tl.recline(20.0, depth=-15.0)
    tl.sit(10.0)
    tl.sit_to_stand()
    tl.stand(20.0)
    tl.walk(60.0)
    tl.stand(10.0)
    tl.stand_to_sit()
    tl.sit(20.0)


def _slouch_body(tl: Timeline) -> None:
    (tl.typing if tl.rng.random() < 0.5 else tl.sit)(tl.u(20.0, 45.0))
    tl.slouch(tl.u(8.0, 90.0))


def _marginal_body(tl: Timeline) -> None:
    (tl.typing if tl.rng.random() < 0.5 else tl.sit)(tl.u(15.0, 40.0))
    tl.slouch(tl.u(20.0, 120.0), depth=tl.u(11.0, 19.0), ramp=tl.u(3.0, 10.0))


def _reach_body(tl: Timeline) -> None:
    (tl.typing if tl.rng.random() < 0.5 else tl.sit)(tl.u(10.0, 30.0))
    tl.reach()


def _recline_body(tl: Timeline) -> None:
    tl.sit(tl.u(15.0, 40.0))
    tl.recline(tl.u(10.0, 120.0))


def _walking(tl: Timeline, target: float) -> None:
    tl.calibration()
    tl.sit(10.0)
    tl.sit_to_stand()
    tl.stand(20.0)
    while tl.now < target:
        tl.walk(tl.u(90.0, 240.0))
        tl.stand(tl.u(15.0, 45.0))


def _standing_desk(tl: Timeline, target: float) -> None:
    tl.calibration()
    tl.sit(10.0)
    tl.sit_to_stand()
    while tl.now < target:
        standing_block(tl, 5 * MIN)


def _sitting_long(tl: Timeline, target: float) -> None:
    tl.calibration()
    sitting_block(tl, 41.5 * MIN - tl.now, short_breaks=1)
    real_break(tl, "walk")
    while tl.now < target:
        sitting_block(tl, 5 * MIN)


def _mixed(tl: Timeline, target: float) -> None:
    tl.calibration()
    sitting_block(tl, 34 * MIN - tl.now, short_breaks=1)
    tl.sit_to_stand()
    tl.walk(4 * MIN)
    tl.stand(90.0)
    tl.stand_to_sit()
    sitting_block(tl, 8 * MIN)
    tl.lie_down()
    tl.lying(2 * MIN)
    tl.lie_down(side=True)  # roll onto a side
    tl.lying(2 * MIN)
    tl.sit_up()
    sitting_block(tl, 3 * MIN)
    tl.sit_to_stand()
    tl.stand(2 * MIN)
    tl.walk(3 * MIN)
    tl.stand_to_sit()
    while tl.now < target:
        sitting_block(tl, 10 * MIN, short_breaks=1)


SCENARIOS: dict[str, Scenario] = {
    "workday": Scenario(
        "8-hour office day: calibration, desk bouts of 8–60 min (several over 30 min) with "
        "typing, slouches from seconds to 15 min, reaches, reclines, short stand-ups under "
        "60 s, breaks (walks, coffee, stretching, standing-desk spells), a lunch walk, "
        "maybe a short lie-down",
        8 * 3600.0, workday),
    "calibration": Scenario(
        "calibration (still upright, guided lean forward), then one of each: 25° slouch, "
        "−15° recline, stand up, stand, walk 60 s, sit down", 270.0,
        _repeat(_calibration_body)),
    "slouch_short": Scenario(
        "sitting with clear slouches (18–40°, held 8–90 s) between upright sitting and "
        "typing", 12 * MIN, _repeat(_slouch_body)),
    "marginal": Scenario(
        "leaning 11–19°, right around the threshold and release, for 20 s to 2 min: sway "
        "and breathing make flexion hover across them (hysteresis, chattering)",
        15 * MIN, _repeat(_marginal_body)),
    "reaches": Scenario(
        "sitting with deep (25–50°) reaches shorter than the 5 s delay: no slouch truth",
        6 * MIN, _repeat(_reach_body)),
    "recline": Scenario(
        "sitting, reclining back (−10 to −25°) for 10 s to 2 min: no slouch truth",
        10 * MIN, _repeat(_recline_body)),
    "walking": Scenario(
        "stand up, then walking bouts of 1.5–4 min (1.6–2 Hz steps, turns) with standing "
        "between", 12 * MIN, _walking),
    "standing_desk": Scenario(
        "calibration, then work at a standing desk: typing, slouching over the desk while "
        "standing (alerts expected), reaches, a few steps", 15 * MIN, _standing_desk),
    "sitting_long": Scenario(
        "a 41.5-min sitting bout with one short stand-up (<60 s), so an alert at 30 min "
        "and a reminder at 40, then a walking break and more sitting", 52 * MIN,
        _sitting_long),
    "mixed": Scenario(
        "one hour of everything: a 34-min bout, walking, standing, lying supine and on a "
        "side, reaches, reclines, slouches, short and real breaks", 3600.0, _mixed),
}
