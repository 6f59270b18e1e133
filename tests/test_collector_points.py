"""Line protocol and validation, checked against a real influxd: what we format is what
InfluxDB stores, and a redelivered message overwrites instead of duplicating."""

from __future__ import annotations

import math
import time

import pytest

from spinesense.collector.points import message_to_line
from spinesense.collector.validate import Rejected, Validator
from spinesense.collector.writers import InfluxV1Writer, PermanentError, write_isolating
from spinesense.config import InfluxConfig
from spinesense.schema import encode, make_message

NOW = int(time.time() * 1000)


def writer(influxd, db: str) -> InfluxV1Writer:
    return InfluxV1Writer(InfluxConfig(url=influxd.url, database=db))


def test_metric_line_types_follow_interface_6():
    msg = make_message("alice", 42, NOW, "metric", {"steps": 3, "flexion_mean": 4.5,
                                                    "posture": "sitting", "gap_s": None})
    line = message_to_line("metrics", msg)
    assert line == f'posture,device=alice steps=3,flexion_mean=4.5,posture="sitting",' \
                   f"seq=42i {NOW}"


def test_escaping_round_trips_through_influxd(influxd, unique_db):
    text = 'say "hi", a=b \\ back\\slash\nnew line'
    msg = make_message("dev 1,=x", 7, NOW, "slouch_start", {"note": text, "w x,y=z": 1.5})
    line = message_to_line("events", msg)
    writer(influxd, unique_db).write([line])
    rows = influxd.rows('SELECT * FROM posture_event', unique_db)
    assert len(rows) == 1
    row = rows[0]
    assert row["device"] == "dev 1,=x" and row["type"] == "slouch_start"
    assert row["w x,y=z"] == 1.5 and row["seq"] == 7 and row["time"] == NOW
    assert row["note"] == text  # the newline is stored as a newline


def test_redelivered_message_overwrites_never_duplicates(influxd, unique_db):
    w = writer(influxd, unique_db)
    lines = [message_to_line("events", make_message("a", s, NOW + s, "gap", {"gap_s": 1.0}))
             for s in range(10)]
    w.write(lines)
    w.write(lines[3:7])  # a redelivery after a crash
    w.write(lines)
    assert influxd.rows("SELECT count(seq) FROM posture_event", unique_db)[0]["count"] == 10


def test_non_finite_numbers_never_reach_line_protocol():
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            message_to_line("metrics", make_message("a", 1, NOW, "metric", {"x": bad}))


def test_writer_creates_the_database_and_isolates_refused_points(influxd):
    db = f"created_{time.monotonic_ns()}"
    w = writer(influxd, db)
    good = [message_to_line("events", make_message("a", s, NOW + s, "gap", {"x": 1.0}))
            for s in range(8)]
    conflict = message_to_line("events", make_message("a", 99, NOW + 99, "gap", {"x": "s"}))
    w.write(good[:1])  # creates the database; x is a float from now on
    with pytest.raises(PermanentError):
        w.write([*good[1:4], conflict])
    bad: dict[int, str] = {}
    write_isolating(w.write, [*good[1:4], conflict, *good[4:]], bad.setdefault)
    assert list(bad) == [3] and "conflict" in bad[3]
    assert influxd.rows("SELECT count(seq) FROM posture_event", db)[0]["count"] == 8


@pytest.mark.parametrize("topic,payload,reason", [
    ("spinesense/alice/events", encode(make_message("bob", 1, NOW, "gap")), "does not match"),
    ("spinesense/alice/cmd", encode(make_message("alice", 1, NOW, "gap")), "not stored"),
    ("spinesense/a+b/events", b"{}", "device id"),
    ("spinesense/alice/metrics", encode(make_message("alice", 1, NOW, "gap")), "metrics topic"),
    ("spinesense/alice/events", encode(make_message("alice", 1, 10**9, "gap")), "outside"),
    ("spinesense/alice/events", b'{"v":2}', "schema version"),
    ("spinesense/alice/events", b"\xc3\x28", "UTF-8"),
], ids=["wrong-device", "cmd-topic", "bad-device-id", "event-on-metrics", "ts-outside",
        "schema-version", "invalid-utf8"])
def test_validator_names_the_problem(topic, payload, reason):
    with pytest.raises(Rejected, match=reason):
        Validator().check(topic, payload)


def test_v2_writer_tells_setup_errors_from_outages(influxd):
    """influxdb-client against influxd 1.6 (which has no /api/v2/write): a 404 is a setup
    problem (retried loudly, never dead-lettered); a closed port is an outage."""
    from spinesense.collector.writers import AuthError, InfluxV2Writer, RetryableError
    from spinesense.devservers import free_port

    line = message_to_line("events", make_message("a", 1, NOW, "gap", {"x": 1.0}))
    w = InfluxV2Writer(InfluxConfig(api="v2", url=influxd.url, token="t", timeout_s=5.0))
    with pytest.raises(AuthError, match="404"):
        w.write([line])
    w.close()
    down = InfluxV2Writer(InfluxConfig(api="v2", url=f"http://127.0.0.1:{free_port()}",
                                       token="t", timeout_s=2.0))
    with pytest.raises(RetryableError, match="unreachable"):
        down.write([line])
    down.close()


def test_v1_writer_outage_is_retryable():
    from spinesense.collector.writers import RetryableError
    from spinesense.devservers import free_port

    w = InfluxV1Writer(InfluxConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=2.0))
    with pytest.raises(RetryableError, match="unreachable"):
        w.write(["m,device=a x=1.0 1"])
