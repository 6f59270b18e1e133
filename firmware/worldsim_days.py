"""Day types of the independent simulator: programs of an `Actor`'s activities.

Each program fills the day up to at least ``end`` seconds (the simulator cuts it there).
Closed sitting bouts are kept at least 3 min away from the 30-min limit and short
stand-ups under 45 s, breaks over 75 s, so that the truth is not a coin toss at the
edges of the definitions; everything else is drawn wide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spinesense.firmware.worldsim_actor import Actor

MIN = 60.0
GAITS = ("level", "level", "level", "talking", "carrying", "stairs_up", "stairs_down",
         "shuffle")


@dataclass(frozen=True)
class DayType:
    description: str
    minutes: tuple[float, float]  # range of the day's length
    program: Callable[[Actor, float], None]


def _logu(a: Actor, lo: float, hi: float) -> float:
    return float(np.exp(a.u(np.log(lo), np.log(hi))))


def desk(a: Actor, length: float, *, creep_share: float = 0.0, recline_share: float = 0.08,
         short_breaks: int = 0) -> None:
    """Sitting work for ``length`` s: typing, upright, slouches (1-s drops to 40-s sags,
    held 8 s to 8 min), creeping slouches, reaches, reclines, side leans, chair swivels,
    leans that stay under the release, and ``short_breaks`` stand-ups under 45 s."""
    end = a.now + length
    breaks_at = sorted(a.now + a.u(0.15, 0.85) * length for _ in range(short_breaks))
    kinds = ["typing", "sit", "slouch", "creep", "reach", "recline", "side", "marginal",
             "swivel"]
    weights = np.array([0.26, 0.14, 0.2, creep_share, 0.1, recline_share, 0.07, 0.06, 0.04])
    while end - a.now > 1e-6:
        left = end - a.now
        if breaks_at and a.now >= breaks_at[0] and left > 90.0:
            breaks_at.pop(0)
            a.sit_to_stand()
            if a.rng.random() < 0.5:
                a.stand(a.u(3.0, 30.0))
            else:
                a.walk(steps=int(a.rng.integers(3, 11)))
                a.stand(a.u(2.0, 10.0))
            a.stand_to_sit()
            continue
        kind = str(a.rng.choice(kinds, p=weights / weights.sum()))
        if left < 25.0:
            a.sit(left)
        elif kind == "typing":
            a.typing(min(left, a.u(20.0, 400.0)))
        elif kind == "sit":
            a.sit(min(left, a.u(10.0, 200.0)))
        elif kind == "slouch" and left > 60.0:
            a.slouch(min(left - 40.0, _logu(a, 8.0, 480.0)))
            a.sit(a.u(5.0, 30.0))
        elif kind == "creep" and left > 400.0:
            a.creep(a.u(180.0, min(900.0, left - 200.0)))
            a.sit(a.u(10.0, 40.0))
        elif kind == "reach":
            a.reach()
            a.sit(a.u(3.0, 15.0))
        elif kind == "recline" and left > 30.0:
            a.recline(min(left - 20.0, _logu(a, 8.0, 300.0)))
        elif kind == "side":
            a.side_lean(min(left, a.u(5.0, 180.0)))
        elif kind == "marginal":
            a.marginal(min(left, a.u(10.0, 120.0)))
        elif kind == "swivel":
            a.swivel()
            a.sit(min(left, a.u(5.0, 30.0)))
        else:
            a.sit(min(left, 20.0))


def gait_break(a: Actor, length: float | None = None) -> None:
    """At least 75 s up: walks of all kinds (short bouts, stairs, carrying) and standing."""
    length = a.u(75.0, 400.0) if length is None else length
    end = a.now + length
    a.sit_to_stand()
    while a.now < end - 1e-6:
        kind = str(a.rng.choice(GAITS))
        if a.rng.random() < 0.35:
            a.walk(steps=int(a.rng.integers(3, 11)), kind=kind)
        else:
            a.walk(min(max(end - a.now, 8.0), a.u(8.0, 120.0)), kind=kind)
        if a.now < end:
            a.stand(min(max(end - a.now, 3.0), a.u(3.0, 40.0)))
    a.stand_to_sit()


def bout_length(a: Actor, long: bool) -> float:
    """A sitting bout clearly under (8–26 min) or over (33–50 min) the 30-min limit."""
    return a.u(33.0, 50.0) * MIN if long else a.u(8.0, 26.0) * MIN


def office(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    while a.now < end:
        desk(a, bout_length(a, a.rng.random() < 0.3), short_breaks=int(a.rng.integers(0, 3)))
        gait_break(a)


def long_sit(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    desk(a, bout_length(a, True), short_breaks=int(a.rng.integers(0, 3)))
    while a.now < end:
        gait_break(a)
        desk(a, bout_length(a, a.rng.random() < 0.5), short_breaks=1)


def creep(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    while a.now < end:
        desk(a, bout_length(a, a.rng.random() < 0.6), creep_share=0.3,
             short_breaks=int(a.rng.integers(0, 2)))
        gait_break(a)


def recline_start(a: Actor, end: float) -> None:
    """Reclining first, then upright (the calibration), then no stand-up for an hour."""
    a.recline(a.u(30.0, 240.0))
    a.sit(a.u(5.0, 20.0))
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    desk(a, max(end - a.now, 61 * MIN) + 1.0, recline_share=0.25)
    while a.now < end:
        gait_break(a)
        desk(a, bout_length(a, False))


def lounge(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    while a.now < end:
        desk(a, a.u(4.0, 12.0) * MIN, recline_share=0.25)
        a.lie_down()
        a.lying(a.u(2.0, 12.0) * MIN)
        a.sit_up()
        desk(a, a.u(4.0, 12.0) * MIN, recline_share=0.25)
        gait_break(a)


def walker(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    desk(a, a.u(3.0, 8.0) * MIN)
    while a.now < end:
        gait_break(a, a.u(4.0, 15.0) * MIN)
        desk(a, bout_length(a, False) * a.u(0.3, 1.0))


def standing_desk(a: Actor, end: float) -> None:
    a.still_upright(a.u(10.0, 20.0), calibration=True)
    desk(a, a.u(3.0, 10.0) * MIN)
    while a.now < end:
        a.sit_to_stand()
        stop = a.now + a.u(6.0, 25.0) * MIN
        while a.now < stop:
            kind = a.rng.random()
            if kind < 0.3:
                a.slouch(_logu(a, 8.0, 180.0))
            elif kind < 0.5:
                a.walk(steps=int(a.rng.integers(3, 11)), kind="shuffle")
            elif kind < 0.6:
                a.reach()
            else:
                a.stand(a.u(20.0, 180.0))
        a.stand_to_sit()
        desk(a, bout_length(a, False) * a.u(0.4, 1.0))


DAY_TYPES: dict[str, DayType] = {
    "office": DayType("desk bouts under and over 30 min, every kind of slouch, breaks of "
                      "mixed gait", (20.0, 90.0), office),
    "long_sit": DayType("a 33–50 min bout first (an alert), then breaks and more sitting",
                        (40.0, 90.0), long_sit),
    "creep": DayType("slow creeping slouches over minutes in long bouts", (30.0, 90.0), creep),
    "recline_start": DayType("reclines first, then no stand-up for over an hour",
                             (62.0, 90.0), recline_start),
    "lounge": DayType("sitting, reclines, lying on the back or a side", (25.0, 90.0), lounge),
    "walker": DayType("lots of gait: slow, short bouts, stairs, carrying, talking, "
                      "shuffling, turns", (20.0, 60.0), walker),
    "standing_desk": DayType("standing work with slouches over the desk, shuffles",
                             (20.0, 70.0), standing_desk),
}
