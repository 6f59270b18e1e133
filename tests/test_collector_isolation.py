"""Cross-device isolation: no sequence of messages from one device can make another
device's valid message fail to store.

InfluxDB 1.x fixes a field's type per measurement and per shard, across all devices, and
a shard (7 days for the default retention policy) starts empty. Hypothesis generates
sequences of hostile messages (every declared field and new ones, with values of every
JSON kind, on every topic and record type, undeclared types included), with timestamps on
both sides of a shard boundary, as ``ts`` may lie up to a day ahead. Whatever the
validator lets through is written the way the collector writes it, into a fresh
database. Then a witness device writes one valid message of every record type, using
every declared field: all of them must be stored.
"""

from __future__ import annotations

import itertools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spinesense.collector.points import message_to_line
from spinesense.collector.validate import Rejected, Validator
from spinesense.collector.writers import InfluxV1Writer, write_isolating
from spinesense.config import InfluxConfig
from spinesense.schema import FIELD_TABLES, SCHEMAS, FieldType, encode, make_message

WEEK_MS = 7 * 86_400_000
# a clock one hour before a shard boundary (shard groups are aligned to the epoch)
BOUNDARY_MS = (1_796_000_000_000 // WEEK_MS + 1) * WEEK_MS
NOW_MS = BOUNDARY_MS - 3_600_000
validator = Validator(clock=lambda: NOW_MS / 1000)
_db = itertools.count()

UNDECLARED = ("newly_added", "mood", "zzz")  # the witness uses the first
field_names = st.one_of(*(st.sampled_from(sorted(t)) for t in FIELD_TABLES.values()),
                        st.sampled_from(UNDECLARED),
                        st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
json_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                        st.floats(-1e6, 1e6), st.text(max_size=8),
                        st.sampled_from(("sitting", "walking", "false_alarm")),
                        st.integers(NOW_MS - 3_600_000, NOW_MS + 86_000_000),
                        st.lists(st.integers(), max_size=2))
type_names = st.one_of(st.sampled_from(sorted({t for s in SCHEMAS.values() for t in s})),
                       st.from_regex(r"[a-z]{1,6}", fullmatch=True))
# around the boundary: the current shard and the next one
stamps = st.integers(BOUNDARY_MS - 2 * 3_600_000, BOUNDARY_MS + 23 * 3_600_000)


@st.composite
def hostile_message(draw) -> tuple[str, bytes]:
    """A message that is mostly valid (so that many pass the validator) with one to three
    fields of any name set to any JSON value."""
    kind = draw(st.sampled_from(("events", "metrics", "status")))
    type_ = "metric" if kind == "metrics" else draw(type_names)
    ts = draw(stamps)
    declared = SCHEMAS[kind].get(type_, {})
    names = draw(st.lists(st.sampled_from(sorted(declared)), max_size=4)) if declared else []
    data = {name: valid_value(declared[name], ts) for name in names}
    data.update(draw(st.dictionaries(field_names, json_values, min_size=1, max_size=3)))
    msg = make_message("mallory", draw(st.integers(0, 10**6)), ts, type_, data)
    return f"spinesense/mallory/{kind}", json.dumps(msg).encode()


def valid_value(ft: FieldType, ts: int):
    """A value of the declared type (what an honest device sends)."""
    if ft.kind == "time":
        return ts - 1000
    if ft.kind == "bool":
        return True
    if ft.kind in ("string", "label"):
        return ft.choices[0] if ft.choices else "fine"
    return max(ft.lo, min(ft.hi, 1.5))


def witness_lines(ts: int) -> list[str]:
    """One valid message per record type, with every declared field, plus an undeclared
    type and an undeclared (numeric) field."""
    out = []
    for kind, types in SCHEMAS.items():
        for type_, fields in [*types.items(), ("not_declared", {})]:
            if kind == "metrics" and type_ != "metric":
                continue
            data = {name: valid_value(ft, ts) for name, ft in fields.items()}
            data[UNDECLARED[0]] = 2.5
            ts += 1
            msg = make_message("alice", ts, ts, type_, data)
            checked = validator.check(f"spinesense/alice/{kind}", encode(msg))[2]
            out.append(message_to_line(kind, checked))
    return out


def writer(influxd, db: str) -> InfluxV1Writer:
    return InfluxV1Writer(InfluxConfig(url=influxd.url, database=db))


def test_the_witness_alone_is_stored(influxd):
    db = f"iso_w_{next(_db)}"
    lines = witness_lines(BOUNDARY_MS + 60_000)
    refused: dict[int, str] = {}
    write_isolating(writer(influxd, db).write, lines, refused.setdefault)
    assert refused == {}
    assert len(lines) == sum(len(t) + 1 for t in SCHEMAS.values()) - 1


def test_no_device_can_make_another_devices_valid_messages_fail(influxd):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(hostile_message(), min_size=1, max_size=40))
    def run(messages: list[tuple[str, bytes]]) -> None:
        db = f"iso_{next(_db)}"
        w = writer(influxd, db)
        accepted = []
        for topic, payload in messages:
            try:
                kind, _dev, msg = validator.check(topic, payload)
            except Rejected:
                continue
            accepted.append(message_to_line(kind, msg))
        refused: dict[int, str] = {}
        if accepted:  # mallory's own messages may be refused only by each other... or not
            write_isolating(w.write, accepted, refused.setdefault)
        assert refused == {}, f"InfluxDB refused a validated message: {refused}"
        for ts in (BOUNDARY_MS - 600_000, BOUNDARY_MS + 600_000):  # both shards
            bad: dict[int, str] = {}
            write_isolating(w.write, witness_lines(ts), bad.setdefault)
            assert bad == {}, f"a valid message was refused after mallory's: {bad}"

    run()
