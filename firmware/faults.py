"""Fault injection for the emulated bus: what a sensor on a cable to the upper back does.

Times are seconds since the bus was created (on its clock, so a virtual clock works).
A plan can be written as text for the command line::

    eio@5x20          from t=5 s, the next 20 transactions fail with EIO
    timeout@8x3       from t=8 s, 3 transactions fail with ETIMEDOUT (bus stuck)
    nack@12+0.5       from t=12 s for 0.5 s the chip does not acknowledge (EREMOTEIO)
    disconnect@20+3   unplugged at t=20 s for 3 s: NACKs, then the chip comes back reset
    overflow@30       the FIFO overflows at t=30 s (as if the host had stalled)
    brownout@40       a supply dip resets the chip at t=40 s, without any bus error

Several faults are separated by commas; ``:0x69`` after a fault limits it to one address.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinesense.firmware.emulator import EmulatedChip

KINDS = ("eio", "timeout", "nack", "disconnect", "overflow", "brownout")
_SPEC = re.compile(r"^(?P<kind>[a-z]+)@(?P<at>\d+(?:\.\d*)?)"
                   r"(?:x(?P<count>\d+)|\+(?P<dur>\d+(?:\.\d*)?))?(?::(?P<addr>0x[0-9a-fA-F]+))?$")


class FaultSpecError(ValueError):
    """A fault plan string that does not parse; the message shows the accepted forms."""


def bus_error(code: int) -> OSError:
    """An OSError as smbus2 raises it from the ioctl (errno + strerror)."""
    return OSError(code, os.strerror(code))


@dataclass
class Fault:
    kind: str
    at: float
    duration: float = 0.0
    count: int = 0
    address: int | None = None
    state: str = field(default="pending", compare=False)   # pending → active → done
    left: int = field(default=0, compare=False)

    def applies_to(self, address: int) -> bool:
        return self.address is None or self.address == address


class FaultPlan:
    """An ordered list of faults, consulted by the bus before every transaction."""

    def __init__(self, faults: list[Fault] | None = None, *, nack_errno: int = errno.EREMOTEIO):
        self.faults = sorted(faults or [], key=lambda f: f.at)
        self.nack_errno = nack_errno   # i2c-bcm2835 (Raspberry Pi) reports EREMOTEIO
        self.injected = 0

    # -- builders -------------------------------------------------------------------------
    def add(self, kind: str, at: float, *, duration: float = 0.0, count: int = 0,
            address: int | None = None) -> FaultPlan:
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault {kind!r}; use one of {', '.join(KINDS)}")
        self.faults.append(Fault(kind, at, duration, count, address))
        self.faults.sort(key=lambda f: f.at)
        return self

    @classmethod
    def parse(cls, text: str, *, nack_errno: int = errno.EREMOTEIO) -> FaultPlan:
        """The text form above; ``nack_errno=errno.ENXIO`` mimics adapters other than
        the Pi's."""
        plan = cls(nack_errno=nack_errno)
        for part in filter(None, (p.strip() for p in text.split(","))):
            m = _SPEC.match(part)
            if not m or m["kind"] not in KINDS:
                raise FaultSpecError(
                    f"bad fault {part!r}; write e.g. eio@5x20, timeout@8x3, nack@12+0.5, "
                    "disconnect@20+3, overflow@30, brownout@40 (optionally :0x68)")
            kind = m["kind"]
            if kind in ("eio", "timeout") and not m["count"]:
                raise FaultSpecError(f"{part!r}: give the number of failures, e.g. {kind}@5x20")
            if kind in ("nack", "disconnect") and not m["dur"]:
                raise FaultSpecError(f"{part!r}: give the duration, e.g. {kind}@20+3")
            plan.add(kind, float(m["at"]), duration=float(m["dur"] or 0),
                     count=int(m["count"] or 0),
                     address=int(m["addr"], 16) if m["addr"] else None)
        return plan

    # -- runtime --------------------------------------------------------------------------
    def check(self, elapsed: float, address: int, chip: EmulatedChip | None,
              t_origin: float) -> OSError | None:
        """Advance fault states to ``elapsed`` and return the error this transaction gets."""
        error: OSError | None = None
        for f in self.faults:
            if f.state == "done" or f.at > elapsed or not f.applies_to(address):
                continue
            if f.kind in ("overflow", "brownout"):
                if chip is not None:
                    chip.advance(t_origin + f.at)
                    if f.kind == "overflow":
                        chip.force_overflow()
                    else:
                        chip.power_on(t_origin + f.at)
                f.state = "done"
            elif f.kind in ("eio", "timeout"):
                if f.state == "pending":
                    f.state, f.left = "active", f.count
                if f.left > 0 and error is None:
                    f.left -= 1
                    error = bus_error(errno.EIO if f.kind == "eio" else errno.ETIMEDOUT)
                if f.left == 0:
                    f.state = "done"
            else:  # nack / disconnect: a time window
                end = f.at + f.duration
                if f.state == "pending":
                    f.state = "active"
                    if f.kind == "disconnect" and chip is not None:
                        chip.advance(t_origin + f.at)
                        chip.power_off()
                if elapsed >= end:
                    f.state = "done"
                    if f.kind == "disconnect" and chip is not None:
                        chip.power_on(t_origin + end)
                elif error is None:
                    error = bus_error(self.nack_errno)
        if error is not None:
            self.injected += 1
        return error
