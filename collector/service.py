"""The collector: MQTT (QoS 1, persistent session, shared subscription) → InfluxDB.

Delivery is at-least-once end to end. A message is acknowledged to the broker only after
the InfluxDB write that contains it succeeded (paho ``manual_ack``), so a crash at any
moment leaves the unacknowledged messages in the broker's session, and they are
redelivered. Point identity is deterministic (see points.py), so a redelivered message
overwrites its earlier copy: nothing is lost and nothing is duplicated.

Threads: paho's network thread validates and formats each message into the pending batch
(``on_message``); the writer thread takes batches (by size, age or a lull in traffic),
writes them with retries and backoff, then acknowledges them in arrival order. Memory is
bounded: the broker sends at most ``receive maximum`` unacknowledged messages (MQTT v5;
for 3.1.1 the broker's max_inflight_messages), and if more arrive anyway on_message blocks,
which stops reading the socket, so TCP pushes back to the broker.

End to end: after each write, the collector publishes per device the highest seq up to
which everything is stored (retained, ``<prefix>/<device>/stored``; see marks.py). The
edge deletes its spool only up to that mark, so a message the broker acknowledged and
then lost (a crash, a restart that dropped a shared subscription) is sent again.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from spinesense.collector.deadletter import DeadLetter
from spinesense.collector.marks import Mark, Watermarks, mark_of, rejected_mark_of
from spinesense.collector.points import Stats, message_to_line, stats_to_line
from spinesense.collector.validate import Rejected, Validator
from spinesense.collector.writers import (
    AuthError,
    RetryableError,
    Writer,
    make_writer,
    write_isolating,
)
from spinesense.config import Config

log = logging.getLogger("spinesense.collector")

IDLE_FLUSH_S = 0.02      # a lull this long in traffic flushes a partial batch
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 30.0
RECEIVE_MAXIMUM_CAP = 65535  # MQTT v5's largest receive maximum
RECONNECT_MIN_S = 0.5
MQTT_STOP_S = 10.0        # how long stop() waits for paho's network thread
# Payloads and lines held for unacknowledged messages at most: valid messages can be
# large (up to max_payload_bytes), so the in-flight window alone does not bound memory.
HELD_BYTES_MAX = 32 * 1024 * 1024


# A pending item: (line or None if rejected/self-metric-free, mid, qos, generation,
# topic, payload, (device, seq, prev) for the stored mark or None). Rejected messages stay
# in the batch (already dead-lettered) so that acknowledgements go out in arrival order,
# as MQTT asks.
_Item = tuple[str | None, int, int, int, str, bytes, Mark | None]


def _item_bytes(item: _Item) -> int:
    """What a pending item holds (its line and payload), for the memory bound."""
    return len(item[5]) + (len(item[0]) if item[0] is not None else 0)


def default_instance() -> str:
    return socket.gethostname().split(".")[0] or "collector"


class Collector:
    """One collector process (or several, in one shared-subscription group)."""

    def __init__(self, cfg: Config, instance: str = "", writer: Writer | None = None):
        self.cfg = cfg
        cc, mc = cfg.collector, cfg.mqtt
        self.instance = instance or default_instance()
        self.client_id = (cc.client_id or "spinesense-collector") + f"-{self.instance}"
        self.prefix = mc.topic_prefix
        self.validator = Validator(mc.topic_prefix, cc.max_payload_bytes)
        self.writer: Writer = writer or make_writer(cfg.influx)
        self.v5 = mc.protocol == "v5"
        self.window = min(cc.max_inflight, RECEIVE_MAXIMUM_CAP) if self.v5 else cc.max_inflight
        # half the window, so one batch fills while the previous one is being written
        self.flush_at = max(1, min(cc.batch_size, self.window // 2))
        self.stats = Stats()
        self._pending: list[_Item] = []
        self._writing = 0
        self._held_bytes = 0  # pending + being written (payloads and lines)
        self._first_t = 0.0
        self._last_t = 0.0
        self._cond = threading.Condition(threading.Lock())  # not re-entrant: cheaper
        self._stop = threading.Event()
        self._gen = 0
        self._connected = threading.Event()
        self._last_connect_warning = -1e9
        self._thread: threading.Thread | None = None
        self._stats_thread: threading.Thread | None = None
        self._stats_lines: deque[str] = deque(maxlen=10_000)
        self.marks = Watermarks(self.prefix, self.instance)
        self.client = self._make_client()
        dl_pub = None
        if cc.dead_letter_topic:
            topic = cc.dead_letter_topic
            dl_pub = lambda payload: self.client.publish(topic, payload, qos=1)  # noqa: E731
        self.dead_letter = DeadLetter(cc.dead_letter_file, dl_pub)

    # -- MQTT side -----------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        mc = self.cfg.mqtt
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
            clean_session=None if self.v5 else False,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311, manual_ack=True)
        if mc.username:
            client.username_pw_set(mc.username, mc.password or None)
        if mc.tls:
            client.tls_set(ca_certs=mc.ca_file or None, certfile=mc.cert_file or None,
                           keyfile=mc.key_file or None)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(RECONNECT_MIN_S, max(RECONNECT_MIN_S, mc.reconnect_max_s))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_connect_fail = self._on_connect_fail
        return client

    def topics(self) -> list[str]:
        group = self.cfg.collector.group
        share = f"$share/{group}/" if group else ""
        return [f"{share}{self.prefix}/+/{kind}" for kind in ("events", "metrics", "status")]

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, rc: Any,
                    _p: Any = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker %s:%s refused the connection: %s (check [mqtt] username/"
                      "password and the broker's ACL)", self.cfg.mqtt.host,
                      self.cfg.mqtt.port, rc)
            return
        with self._cond:
            self._gen += 1
        # every collector reads every stored mark (plain, QoS 0: a lost one is republished)
        stored = f"{self.prefix}/+/stored"
        if self.v5:
            subs = [(t, SubscribeOptions(qos=1)) for t in self.topics()]
            subs.append((stored, SubscribeOptions(qos=0)))
        else:
            subs = [(t, 1) for t in self.topics()] + [(stored, 0)]
        self.marks.forget_topic()  # a broker restarted without persistence lost them
        client.subscribe(subs)
        log.info("connected to %s:%s as %s (session %s); subscribed to %s",
                 self.cfg.mqtt.host, self.cfg.mqtt.port, self.client_id,
                 "resumed" if flags.session_present else "new", ", ".join(self.topics()))
        self._connected.set()

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        now = time.monotonic()
        if now - self._last_connect_warning > 30:
            self._last_connect_warning = now
            log.warning("cannot reach the MQTT broker at %s:%s; retrying",
                        self.cfg.mqtt.host, self.cfg.mqtt.port)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the MQTT broker (%s); reconnecting", rc)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic, payload = msg.topic, msg.payload
        if topic.endswith("/stored"):
            self.marks.merge(topic.split("/")[-2], payload)
            return
        try:
            kind, device, body = self.validator.check(topic, payload)
            line: str | None = message_to_line(kind, body)
            mark = mark_of(kind, device, body)
        except (Rejected, ValueError) as exc:
            self.dead_letter.put(topic, payload, getattr(exc, "reason", str(exc)))
            line = None
            mark = rejected_mark_of(self.validator, topic, payload)
            topic, payload = "", b""  # dead-lettered: hold only what the ack needs
        now = time.monotonic()
        with self._cond:
            self.stats.msgs_in += 1
            if line is None:
                self.stats.rejected += 1
            pending = self._pending
            if not pending:
                self._first_t = now
            self._last_t = now
            pending.append((line, msg.mid, msg.qos, self._gen, topic, payload, mark))
            self._held_bytes += _item_bytes(pending[-1])
            n = len(pending)
            if n >= self.flush_at or self._held_bytes >= HELD_BYTES_MAX // 2:
                self._cond.notify()
            # hard backpressure: a broker that ignores our receive maximum, or large
            # messages, must not grow our memory without bound; blocking here stops
            # reading the socket.
            while ((n + self._writing >= self.cfg.collector.max_inflight
                    or self._held_bytes >= HELD_BYTES_MAX) and not self._stop.is_set()):
                self._cond.wait(0.5)
                n = len(self._pending)

    # -- InfluxDB side -------------------------------------------------------------
    def _take(self, timeout: float) -> list[_Item]:
        """Wait until a batch is due (size, age, lull or stop) and take it."""
        cc = self.cfg.collector
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                n = len(self._pending)
                if n and (n >= self.flush_at or self._stop.is_set()
                          or self._held_bytes >= HELD_BYTES_MAX // 2
                          or now - self._first_t >= cc.flush_interval_s
                          or now - self._last_t >= IDLE_FLUSH_S):
                    batch = self._pending[:cc.batch_size]
                    del self._pending[:cc.batch_size]
                    if self._pending:
                        self._first_t = now
                    self._writing = len(batch)
                    return batch
                if self._stop.is_set() or now >= deadline:
                    return []
                wait = deadline - now
                if n:
                    wait = min(wait, IDLE_FLUSH_S, cc.flush_interval_s)
                self._cond.wait(wait)

    def _write(self, batch: list[_Item], extra: list[str], give_up_at: float | None) -> bool:
        """Write a batch until it succeeds; False if stopping and give_up_at has passed.
        Only outages are retried: a refused point is dead-lettered (and its payload
        released) the moment it is isolated, and left out of any later retry."""
        index = [i for i, item in enumerate(batch) if item[0] is not None]
        lines = [batch[i][0] for i in index] + extra
        bad: set[int] = set()
        backoff = BACKOFF_FIRST_S
        t0 = time.monotonic()

        def refused(i: int, why: str) -> None:
            bad.add(i)
            self._refused(batch, index, i, why)
        while len(bad) < len(lines):
            todo = [i for i in range(len(lines)) if i not in bad]
            try:
                write_isolating(self.writer.write, [lines[i] for i in todo],
                                lambda j, why, todo=todo: refused(todo[j], why))
                break
            except Exception as exc:  # an outage (write_isolating classified the rest)
                self.stats.retries += 1
                level = logging.ERROR if isinstance(exc, AuthError) else logging.WARNING
                log.log(level, "InfluxDB write of %d points failed (%s); retrying in %.1fs",
                        len(todo), exc, backoff,
                        exc_info=not isinstance(exc, RetryableError))
                if give_up_at is not None and time.monotonic() + backoff > give_up_at:
                    return False
                if give_up_at is not None:
                    time.sleep(backoff)  # stopping: still back off, until give_up_at
                elif self._stop.wait(backoff):
                    give_up_at = time.monotonic() + self.cfg.influx.timeout_s
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        self.stats.points_written += len(lines) - len(bad)
        self.stats.batches += 1
        self.stats.latency_sum_ms += (time.monotonic() - t0) * 1000
        self.stats.latency_n += 1
        return True

    def _refused(self, batch: list[_Item], index: list[int], i: int, why: str) -> None:
        """Dead-letter the message of refused line ``i`` now and drop its payload."""
        if i >= len(index):
            log.error("InfluxDB refused a self-metrics point: %s", why)
            return
        _line, mid, qos, gen, topic, payload, mark = batch[index[i]]
        self.dead_letter.put(topic, payload, f"InfluxDB refused the point: {why}")
        released = _item_bytes(batch[index[i]])
        batch[index[i]] = (None, mid, qos, gen, "", b"", mark)
        with self._cond:
            self._held_bytes -= released
        self.stats.rejected += 1

    def _ack(self, batch: list[_Item]) -> None:
        """Acknowledge a written batch to the broker, then advance the stored marks."""
        gen = self._gen
        for _line, mid, qos, item_gen, _t, _p, _m in batch:
            # an ack from an earlier connection would name the wrong message: skip it,
            # the broker redelivers and the rewrite is harmless
            if qos and item_gen == gen:
                self.client.ack(mid, qos)
        self.marks.settled(item[6] for item in batch if item[6] is not None)

    def _publish_marks(self) -> None:
        """Publish every device's stored mark that the broker does not show yet."""
        for topic, payload in self.marks.due():
            self.client.publish(topic, payload, qos=1, retain=True)

    def _stats_loop(self) -> None:
        """Log the self-metrics and queue them as a point, also while InfluxDB is down."""
        interval = self.cfg.collector.stats_interval_s
        last_in, last_t = 0, time.monotonic()
        while not self._stop.wait(interval):
            last_in, last_t = self._emit_stats(last_in, last_t)
        self._emit_stats(last_in, last_t)

    def _emit_stats(self, last_in: int, last_t: float) -> tuple[int, float]:
        now = time.monotonic()
        rate = (self.stats.msgs_in - last_in) / max(now - last_t, 1e-9)
        with self._cond:
            backlog = len(self._pending) + self._writing
        snap = self.stats.snapshot(backlog, rate)
        log.info("stats %s", json.dumps(snap, separators=(",", ":")))
        self._stats_lines.append(stats_to_line(self.instance, snap, int(time.time() * 1000)))
        return self.stats.msgs_in, now

    def _writer_loop(self) -> None:
        give_up_at: float | None = None
        while True:
            stopping = self._stop.is_set()
            if stopping and give_up_at is None:
                give_up_at = time.monotonic() + self.cfg.influx.timeout_s + 5
            batch = self._take(self.cfg.collector.flush_interval_s)
            extra: list[str] = []
            while self._stats_lines:
                extra.append(self._stats_lines.popleft())
            if batch or extra:
                ok = self._write(batch, extra, give_up_at)
                if ok:
                    self._ack(batch)
                    self._publish_marks()
                else:
                    log.warning("stopping with %d messages unwritten: not acknowledged, the "
                                "broker redelivers them", len(batch))
            elif self._connected.is_set():
                self._publish_marks()  # what merging another collector's mark taught us
            with self._cond:
                self._writing = 0
                self._held_bytes -= sum(_item_bytes(item) for item in batch)
                self._cond.notify_all()
                if stopping and not batch:
                    return
                if stopping and give_up_at is not None and time.monotonic() > give_up_at:
                    return

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> Collector:
        mc = self.cfg.mqtt
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.cfg.collector.session_expiry_s
            props.ReceiveMaximum = self.window
        clean = False if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY  # v3: clean_session
        self.client.connect_async(mc.host, mc.port, mc.keepalive_s, clean_start=clean,
                                  properties=props)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._writer_loop, name="influx-writer",
                                        daemon=True)
        self._thread.start()
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats",
                                              daemon=True)
        self._stats_thread.start()
        log.info("collector %s: %s → InfluxDB %s (%s), batch %d, window %d",
                 self.instance, f"{mc.host}:{mc.port}", self.cfg.influx.url,
                 self.cfg.influx.api, self.flush_at, self.window)
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        """Flush what is pending, acknowledge it, then disconnect (the session stays)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._stats_thread is not None:
            self._stats_thread.join(5)
        if self._thread is not None:
            self._thread.join(self.cfg.influx.timeout_s + 30)
        self.client.disconnect()
        # paho's loop_stop() joins its network thread without a timeout; a thread stuck in
        # a reconnect must not keep the service from stopping (systemd would SIGKILL it)
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt-stop",
                                   daemon=True)
        stopper.start()
        stopper.join(MQTT_STOP_S)
        if stopper.is_alive():
            log.warning("the MQTT network thread did not stop within %g s; exiting anyway "
                        "(the broker redelivers what was not acknowledged)", MQTT_STOP_S)
        self.writer.close()
        self.dead_letter.close()
        log.info("collector %s stopped: %d in, %d written, %d rejected", self.instance,
                 self.stats.msgs_in, self.stats.points_written, self.stats.rejected)
