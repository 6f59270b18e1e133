"""Helpers for the collector tests and benchmark: config files, a collector subprocess,
and a fast QoS 1 publisher. Real servers only (see conftest.py)."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from spinesense.schema import encode, make_message

ROOT = Path(__file__).resolve().parent.parent


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, *, mqtt_port: int, influx_url: str, db: str,
                 collector: dict[str, Any] | None = None,
                 mqtt_extra: dict[str, Any] | None = None) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, **(mqtt_extra or {})},
        "influx": {"api": "v1", "url": influx_url, "database": db, "timeout_s": 5.0},
        "collector": {"stats_interval_s": 1.0, "dead_letter_topic": "",
                      **(collector or {})},
    }
    text = "".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in sec.items())
                   + "\n" for name, sec in sections.items())
    path.write_text(text)
    return path


_STARTED: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    """A failed test must not leave collectors running: kill ours (by process)."""
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()


class CollectorProc:
    """`spinesense collector run` as a child process (so it can be SIGKILLed)."""

    def __init__(self, config: Path, instance: str, workdir: Path):
        self.config, self.instance = config, instance
        self.log_path = workdir / f"collector-{instance}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> CollectorProc:
        """Start and wait until it has subscribed."""
        return self.spawn().wait_ready("subscribed to", timeout)

    def spawn(self) -> CollectorProc:
        self._mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spinesense", "collector", "run", "--config",
             str(self.config), "--instance", self.instance],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
        _STARTED.append(self.proc)
        log.close()
        return self

    def wait_ready(self, marker: str, timeout: float = 20.0) -> CollectorProc:
        """Wait until the log (since the last spawn) contains ``marker``."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while marker not in self.log()[self._mark:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"collector exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"collector did not log {marker!r}: {self.log()}")
            time.sleep(0.01)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout)
        return self.proc.returncode if self.proc else 0


def event(device: str, seq: int, ts_ms: int, type_: str = "slouch_start") -> bytes:
    return encode(make_message(device, seq, ts_ms, type_,
                               {"onset": ts_ms - 5000, "peak_deg": 20.0 + seq % 7}))


def metric(device: str, seq: int, ts_ms: int) -> bytes:
    return encode(make_message(device, seq, ts_ms, "metric", {
        "interval_s": 10.0, "flexion_mean": 5.5, "flexion_max": 21.0, "lateral_mean": 1.0,
        "slouch_s": 2.0, "sitting_s": 8.0, "standing_s": 2.0, "walking_s": 0.0,
        "lying_s": 0.0, "unknown_s": 0.0, "steps": 0.0, "cadence_spm": 0.0,
        "intensity": 12.0, "bout_s": 600.0, "posture": "sitting"}))


class Publisher:
    """A QoS 1 publisher that keeps many messages in flight and can wait for all PUBACKs."""

    def __init__(self, port: int, client_id: str = "", *, username: str = "",
                 password: str = "", v5: bool = True, inflight: int = 1000):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)
        self.acked = 0
        self.reasons: list[Any] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.connect_rc: Any = None

        def on_connect(_c, _u, _f, rc, _p=None):
            self.connect_rc = rc
            if not rc.is_failure:
                self.connected.set()

        def on_publish(_c, _u, _mid, rc, _p=None):
            with self._lock:
                self.acked += 1
                self.reasons.append(rc)
        self.client.on_connect = on_connect
        self.client.on_publish = on_publish
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        if not self.connected.wait(10):
            self.close()
            raise RuntimeError(f"publisher could not connect: {self.connect_rc}")
        self.sent = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {info.rc}")
        self.sent += 1

    def wait_acked(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.acked}/{self.sent} PUBACKs after {timeout}s")
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count_points(influx: Any, db: str, measurement: str, device: str | None = None) -> int:
    where = f" WHERE device = '{device}'" if device else ""
    try:
        rows = influx.rows(f'SELECT count("seq") FROM "{measurement}"{where}', db)
    except Exception as exc:  # the collector creates the database on its first write
        if "database not found" in str(exc):
            return 0
        raise
    return int(rows[0]["count"]) if rows else 0


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met after {timeout}s (last: {value!r})")
        time.sleep(interval)


def rss_mb(pid: int) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 1e6


os.environ.setdefault("PYTHONUNBUFFERED", "1")
