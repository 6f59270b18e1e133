"""Fuzzing the collector through the real broker: 10 000 hypothesis-generated bad
payloads, interleaved with good ones. Every bad one is rejected, dead-lettered and
counted; every good one is stored; the collector survives."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from collector_harness import CollectorProc, Publisher, count_points, wait_for, write_config
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from spinesense.schema import METRIC_FIELDS, encode, make_message

pytestmark = pytest.mark.slow
N_BAD = 10_000
NOW = int(time.time() * 1000)
DEVICES = ("alice", "bob", "carol")


def envelope(device: str, seq: int, kind: str = "events") -> dict:
    type_ = "metric" if kind == "metrics" else "slouch_start"
    data = {"flexion_mean": 3.0, "posture": "sitting"} if kind == "metrics" else \
        {"onset": NOW - 9000, "peak_deg": 21.0}
    return make_message(device, seq, NOW - 3_600_000 + seq, type_, data)


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


devices = st.sampled_from(DEVICES)
kinds = st.sampled_from(("events", "metrics", "status"))
seqs = st.integers(0, 10**9)
not_int = st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(),
                    st.none(), st.lists(st.integers(), max_size=2))


@st.composite
def wrong_type(draw):
    dev, kind = draw(devices), draw(kinds)
    msg = envelope(dev, draw(seqs), kind)
    key = draw(st.sampled_from(("v", "device", "seq", "ts", "type", "data", "synced")))
    bad = {
        "v": st.one_of(st.just("1"), st.just(1.0), st.just(True), st.integers(2, 99)),
        "device": st.one_of(st.integers(), st.none(), st.lists(st.just(dev), max_size=1)),
        "seq": st.one_of(st.text(max_size=5), st.floats(allow_nan=False), st.booleans(),
                         st.lists(st.integers(), max_size=2), st.integers(max_value=-1)),
        "ts": not_int,
        "type": st.one_of(st.integers(), st.just(""), st.just("Slouch Start"),
                          st.text(min_size=65, max_size=70, alphabet="abc")),
        "data": st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=5),
                          st.integers()),
        "synced": st.one_of(st.integers(), st.text(max_size=3)),
    }[key]
    msg[key] = draw(bad)
    return f"spinesense/{dev}/{kind}", dumps(msg)


@st.composite
def huge_value(draw):
    dev, seq = draw(devices), draw(seqs)
    choice = draw(st.integers(0, 4))
    if choice == 0:  # metric field out of its range
        msg = envelope(dev, seq, "metrics")
        field = draw(st.sampled_from(METRIC_FIELDS))
        msg["data"][field] = draw(st.one_of(st.floats(1e13, 1e300), st.floats(-1e300, -1e7)))
        return f"spinesense/{dev}/metrics", dumps(msg)
    msg = envelope(dev, seq)
    if choice == 1:
        msg["data"]["x"] = draw(st.one_of(st.integers(min_value=10**15 + 1),
                                          st.floats(1.01e15, 1e308)))
    elif choice == 2:
        msg["ts"] = draw(st.one_of(st.integers(NOW + 2 * 86_400_000, 2**70),
                                   st.integers(-(2**70), 946_684_799_999)))
    elif choice == 3:
        msg["seq"] = draw(st.integers(2**63, 2**80))
    else:
        msg["data"]["note"] = "x" * draw(st.integers(1025, 5000))
    return f"spinesense/{dev}/events", dumps(msg)


@st.composite
def non_finite(draw):
    dev = draw(devices)
    token = draw(st.sampled_from(("NaN", "Infinity", "-Infinity", "1e999", "-1e999")))
    where = draw(st.sampled_from(("data", "ts", "seq", "v")))
    body = dumps(envelope(dev, draw(seqs))).decode()
    if where == "data":
        body = body.replace('"peak_deg":21.0', f'"peak_deg":{token}')
    else:
        body = body.replace(f'"{where}":', f'"{where}":{token},"_{where}":', 1)
    return f"spinesense/{dev}/events", body.encode()


@st.composite
def deep_nesting(draw):
    dev = draw(devices)
    depth = draw(st.integers(2, 20_000))
    if draw(st.booleans()):
        return f"spinesense/{dev}/events", b"[" * depth + b"]" * depth
    msg = envelope(dev, draw(seqs))
    inner: object = 1.0
    for _ in range(min(depth, 50)):
        inner = {"a": inner} if draw(st.booleans()) else [inner]
    msg["data"]["nested"] = inner
    return f"spinesense/{dev}/events", dumps(msg)


@st.composite
def wrong_device(draw):
    topic_dev = draw(devices)
    payload_dev = draw(st.one_of(devices.filter(lambda d: d != topic_dev),
                                 st.text(min_size=1, max_size=70)).filter(
                                     lambda d: d != topic_dev))
    msg = envelope(payload_dev, draw(seqs), kind := draw(kinds))
    return f"spinesense/{topic_dev}/{kind}", dumps(msg)


@st.composite
def bad_utf8(draw):
    dev = draw(devices)
    body = encode(envelope(dev, draw(seqs)))
    junk = draw(st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80",
                                 b"\x80", b"\xe2\x82")))
    pos = draw(st.integers(0, len(body)))
    return f"spinesense/{dev}/events", body[:pos] + junk + body[pos:]


@st.composite
def oversize(draw):
    dev = draw(devices)
    size = draw(st.sampled_from([65_537] * 30 + [300_000] * 3 + [1_048_576]))
    msg = envelope(dev, draw(seqs))
    msg["data"]["pad"] = "x" * size
    return f"spinesense/{dev}/events", dumps(msg)


@st.composite
def not_a_message(draw):
    dev = draw(devices)
    body = draw(st.one_of(
        st.binary(max_size=200),
        st.lists(st.integers(), max_size=5).map(dumps),
        st.text(max_size=30).map(dumps),
        st.floats(allow_nan=False, allow_infinity=False).map(dumps),
        st.just(b""), st.just(b"null"), st.just(b"{}"),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=4).map(dumps)))
    return f"spinesense/{dev}/events", body


@st.composite
def bad_fields(draw):
    dev, seq = draw(devices), draw(seqs)
    choice = draw(st.integers(0, 5))
    if choice == 0:  # a key InfluxDB or our point format reserve, or an invalid name
        msg = envelope(dev, seq)
        key = draw(st.one_of(st.sampled_from(("time", "seq", "device", "type", "synced",
                                              "a b", "1x", "", "ü", "a,b", "x" * 65)),
                             st.text(min_size=1, max_size=8).filter(
                                 lambda k: not k.isascii() or not k.isidentifier())))
        msg["data"][key] = 1.0
    elif choice == 1:
        msg = envelope(dev, seq)
        msg["data"] = {f"k{i}": float(i) for i in range(draw(st.integers(65, 200)))}
    elif choice == 2:  # a string where a metric wants a number, or a posture we do not know
        msg = envelope(dev, seq, "metrics")
        msg["data"][draw(st.sampled_from(METRIC_FIELDS))] = draw(st.text(max_size=10))
    elif choice == 3:
        msg = envelope(dev, seq, "metrics")
        msg["data"]["posture"] = draw(st.text(max_size=12).filter(
            lambda p: p not in ("sitting", "standing", "walking", "lying", "unknown")))
    elif choice == 4:  # something other than a metric on the metrics topic
        msg = envelope(dev, seq, "metrics")
        msg["type"] = draw(st.sampled_from(("slouch_start", "metrics", "status")))
    else:  # a required key missing
        msg = envelope(dev, seq, "events")
        del msg[draw(st.sampled_from(("v", "device", "seq", "ts", "type", "data")))]
    kind = "metrics" if msg.get("type") == "metric" or choice in (2, 3, 4) else "events"
    return f"spinesense/{dev}/{kind}", dumps(msg)


BAD = st.one_of(wrong_type(), huge_value(), non_finite(), deep_nesting(), wrong_device(),
                bad_utf8(), oversize(), not_a_message(), bad_fields())


def generate_bad(n: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(BAD)
    def collect(item: tuple[str, bytes]) -> None:
        out.append(item)

    while len(out) < n:
        collect()
    return out[:n]


def test_ten_thousand_bad_payloads_are_rejected_and_good_ones_stored(
        mosquitto_factory, influxd, unique_db, tmp_path: Path):
    bad = generate_bad(N_BAD)
    assert max(len(p) for _, p in bad) >= 1_048_576  # the 1 MB messages are in there
    broker = mosquitto_factory()
    dead = tmp_path / "dead.jsonl"
    cfg = write_config(tmp_path / "c.toml", mqtt_port=broker.port, influx_url=influxd.url,
                       db=unique_db, collector={"dead_letter_file": str(dead), "group": ""})
    collector = CollectorProc(cfg, "fuzz", tmp_path).start()
    pub = Publisher(broker.port)
    good = 0
    for i, (topic, payload) in enumerate(bad):
        pub.publish(topic, payload)
        if i % 10 == 0:
            pub.publish("spinesense/good/events",
                        encode(make_message("good", good, NOW - 3_600_000 + good,
                                            "slouch_end", {"duration_s": 12.5})))
            good += 1
    pub.wait_acked(120)
    wait_for(lambda: count_points(influxd, unique_db, "posture_event", "good") >= good, 60,
             what="good events stored")

    def dead_lines() -> int:
        return dead.read_text().count("\n") if dead.exists() else 0
    wait_for(lambda: dead_lines() >= N_BAD, 60, what=f"{N_BAD} dead letters")
    time.sleep(1.0)
    assert collector.proc is not None and collector.proc.poll() is None, "collector died"
    assert count_points(influxd, unique_db, "posture_event", "good") == good
    # nothing bad was stored under any device
    for dev in DEVICES:
        for meas in ("posture_event", "posture", "device_status"):
            assert count_points(influxd, unique_db, meas, dev) == 0, (dev, meas)
    assert dead_lines() == N_BAD
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert all(r["reason"] for r in records)
    assert any("payload_b64" in r for r in records)  # invalid UTF-8 kept, as base64
    assert collector.terminate() == 0
    assert "Traceback" not in collector.log()
    assert f'"rejected":{N_BAD}' in collector.log()
    pub.close()
