"""Edge service building blocks without a broker: spool, clock, haptics, commands."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from spinesense import schema
from spinesense.config import Config
from spinesense.edge.clock import FixedWallClock, VirtualClock, WallClock
from spinesense.edge.commands import MAX_CMD_BYTES, CommandHandler, load_thresholds
from spinesense.edge.haptics import SITTING, SLOUCH, Haptics
from spinesense.edge.spool import Spool
from spinesense.parsing import parse_duration


def _msg(type_: str = "slouch_start", ts: int = 1_700_000_000_000, **data) -> dict:
    return schema.make_message("d1", 0, ts, type_, data)


# -- spool ------------------------------------------------------------------------------
def test_spool_assigns_seq_in_order_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path)
    assert spool.add([("events", _msg(), None), ("metrics", _msg("metric"), None)]) == [1, 2]
    spool.ack([1, 2])
    assert spool.backlog == 0
    spool.close()
    spool = Spool(path)  # empty spool, but the counter is stored: no seq is ever reused
    assert spool.add([("events", _msg(), None)]) == [3]
    rows = spool.fetch(0, 10)
    assert [(s, k) for s, k, _ in rows] == [(3, "events")]
    assert json.loads(rows[0][2])["seq"] == 3
    assert spool.fetch(3, 10) == []
    with pytest.raises(ValueError, match="only events and metrics"):
        spool.add([("status", _msg(), None)])


def test_spool_ack_deletes_only_what_was_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.add([("events", _msg(), None) for _ in range(10)])
    assert spool.ack([2, 4, 99]) == 2
    assert [s for s, _, _ in spool.fetch(0, 100)] == [1, 3, 5, 6, 7, 8, 9, 10]
    assert spool.backlog == 8


def test_spool_drops_oldest_metrics_first_and_events_only_past_hard_cap(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / "s.db", max_mb=0.02, hard_cap_mb=0.04)
    pad = "x" * 400
    for _ in range(15):  # ~15 kB of events and metrics: within budget
        spool.add([("events", _msg(pad=pad), None), ("metrics", _msg("metric", pad=pad), None)])
    assert spool.dropped_metrics == 0
    for _ in range(20):  # over max_mb: the oldest metrics go, every event stays
        spool.add([("events", _msg(pad=pad), None), ("metrics", _msg("metric", pad=pad), None)])
    kinds = {s: k for s, k, _ in spool.fetch(0, 10_000)}
    assert spool.dropped_metrics > 0 and spool.dropped_events == 0
    assert sum(k == "events" for k in kinds.values()) == 35
    metric_seqs = [s for s, k in kinds.items() if k == "metrics"]
    assert metric_seqs == sorted(metric_seqs) and min(metric_seqs) > 2  # oldest went
    assert spool.bytes <= spool.max_bytes
    with caplog.at_level(logging.ERROR):
        for _ in range(60):  # only events now: past the hard cap they go too, loudly
            spool.add([("events", _msg(pad=pad), None)])
    assert spool.dropped_events > 0
    assert "HARD CAP" in caplog.text
    assert spool.bytes <= spool.hard_cap_bytes
    dropped = spool.dropped_events
    spool.close()
    assert Spool(tmp_path / "s.db", max_mb=0.02, hard_cap_mb=0.04).dropped_events == dropped


def test_spool_restamps_unsent_messages_when_the_clock_syncs(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    wrong = 1000  # the clock read 1970 when these were stamped
    first = _msg(ts=wrong + 5000, onset=wrong + 2000)
    first["synced"] = False
    second = _msg(ts=wrong + 7000)
    second["synced"] = False
    spool.add([("events", first, 5.0), ("events", second, 7.0)])
    fixed = spool.restamp(lambda t: 1_700_000_000_000 + round(t * 1000), after_seq=1)
    assert fixed == 1  # seq 1 was already handed to MQTT: it stays as sent, flagged
    rows = {s: json.loads(p) for s, _, p in spool.fetch(0, 10)}
    assert rows[1]["synced"] is False and rows[1]["ts"] == 6000
    assert rows[2]["ts"] == 1_700_000_007_000 and "synced" not in rows[2]
    spool.close()
    # after a restart nothing is re-stamped: an earlier run may have sent it
    spool = Spool(tmp_path / "s.db")
    assert spool.restamp(lambda t: 0, after_seq=0) == 0


def test_spool_restamp_moves_time_keys_with_the_stamp(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    msg = _msg("sitting_alert", ts=10_000, bout_start=4_000)
    msg["synced"] = False
    spool.add([("events", msg, 10.0)])
    spool.restamp(lambda t: 1_700_000_000_000 + round(t * 1000), after_seq=0)
    data = json.loads(spool.fetch(0, 1)[0][2])
    assert data["ts"] == 1_700_000_010_000
    assert data["data"]["bout_start"] == 1_700_000_004_000


# -- clock ------------------------------------------------------------------------------
def test_wall_clock_trusts_the_offset_only_after_sync() -> None:
    mono = VirtualClock(100.0)
    wall = [50.0]  # 1970: not synced
    state = {"synced": False}
    clock = WallClock(mono, lambda: wall[0], lambda: (state["synced"], "test"), recheck_s=10)
    assert not clock.synced
    assert clock.to_ms(100.0) == 50_000
    state["synced"] = True
    wall[0] = 1_700_000_000.0
    mono.advance(5)  # not due yet: no probe
    assert clock.refresh() is False and not clock.synced
    mono.advance(5)
    assert clock.refresh() is True and clock.synced  # the moment sync arrives
    assert clock.to_ms(110.0) == 1_700_000_000_000
    assert clock.to_ms(105.0) == 1_699_999_995_000  # earlier monotonic times map back
    mono.advance(10)
    assert clock.refresh() is False  # already synced: no second transition


def test_fixed_wall_clock_maps_virtual_time() -> None:
    v = VirtualClock()
    clock = FixedWallClock(v, anchor_ms=1_000_000, t0=0.0)
    v.advance(2.5)
    assert clock.synced and clock.now_ms() == 1_002_500


@pytest.mark.parametrize(("text", "seconds"), [
    ("2h", 7200), ("90m", 5400), ("3600", 3600), ("1h30m", 5400), ("45s", 45), ("0.5h", 1800),
    ("20min", 1200), ("250ms", 0.25), ("1h 30m", 5400), ("1d", 86400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2x", "-5", "0", "h", "10m5", "inf", "nan"])
def test_parse_duration_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


# -- haptics ----------------------------------------------------------------------------
def _pulses(pin) -> list[tuple[bool, float]]:
    """(state, seconds it lasted) from the mock pin's history (timestamps are deltas)."""
    states = pin.states
    return [(states[i].state, states[i + 1].timestamp) for i in range(1, len(states) - 1)]


@pytest.mark.parametrize(("event", "pattern"), [
    ("slouch_start", SLOUCH), ("sitting_alert", SITTING), ("sitting_reminder", SITTING)])
def test_haptics_patterns_on_the_mock_pin(event: str, pattern) -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    haptics = Haptics(18, pin_factory=factory)
    try:
        assert haptics.alert(event)
        time.sleep(pattern.duration_s + 0.5)
        pulses = _pulses(factory.pin(18))
        on = [d for s, d in pulses if s]
        off = [d for s, d in pulses if not s]
        assert len(on) == pattern.repeats and len(off) == pattern.repeats - 1
        assert all(abs(d - pattern.on_s) < 0.1 for d in on), on
        assert all(abs(d - pattern.off_s) < 0.1 for d in off), off
        assert factory.pin(18).state is False  # never left buzzing
    finally:
        haptics.close()


def test_haptics_ignore_other_events_and_patterns_differ() -> None:
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    haptics = Haptics(5, pin_factory=factory)
    try:
        assert not haptics.alert("slouch_end")
        assert len(factory.pin(5).states) == 1  # only the initial off
    finally:
        haptics.close()
    assert SLOUCH.on_s * 3 <= SITTING.on_s and SLOUCH.repeats != SITTING.repeats


# -- commands ---------------------------------------------------------------------------
class FakePipeline:
    """Records what the command handler asked for (the real pipeline is tested end to end)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def snooze(self, minutes: float) -> None:
        self.calls.append(("snooze", minutes))

    def recalibrate(self) -> None:
        self.calls.append(("recalibrate",))

    def set_thresholds(self, **kwargs: float) -> None:
        self.calls.append(("set_thresholds", kwargs))


def _handler(tmp_path: Path) -> tuple[CommandHandler, FakePipeline, Config]:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path / "state")
    target = FakePipeline()
    return CommandHandler(cfg, target, lambda: {"state": "online"}), target, cfg


@pytest.mark.parametrize(("payload", "needle"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"cmd": "dance"}', "'dance' is unknown"),
    (b'{"minutes": 5}', "cmd missing"),
    (b'{"cmd": "snooze", "minutes": -3}', "out of range"),
    (b'{"cmd": "snooze", "minutes": 100000}', "out of range"),
    (b'{"cmd": "snooze", "minutes": "ten"}', "out of range"),
    (b'{"cmd": "snooze", "minutes": true}', "out of range"),
    (b'{"cmd": "snooze", "hours": 1}', "takes no arguments"),
    (b'{"cmd": "recalibrate", "now": 1}', "takes no arguments"),
    (b'{"cmd": "set_thresholds"}', "needs a 'slouch'"),
    (b'{"cmd": "set_thresholds", "slouch": {"threshold_deg": 500}}', "out of range"),
    (b'{"cmd": "set_thresholds", "slouch": {"threshold_deg": NaN}}', "not finite"),
    (b'{"cmd": "set_thresholds", "slouch": {"release_deg": 20}}', "release"),
    (b'{"cmd": "set_thresholds", "slouch": {"gravity": 1}}', "cannot be set"),
    (b'{"cmd": "set_thresholds", "mqtt": {"host": "evil"}}', "unknown section"),
    (b'{"cmd": "set_thresholds", "sitting": {"limit_min": "30"}}', "expected a number"),
    (b'{"cmd": "status", "id": [1]}', "id must be"),
    (b'{"cmd": "status", "pad": "' + b"x" * MAX_CMD_BYTES + b'"}', "byte limit"),
])
def test_bad_commands_are_refused_and_change_nothing(tmp_path: Path, payload: bytes,
                                                     needle: str) -> None:
    handler, target, cfg = _handler(tmp_path)
    before = (cfg.slouch.threshold_deg, cfg.sitting.limit_min)
    kind, reply = handler.handle(payload)
    assert kind == "cmd_error", reply
    assert needle in reply["error"], reply["error"]
    assert "\n" not in reply["error"]
    assert target.calls == [] and handler.rejected == 1
    assert (cfg.slouch.threshold_deg, cfg.sitting.limit_min) == before
    assert not (tmp_path / "state" / "thresholds.json").exists()


def test_retained_commands_are_refused(tmp_path: Path) -> None:
    handler, target, _ = _handler(tmp_path)
    kind, reply = handler.handle(b'{"cmd": "recalibrate"}', retained=True)
    assert kind == "cmd_error" and "retained command ignored" in reply["error"]
    assert target.calls == []


def test_good_commands_are_applied_and_echo_their_id(tmp_path: Path) -> None:
    handler, target, cfg = _handler(tmp_path)
    assert handler.handle(b'{"cmd": "snooze", "minutes": 20, "id": "a1"}') == (
        "cmd_ok", {"cmd": "snooze", "id": "a1", "minutes": 20.0})
    assert handler.handle(b'{"cmd": "snooze"}')[1]["minutes"] == cfg.sitting.snooze_min
    assert handler.handle(b'{"cmd": "recalibrate"}')[0] == "cmd_ok"
    kind, reply = handler.handle(b'{"cmd": "status", "id": 7}')
    assert kind == "cmd_ok" and reply == {"cmd": "status", "id": 7, "state": "online"}
    assert target.calls == [("snooze", 20.0), ("snooze", cfg.sitting.snooze_min),
                            ("recalibrate",)]


def test_threshold_changes_persist_and_apply_at_the_next_start(tmp_path: Path) -> None:
    handler, target, cfg = _handler(tmp_path)
    kind, _ = handler.handle(b'{"cmd": "set_thresholds", "slouch": {"threshold_deg": 20, '
                             b'"delay_s": 8}, "sitting": {"limit_min": 45}}')
    assert kind == "cmd_ok"
    assert target.calls == [("set_thresholds",
                             {"threshold_deg": 20.0, "delay_s": 8.0, "limit_min": 45.0})]
    assert cfg.slouch.threshold_deg == 20.0
    handler.handle(b'{"cmd": "set_thresholds", "sitting": {"repeat_min": 5}}')
    fresh = Config()
    fresh.device.state_dir = cfg.device.state_dir
    saved = load_thresholds(fresh)
    assert saved == {"slouch": {"threshold_deg": 20.0, "delay_s": 8.0},
                     "sitting": {"limit_min": 45.0, "repeat_min": 5.0}}
    assert (fresh.slouch.threshold_deg, fresh.slouch.delay_s, fresh.sitting.limit_min,
            fresh.sitting.repeat_min) == (20.0, 8.0, 45.0, 5.0)


def test_a_damaged_thresholds_file_is_ignored_loudly(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config()
    cfg.device.state_dir = str(tmp_path)
    (tmp_path / "thresholds.json").write_text('{"slouch": {"threshold_deg": 900}}')
    with caplog.at_level(logging.ERROR):
        assert load_thresholds(cfg) == {}
    assert cfg.slouch.threshold_deg == 15.0 and "thresholds.json: ignored" in caplog.text
