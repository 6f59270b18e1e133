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


# -- the hand-written line protocol against influxdb-client's and against influxd ---------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spinesense.collector.points import format_field, format_line  # noqa: E402

# what line protocol can carry in a name: no control characters, no backslash, not empty
names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"),
                min_size=1, max_size=12).filter(lambda s: s != "time")
values = st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                   st.integers(-(2**53), 2**53), st.text(max_size=40))
points = st.tuples(st.dictionaries(names, names, max_size=3),
                   st.dictionaries(names, values, min_size=1, max_size=5),
                   st.integers(0, 2**41))


def our_line(tags: dict, fields: dict, ts: int, measurement: str = "m") -> str:
    """Our formatter, fields in the order influxdb-client writes them (sorted)."""
    return format_line(measurement, dict(sorted(tags.items())),
                       [format_field(k, fields[k]) for k in sorted(fields)], ts)


@settings(max_examples=400, deadline=None)
@given(points)
def test_line_protocol_matches_influxdb_clients_serializer(point):
    from influxdb_client import Point, WritePrecision

    tags, fields, ts = point
    p = Point("m").time(ts, WritePrecision.MS)
    for k, v in tags.items():
        p.tag(k, v)
    for k, v in fields.items():  # our numbers are always floats (one type per field)
        p.field(k, float(v) if isinstance(v, int) else v)
    assert our_line(tags, fields, ts) == p.to_line_protocol()


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "back\\slash", "", "nul\x00"])
def test_names_line_protocol_cannot_carry_are_refused(bad):
    with pytest.raises(ValueError, match="control character or a backslash"):
        format_field(bad, 1.0)
    with pytest.raises(ValueError):
        format_line("m", {"device": bad}, ["x=1"], 1)


def test_random_points_round_trip_through_influxd(influxd, unique_db):
    """Random tag values, field keys, strings (control characters included) and numbers
    come back from influxd exactly as they were sent."""
    w = writer(influxd, unique_db)
    batches: list[list[tuple[dict, dict, int]]] = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(points, min_size=1, max_size=40))
    def collect(batch):
        batches.append(batch)

    collect()
    ts = NOW - 10**7
    sent: dict[int, tuple[dict, dict]] = {}
    for batch in batches:
        lines = []
        for tags, fields, _ts in batch:
            ts += 1
            # one InfluxDB type per field key: the key says which
            fields = {("s" if isinstance(v, str) else "n") + k: v for k, v in fields.items()}
            fields = {k: v for k, v in fields.items() if k not in tags}
            if not fields:
                continue
            tags = {**tags, "device": "d"} if "device" not in fields else tags
            lines.append(our_line(tags, fields, ts, "rt"))
            sent[ts] = (tags, fields)
        w.write(lines)
    rows = influxd.rows(f"SELECT * FROM rt WHERE time >= {NOW - 10**7}ms", unique_db)
    assert len(rows) == len(sent)
    for row in rows:
        tags, fields = sent[row["time"]]
        # influxd's JSON writes 6.2e16 as 62000000000000000: read numbers back as floats
        got = {k: v if isinstance(v, str) else float(v) for k, v in row.items()
               if v is not None and k != "time"}
        want = {**tags, **{k: float(v) if isinstance(v, int) else v
                           for k, v in fields.items()}}
        assert got == want


# -- declared field types (spinesense.schema) --------------------------------------------
def check(kind: str, type_: str, data: dict, device: str = "alice") -> dict:
    msg = make_message(device, 1, NOW, type_, data)
    return Validator().check(f"spinesense/{device}/{kind}", encode(msg))[2]


@pytest.mark.parametrize("kind,type_,data,reason", [
    ("events", "slouch_end", {"reason": 7}, "must be a string, not a number"),
    ("events", "slouch_end", {"peak_deg": "high"}, "must be a number, not a string"),
    ("events", "slouch_end", {"peak_deg": True}, "must be a number, not a boolean"),
    ("metrics", "metric", {"posture": 3}, "must be a string"),
    ("metrics", "metric", {"posture": False}, "must be a string"),
    ("metrics", "metric", {"posture": "slumped"}, "not one of sitting"),
    ("metrics", "metric", {"flexion_mean": 500.0}, "outside -180..180"),
    ("status", "status", {"clock_synced": 1}, "must be true or false"),
    ("status", "status", {"state": 1.0}, "must be a string"),
    ("events", "feedback", {"kind": "whatever"}, "not one of false_alarm"),
    # a name no record type declares must be a number, on every type
    ("events", "slouch_start", {"mood": "grumpy"}, "data.mood must be a number"),
    ("events", "brand_new_type", {"mood": "grumpy"}, "data.mood must be a number"),
    # a name another type declares keeps that type everywhere on the topic
    ("events", "sit_to_stand", {"reason": 1.0}, "data.reason must be a string"),
    ("events", "gap", {"start": "x"}, "must be a number"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_field_has_its_declared_type(kind, type_, data, reason):
    with pytest.raises(Rejected, match=reason):
        check(kind, type_, data)


def test_lone_surrogates_are_refused_at_validation():
    payload = encode(make_message("alice", 1, NOW, "slouch_end", {"reason": "x"}))
    payload = payload.replace(b'"x"', b'"ok\\ud800"')
    with pytest.raises(Rejected, match="lone surrogate"):
        Validator().check("spinesense/alice/events", payload)
    fine = payload.replace(b"\\ud800", b"\\ud83d\\ude00")  # a proper surrogate pair
    assert Validator().check("spinesense/alice/events", fine)[2]["data"]["reason"] == "ok😀"


def test_unknown_types_share_one_tag_and_labels_are_strings():
    line = message_to_line("events", check("events", "made_up", {"x": 1.5}))
    assert line.startswith('posture_event,device=alice,type=other original_type="made_up",x=1.5')
    line = message_to_line("status", check("status", "cmd_ok", {"id": 42, "cmd": "status"}))
    assert 'id="42"' in line and ",type=cmd_ok " in line


def test_the_declared_types_are_consistent_per_measurement():
    """Each field name has one kind per topic, whichever record type declares it."""
    from spinesense.schema import FIELD_TABLES, SCHEMAS, field_type

    for kind, types in SCHEMAS.items():
        for type_, fields in types.items():
            for name, ft in fields.items():
                assert field_type(kind, type_, name) is ft
                assert FIELD_TABLES[kind][name].stored == ft.stored, (kind, type_, name)
    assert field_type("events", "never_declared", "reason").kind == "string"
    assert field_type("events", "slouch_start", "anything_new").kind == "number"


def test_reply_and_status_in_the_same_ms_are_two_points_and_newlines_stay_distinct(
        influxd, unique_db):
    status = make_message("alice", 0, NOW, "status", {"state": "online"})
    reply = make_message("alice", 0, NOW, "cmd_error", {"cmd": "x", "error": "a\nb"})
    other = make_message("alice", 0, NOW + 1, "cmd_error", {"cmd": "x", "error": "a\\nb"})
    lines = [message_to_line("status", check_msg) for check_msg in (status, reply, other)]
    writer(influxd, unique_db).write(lines)
    rows = influxd.rows("SELECT * FROM device_status GROUP BY *", unique_db)
    assert sorted((r["time"], r["type"]) for r in rows) == [
        (NOW, "cmd_error"), (NOW, "status"), (NOW + 1, "cmd_error")]
    errors = {r["time"]: r["error"] for r in rows if r["type"] == "cmd_error"}
    assert errors == {NOW: "a\nb", NOW + 1: "a\\nb"}
