"""Feedback from the wearer (DESIGN A4): a push button and the MQTT ``feedback`` command.

The wearer knows, at the moment of a buzz, whether it was right. Three kinds of feedback
say so, and each becomes a ``feedback`` event that is spooled and stored like every
other event (and later used by ``spinesense tune`` as labels):

* ``false_alarm``: "that buzz was wrong". It refers to the most recent buzz (a
  ``slouch_start``, ``sitting_alert`` or ``sitting_reminder``) at most
  ``feedback.false_alarm_window_s`` before it, whose time travels as ``alert_t``; with no
  such buzz, ``alert_t`` is left out;
* ``missed_slouch``: "I am slouching now and you did not notice";
* ``break``: "I am taking a break".

The button (gpiozero ``Button`` on ``feedback.pin``, wired to GND, internal pull-up):
a short press is ``false_alarm`` when a buzz came within the window, else ``break``; a
press held for ``feedback.long_press_s`` is ``missed_slouch``. gpiozero calls back from
its own threads, so a press is only queued there (with the time it began); the live loop
turns queued presses into events on its own thread, like commands.

All times here are pipeline seconds (the service's monotonic clock), the time base of
every record; ``record_to_message`` turns them into UTC milliseconds. It is also the time
base of the raw recording (``[recording] enabled``), so next to each ``raw-*.ssrec`` the
service keeps ``raw-*.feedback.jsonl``: the feedback events and the device's own alerts
and slouch episodes, one JSON object per line, which ``spinesense tune --feedback``
reads beside the exported recording.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spinesense.config import FeedbackConfig
from spinesense.edge.commands import CommandError

log = logging.getLogger(__name__)

ALERT_TYPES = ("slouch_start", "sitting_alert", "sitting_reminder")  # what buzzes
SIDECAR_SUFFIX = ".feedback.jsonl"
SIDECAR_TYPES = ("feedback", "slouch_end", *ALERT_TYPES)  # what tune needs beside a recording
BOUNCE_S = 0.02           # a mechanical button chatters for a few ms: one press, not many
FUTURE_SLACK_S = 60.0      # a command's t may run ahead of the device clock this much
MAX_AGE_S = 86_400.0       # and lie at most this far in the past


def sidecar_path(recording: str | Path) -> Path:
    """``day.csv.gz`` / ``day.csv`` / ``raw-….ssrec`` → ``day.feedback.jsonl`` beside it."""
    from spinesense.firmware.recording import beside_recording

    return beside_recording(recording, SIDECAR_SUFFIX)


class AlertMemory:
    """The recent alerts, so that a "that was wrong" can name the one it means."""

    def __init__(self, window_s: float, keep: int = 256):
        self.window_s = window_s
        self.alerts: collections.deque[float] = collections.deque(maxlen=keep)

    def observe(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            if rec["type"] in ALERT_TYPES:
                self.alerts.append(float(rec["t"]))

    def recent(self, t: float) -> float | None:
        """The latest alert in [t - window, t], or None."""
        inside = [a for a in self.alerts if t - self.window_s <= a <= t + 1e-9]
        return max(inside) if inside else None

    def record(self, kind: str, t: float) -> dict[str, Any]:
        """The ``feedback`` event for ``kind`` at pipeline time ``t``."""
        rec: dict[str, Any] = {"type": "feedback", "t": float(t), "kind": kind}
        if kind == "false_alarm":
            alert = self.recent(t)
            if alert is not None:
                rec["alert_t"] = alert
        return rec

    def short_press(self, t: float) -> dict[str, Any]:
        """A short press: "that buzz was wrong", or with no recent buzz, "a break"."""
        return self.record("false_alarm" if self.recent(t) is not None else "break", t)


class FeedbackButton:
    """A push button between ``pin`` and GND; presses are queued as ("short"|"long", t)."""

    def __init__(self, pin: int, long_press_s: float, clock: Callable[[], float], *,
                 pin_factory: Any = None):
        from gpiozero import Button

        self.clock = clock
        self.presses: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._down_t: float | None = None
        self._held = False
        self.button = Button(pin, pull_up=True, bounce_time=BOUNCE_S, hold_time=long_press_s,
                             pin_factory=pin_factory)
        self.button.when_pressed = self._on_press
        self.button.when_held = self._on_hold
        self.button.when_released = self._on_release

    def _on_press(self) -> None:
        self._down_t, self._held = self.clock(), False

    def _on_hold(self) -> None:  # fires once, long_press_s after the press, while held
        if self._down_t is not None:
            self._held = True
            self.presses.put(("long", self._down_t))

    def _on_release(self) -> None:
        if self._down_t is not None and not self._held:
            self.presses.put(("short", self._down_t))
        self._down_t = None

    def take(self) -> list[tuple[str, float]]:
        out = []
        while True:
            try:
                out.append(self.presses.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.button.close()


class Feedback:
    """The service's feedback: alerts remembered, button presses and commands turned into
    ``feedback`` events handed to ``emit`` (which spools them like every record)."""

    def __init__(self, cfg: FeedbackConfig, *, mono: Callable[[], float], clock: Any,
                 emit: Callable[[dict[str, Any]], None], pin_factory: Any = None,
                 recording: Callable[[], Path | None] = lambda: None):
        self.mono, self.clock, self.emit, self.recording = mono, clock, emit, recording
        self.memory = AlertMemory(cfg.false_alarm_window_s)
        self.button: FeedbackButton | None = None
        self.count = 0
        if cfg.button:
            try:
                self.button = FeedbackButton(cfg.pin, cfg.long_press_s, mono,
                                             pin_factory=pin_factory)
                log.info("feedback button on GPIO%d (hold %.1f s: slouching now)", cfg.pin,
                         cfg.long_press_s)
            except Exception as exc:  # gpiozero raises many kinds when no GPIO backend exists
                log.error("feedback button disabled: cannot read GPIO%d (%s); install lgpio "
                          "(python3-lgpio) or set feedback.button = false", cfg.pin, exc)

    def observe(self, records: list[dict[str, Any]]) -> None:
        """Remember alerts; beside a raw recording, keep what tune needs (the sidecar)."""
        self.memory.observe(records)
        keep = [r for r in records if r["type"] in SIDECAR_TYPES]
        path = self.recording() if keep else None
        if path is None:
            return
        try:
            with sidecar_path(path).open("a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r, default=float) + "\n" for r in keep)
        except OSError as exc:
            log.error("cannot write %s: %s", sidecar_path(path), exc)

    def _store(self, rec: dict[str, Any], source: str) -> dict[str, Any]:
        self.emit(rec)
        self.count += 1
        log.info("feedback (%s): %s%s", source, rec["kind"],
                 f", about the alert {rec['t'] - rec['alert_t']:.0f} s before"
                 if "alert_t" in rec else "")
        return rec

    def poll(self) -> None:
        """Turn queued button presses into events (on the loop's thread)."""
        if self.button is None:
            return
        for length, t in self.button.take():
            rec = (self.memory.record("missed_slouch", t) if length == "long"
                   else self.memory.short_press(t))
            self._store(rec, "button")

    def command(self, kind: str, t_unix: float | None) -> dict[str, Any]:
        """The MQTT command: ``t_unix`` (Unix seconds) or now; returns the reply's details.
        Raises CommandError for a time that cannot be placed."""
        now = self.mono()
        t = now
        if t_unix is not None:
            if not self.clock.synced:
                raise CommandError("feedback t: the device clock is not synchronised yet, so "
                                   "a Unix time cannot be placed; leave t out (it means now)")
            t = now + (t_unix * 1000.0 - self.clock.now_ms()) / 1000.0
            if t > now + FUTURE_SLACK_S:
                raise CommandError(f"feedback t {t_unix:g} is {t - now:.0f} s in the future; "
                                   "send Unix seconds (not milliseconds), or leave t out")
            if t < now - MAX_AGE_S:
                raise CommandError(f"feedback t {t_unix:g} is more than 24 h ago; send Unix "
                                   "seconds, or leave t out (it means now)")
        rec = self._store(self.memory.record(kind, t), "command")
        detail: dict[str, Any] = {"kind": kind}
        if kind == "false_alarm":
            detail["alert_ago_s"] = (round(t - rec["alert_t"], 1) if "alert_t" in rec
                                     else None)
            if "alert_t" not in rec:
                detail["detail"] = (f"no alert in the {self.memory.window_s:g} s before: "
                                    "stored without alert_t")
        return detail

    def close(self) -> None:
        if self.button is not None:
            self.button.close()

