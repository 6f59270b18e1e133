"""The real servers start, answer and stop (the harness the other tests rely on)."""

import paho.mqtt.client as mqtt
import pytest

from spinesense.devservers import InfluxD, Mosquitto, ServerError, require_binary


def test_influxd_accepts_writes_and_queries(influxd: InfluxD, unique_db: str) -> None:
    import urllib.request
    req = urllib.request.Request(f"{influxd.url}/write?db={unique_db}&precision=ms",
                                 data=b"m,device=a v=1 1700000000000\nm,device=a v=2 1700000000001",
                                 method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 204
    rows = influxd.rows("SELECT count(v) FROM m", unique_db)
    assert rows[0]["count"] == 2


def test_mosquitto_round_trip(mosquitto: Mosquitto) -> None:
    got: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_message = lambda _c, _u, msg: got.append(msg.payload)
    c.connect("127.0.0.1", mosquitto.port)
    c.subscribe("t/x", qos=1)
    c.loop_start()
    try:
        import time
        time.sleep(0.2)
        c.publish("t/x", b"hello", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        c.loop_stop()
        c.disconnect()
    assert got == [b"hello"]


def test_missing_binary_is_a_loud_error() -> None:
    with pytest.raises(ServerError, match="apt-get install nosuchpkg"):
        require_binary("no-such-server-binary", "nosuchpkg")
