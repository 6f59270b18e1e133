"""Feedback from the wearer on the edge (DESIGN A4): the button on gpiozero's MockFactory,
the MQTT command's validation, and the ``feedback`` events that reach the spool."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from spinesense.config import Config, ConfigError, from_dict
from spinesense.devservers import free_port
from spinesense.edge.clock import FixedWallClock, VirtualClock
from spinesense.edge.commands import CommandHandler
from spinesense.edge.feedback import AlertMemory, Feedback
from spinesense.edge.service import EdgeService


def test_short_press_means_false_alarm_only_after_a_recent_buzz() -> None:
    mem = AlertMemory(window_s=60)
    mem.observe([{"type": "slouch_start", "t": 100.0}, {"type": "slouch_end", "t": 130.0},
                 {"type": "sitting_alert", "t": 200.0}, {"type": "metric", "t": 210.0}])
    assert mem.short_press(150.0) == {"type": "feedback", "t": 150.0, "kind": "false_alarm",
                                      "alert_t": 100.0}
    assert mem.short_press(230.0)["alert_t"] == 200.0  # the most recent buzz
    assert mem.short_press(270.5) == {"type": "feedback", "t": 270.5, "kind": "break"}
    assert mem.short_press(99.0)["kind"] == "break"  # nothing had buzzed yet
    assert mem.record("missed_slouch", 120.0) == {"type": "feedback", "t": 120.0,
                                                  "kind": "missed_slouch"}
    # a false_alarm with no buzz in the window is stored without alert_t (A4: "or none")
    assert "alert_t" not in mem.record("false_alarm", 500.0)


def test_button_and_motor_cannot_share_a_pin() -> None:
    with pytest.raises(ConfigError, match=r"feedback\.pin: GPIO18 is also haptics\.pin"):
        from_dict({"feedback": {"button": True, "pin": 18}, "haptics": {"enabled": True}})


class _Target:
    def snooze(self, minutes: float) -> None: ...
    def recalibrate(self) -> None: ...
    def set_thresholds(self, **kwargs: float) -> None: ...


def _handler(stored: list[dict]) -> tuple[CommandHandler, VirtualClock]:
    vclock = VirtualClock(1000.0)
    # pipeline second 1000 is 2026-11-30 12:00:00 UTC
    wall = FixedWallClock(vclock, 1_796_040_000_000, t0=1000.0)
    fb = Feedback(Config().feedback, mono=vclock, clock=wall, emit=stored.append)
    fb.observe([{"type": "slouch_start", "t": 990.0}])
    return CommandHandler(Config(), _Target(), dict, feedback=fb.command), vclock


@pytest.mark.parametrize("payload, needle", [
    ({"cmd": "feedback"}, "feedback kind is missing; one of false_alarm, missed_slouch, break"),
    ({"cmd": "feedback", "kind": "wrong"}, "feedback kind 'wrong' is unknown"),
    ({"cmd": "feedback", "kind": "break", "why": 1}, "feedback takes no arguments; got why"),
    ({"cmd": "feedback", "kind": "break", "t": "now"}, "feedback t 'now' is not a number"),
    ({"cmd": "feedback", "kind": "break", "t": True}, "is not a number"),
    ({"cmd": "feedback", "kind": "break", "t": 1_796_040_000_000},
     "in the future; send Unix seconds (not milliseconds)"),
    ({"cmd": "feedback", "kind": "break", "t": 1_795_000_000}, "more than 24 h ago"),
])
def test_bad_feedback_commands_are_refused(payload: dict, needle: str) -> None:
    stored: list[dict] = []
    handler, _ = _handler(stored)
    kind, reply = handler.handle(json.dumps(payload).encode())
    assert kind == "cmd_error" and needle in reply["error"], reply
    assert stored == []  # a refused command changes nothing


def test_feedback_command_is_stored_with_the_alert_it_means() -> None:
    stored: list[dict] = []
    handler, vclock = _handler(stored)
    kind, reply = handler.handle(b'{"cmd": "feedback", "kind": "false_alarm", "id": 7}')
    assert (kind, reply) == ("cmd_ok", {"cmd": "feedback", "id": 7, "kind": "false_alarm",
                                        "alert_ago_s": 10.0})
    assert stored == [{"type": "feedback", "t": 1000.0, "kind": "false_alarm",
                       "alert_t": 990.0}]
    # an explicit Unix time (5 s before "now") is placed in the pipeline's time base
    vclock.advance(20.0)
    kind, reply = handler.handle(json.dumps({"cmd": "feedback", "kind": "missed_slouch",
                                             "t": 1_796_040_015.0}).encode())
    assert kind == "cmd_ok" and stored[-1] == {"type": "feedback", "t": 1015.0,
                                               "kind": "missed_slouch"}
    # too long after any buzz: stored, without alert_t, and the reply says so
    vclock.advance(100.0)
    kind, reply = handler.handle(b'{"cmd": "feedback", "kind": "false_alarm"}')
    assert kind == "cmd_ok" and "stored without alert_t" in reply["detail"]
    assert "alert_t" not in stored[-1]


def _press(pin, hold_s: float) -> None:
    pin.drive_low()  # the button pulls the pin to GND
    time.sleep(hold_s)
    pin.drive_high()
    time.sleep(0.05)


def test_button_presses_become_spooled_feedback_events(tmp_path: Path) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    cfg.mqtt.port = free_port()
    cfg.pipeline.calibration_wait_s = 30.0
    cfg.feedback.button, cfg.feedback.pin, cfg.feedback.long_press_s = True, 5, 0.3
    cfg.haptics.enabled, cfg.haptics.pin = True, 23
    factory = MockFactory()
    svc = EdgeService(cfg, emulate="mpu6050", scenario="slouch_short", seed=1, speed=1000,
                      duration_s=720, pin_factory=factory)
    pin = factory.pin(5)
    spooled: list[dict] = []

    def tick() -> None:
        before = svc.spool.next_seq
        svc.tick()
        if svc.spool.next_seq > before:
            spooled.extend(json.loads(p) for _, k, p in svc.spool.fetch(before - 1, 1000)
                           if k == "events")

    try:
        assert svc.feedback.button is not None
        _press(pin, 0.05)  # before any buzz: "I am taking a break"
        tick()
        while not any(m["type"] == "slouch_start" for m in spooled):
            tick()
        alert = next(m for m in spooled if m["type"] == "slouch_start")
        _press(pin, 0.05)  # right after the buzz: "that was wrong"
        tick()
        _press(pin, 0.6)  # held: "I am slouching now"
        tick()
        fb = [m for m in spooled if m["type"] == "feedback"]
        assert [m["data"]["kind"] for m in fb] == ["break", "false_alarm", "missed_slouch"]
        assert fb[1]["data"]["alert_t"] == alert["ts"]  # the alert it refers to, UTC ms
        assert fb[1]["ts"] >= alert["ts"] and "alert_t" not in fb[2]["data"]
        assert svc.feedback.count == 3
        assert svc.haptics is not None and svc.haptics.played == 4  # 1 alert + 3 "noted"
    finally:
        svc.feedback.close()
        if svc.haptics is not None:
            svc.haptics.close()
        svc.spool.close()
        svc.reader.close()
