"""A vibration motor on a GPIO pin: the wearer feels an alert without looking at anything.

The motor hangs off a transistor on ``haptics.pin`` (BCM numbering) and is driven through
gpiozero, so any of its pin backends works (lgpio on bookworm; the mock factory in tests,
or ``GPIOZERO_PIN_FACTORY=mock`` to try it on a PC). Patterns are told apart by feel:

* slouch: three short taps (0.15 s on, 0.15 s off) — "sit up";
* sitting (first alert and reminders): two long buzzes (0.6 s on, 0.4 s off) — "get up";
* feedback noted (a button press or a feedback command): one short tap (0.1 s).

A pattern plays in gpiozero's background thread, so the live loop never waits for it; a
newer alert replaces one still playing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pattern:
    on_s: float
    off_s: float
    repeats: int

    @property
    def duration_s(self) -> float:
        return self.repeats * (self.on_s + self.off_s)


SLOUCH = Pattern(0.15, 0.15, 3)
SITTING = Pattern(0.6, 0.4, 2)
NOTED = Pattern(0.1, 0.1, 1)
PATTERNS: dict[str, Pattern] = {
    "slouch_start": SLOUCH,
    "sitting_alert": SITTING,
    "sitting_reminder": SITTING,
    "feedback": NOTED,
}


class Haptics:
    """Plays the pattern for an event type on a gpiozero output device."""

    def __init__(self, pin: int, *, pin_factory: Any = None):
        from gpiozero import DigitalOutputDevice

        self.device = DigitalOutputDevice(pin, active_high=True, initial_value=False,
                                          pin_factory=pin_factory)
        self.played = 0

    def alert(self, event_type: str) -> bool:
        """Buzz if ``event_type`` has a pattern; True if one started."""
        pattern = PATTERNS.get(event_type)
        if pattern is None:
            return False
        self.device.blink(on_time=pattern.on_s, off_time=pattern.off_s, n=pattern.repeats,
                          background=True)
        self.played += 1
        return True

    def close(self) -> None:
        self.device.off()
        self.device.close()


def open_haptics(enabled: bool, pin: int, *, pin_factory: Any = None) -> Haptics | None:
    """The configured motor, or None (disabled, or no GPIO here: logged, not fatal)."""
    if not enabled:
        return None
    try:
        return Haptics(pin, pin_factory=pin_factory)
    except Exception as exc:  # gpiozero raises many kinds when no GPIO backend exists
        log.error("haptics disabled: cannot drive GPIO%d (%s); install lgpio (python3-lgpio) "
                  "or set haptics.enabled = false", pin, exc)
        return None
