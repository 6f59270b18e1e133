"""Time on a device without a real-time clock.

A Raspberry Pi boots with whatever time fake-hwclock saved at the last shutdown (or
1970), and NTP fixes it some seconds to minutes later, by a step. So:

* durations and every pipeline time use a monotonic clock (never steps);
* a record's UTC stamp is ``monotonic + offset``, where ``offset`` (wall − monotonic) is
  trusted only once the system says its clock is synchronised;
* a message stamped before that is marked ``"synced": false``; when sync arrives, the
  spool re-stamps its still-unsent messages from their monotonic time (see
  ``Spool.restamp``), so only what had already left the device stays flagged.

Sync is detected, in order of preference, by ``timedatectl show -p NTPSynchronized``
(systemd-timesyncd / chrony through timedated), by the kernel's ``adjtimex`` state
(TIME_ERROR means unsynchronised), and, where neither answers, by plausibility: a year
of 2024 or later.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import shutil
import subprocess
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PLAUSIBLE_YEAR = 2024
_TIME_ERROR = 5  # adjtimex return value: clock not synchronised


def timedatectl_synchronized() -> bool | None:
    """NTPSynchronized from systemd-timedated; None when timedatectl cannot answer."""
    exe = shutil.which("timedatectl")
    if not exe:
        return None
    try:
        res = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = res.stdout.strip()
    if res.returncode != 0 or value not in ("yes", "no"):
        return None
    return value == "yes"


def adjtimex_synchronized() -> bool | None:
    """The kernel's NTP discipline state (read-only adjtimex); None if unavailable."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def plausible(now: float | None = None) -> bool:
    """A last resort: a clock that reads 2024 or later has been set by something."""
    return time.gmtime(time.time() if now is None else now).tm_year >= PLAUSIBLE_YEAR


def detect_sync() -> tuple[bool, str]:
    """Whether the wall clock can be trusted, and which probe said so."""
    for name, probe in (("timedatectl", timedatectl_synchronized),
                        ("adjtimex", adjtimex_synchronized)):
        answer = probe()
        if answer is not None:
            # the kernel may call an unsynced clock fine if it is plausible and no daemon
            # runs (containers); a year-1970 clock is never trusted
            return answer and plausible(), name
    return plausible(), "plausibility"


class WallClock:
    """Maps monotonic seconds (the pipeline's time base) to UTC milliseconds.

    ``mono`` is the service's monotonic clock; ``wall`` the system clock; ``probe``
    returns (synced, source). Until synced, the probe is asked every ``recheck_s``; after
    that the offset is refreshed at the same pace so NTP slews are followed.
    """

    def __init__(self, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 probe: Callable[[], tuple[bool, str]] = detect_sync,
                 recheck_s: float = 30.0):
        self.mono, self.wall, self.probe, self.recheck_s = mono, wall, probe, recheck_s
        self.synced = False
        self.source = ""
        self.offset = wall() - mono()
        self._next_check = float("-inf")
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the clock state when due; True exactly when sync has just arrived."""
        now = self.mono()
        if now < self._next_check:
            return False
        self._next_check = now + self.recheck_s
        self.offset = self.wall() - self.mono()
        if self.synced:
            return False
        self.synced, self.source = self.probe()
        if self.synced:
            log.info("wall clock synchronised (%s); stamps are now UTC", self.source)
            return True
        return False

    def to_ms(self, t: float) -> int:
        return round((t + self.offset) * 1000.0)

    def now_ms(self) -> int:
        return self.to_ms(self.mono())


class VirtualClock:
    """A monotonic clock the loop advances itself: accelerated emulated time."""

    def __init__(self, start: float = 0.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


class FixedWallClock:
    """UTC for virtual time: ``t`` seconds after ``t0`` is ``anchor_ms`` + elapsed.

    Always synced (the mapping is defined, not measured). The emulated run is anchored
    so that it ends at the moment it was started when its duration is known (a
    simulated day lands in the past, where dashboards look), else starts now.
    """

    synced = True
    source = "virtual"

    def __init__(self, mono: Callable[[], float], anchor_ms: int, t0: float = 0.0):
        self.mono, self.anchor_ms, self.t0 = mono, anchor_ms, t0

    def refresh(self) -> bool:
        return False

    def to_ms(self, t: float) -> int:
        return self.anchor_ms + round((t - self.t0) * 1000.0)

    def now_ms(self) -> int:
        return self.to_ms(self.mono())
