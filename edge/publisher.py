"""MQTT side of the edge: publish from the spool in seq order, delete only on PUBACK.

paho-mqtt 2.x runs its network loop in its own thread (``loop_start``); everything that
touches the spool or the pipeline stays on the service's thread. The paho thread only
records PUBACK message ids and incoming commands in thread-safe queues, and ``pump()``
(called by the live loop) turns them into spool deletes and hands the next spooled
messages to paho, at most ``inflight`` unacknowledged at a time and at most
``replay_rate`` per second.

Ordering and delivery: paho keeps unacknowledged QoS 1 messages across a reconnect and
resends them first (with DUP set), so messages reach the broker in seq order. The session
is persistent (MQTT 5 ``clean_start=False`` with a session expiry, or a 3.1.1 non-clean
session), so commands queued for the device while it was away are delivered too.
Reconnects back off exponentially with jitter, so a fleet does not stampede a restarted
broker.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from spinesense import __version__, schema
from spinesense.config import Config
from spinesense.edge.spool import Spool

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps the device's session (and cmds) a week
RECONNECT_MIN_S = 0.5


class Publisher:
    """One device's MQTT connection: spooled messages out, commands in, status retained."""

    def __init__(self, cfg: Config, *, inflight: int = 64, client_id: str | None = None,
                 wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 synced: Callable[[], bool] = lambda: True):
        m = cfg.mqtt
        self.cfg, self.device, self.wall_ms, self.synced = cfg, cfg.device.id, wall_ms, synced
        self.topics = {k: schema.topic(m.topic_prefix, self.device, k) for k in schema.KINDS}
        self.inflight = inflight
        self.rate = cfg.spool.replay_rate
        self.reconnect_max_s = m.reconnect_max_s
        self.v5 = m.protocol == "v5"
        self.client_id = client_id or f"spinesense-edge-{self.device}"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else False)
        if m.username:
            self.client.username_pw_set(m.username, m.password or None)
        if m.tls:
            self.client.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None,
                                keyfile=m.key_file or None)
        self.client.max_inflight_messages_set(inflight + 32)  # + status and replies
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: None
        self.connected = threading.Event()
        self.commands: queue.Queue[tuple[bytes, bool]] = queue.Queue(maxsize=100)
        self._acked: collections.deque[tuple[int, bool, str]] = collections.deque()
        self._sent: dict[int, int] = {}  # paho mid -> seq, not yet acknowledged
        self._last_handed = 0            # highest seq handed to paho
        self._attempt = 0
        self._tokens = float(inflight)
        self._last_refill = time.monotonic()
        self.status_due = threading.Event()
        self.published = 0
        self.refused = 0
        self._will_ts = 0
        self._set_will()
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MIN_S)

    # -- connection ---------------------------------------------------------------------
    def start(self) -> None:
        m = self.cfg.mqtt
        kwargs: dict[str, Any] = {}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs = {"clean_start": False, "properties": props}
        log.info("MQTT: connecting to %s:%d as %s (%s%s)", m.host, m.port, self.client_id,
                 m.protocol, ", TLS" if m.tls else "")
        self.client.connect_async(m.host, m.port, m.keepalive_s, **kwargs)
        self.client.loop_start()

    def _set_will(self) -> None:
        """Offline status the broker publishes (retained) if we vanish without a goodbye."""
        self._will_ts = self.wall_ms()
        msg = schema.make_message(self.device, 0, self._will_ts, "status",
                                  {"state": "offline", "reason": "connection lost",
                                   "version": __version__}, synced=self.synced())
        self.client.will_set(self.topics["status"], schema.encode(msg), qos=1, retain=True)

    def _backoff(self) -> None:
        """Equal-jitter exponential backoff for paho's next reconnect attempt."""
        cap = min(self.reconnect_max_s, RECONNECT_MIN_S * 2 ** min(self._attempt, 16))
        delay = cap / 2 + random.uniform(0, cap / 2)
        self._attempt += 1
        self.client.reconnect_delay_set(delay, delay)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT: broker refused the connection: %s", reason_code)
            self._backoff()
            return
        self._attempt = 0
        log.info("MQTT: connected (session %s)",
                 "resumed" if flags.session_present else "new")
        client.subscribe(self.topics["cmd"], qos=1)
        self.connected.set()
        self.status_due.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            log.warning("MQTT: disconnected (%s); %d messages in flight will be resent",
                        reason_code, len(self._sent))
        self.connected.clear()
        self._set_will()
        self._backoff()

    def _on_connect_fail(self, client, userdata) -> None:
        log.debug("MQTT: connection attempt failed")
        self._backoff()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked.append((mid, reason_code.is_failure, str(reason_code)))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        try:
            self.commands.put_nowait((msg.payload, bool(msg.retain)))
        except queue.Full:
            log.warning("MQTT: command queue full; dropped a command")

    # -- publishing ---------------------------------------------------------------------
    def pump(self, spool: Spool) -> int:
        """Delete acknowledged messages, then hand the next ones to paho; returns how many
        were handed over."""
        self._process_acks(spool)
        if not self.connected.is_set() or spool.next_seq - 1 <= self._last_handed:
            return 0  # offline, or everything spooled is already with paho
        now = time.monotonic()
        self._tokens = min(max(self.rate, self.inflight),
                           self._tokens + (now - self._last_refill) * self.rate)
        self._last_refill = now
        budget = min(self.inflight - len(self._sent), int(self._tokens))
        if budget <= 0:
            return 0
        rows = spool.fetch(self._last_handed, budget)
        for seq, kind, payload in rows:
            info = self.client.publish(self.topics[kind], payload, qos=1)
            self._sent[info.mid] = seq
            self._last_handed = seq
        self._tokens -= len(rows)
        self.published += len(rows)
        return len(rows)

    def _process_acks(self, spool: Spool) -> None:
        done: list[int] = []
        while self._acked:
            mid, failed, reason = self._acked.popleft()
            seq = self._sent.pop(mid, None)
            if seq is None:
                continue  # status or command reply
            if failed:
                self.refused += 1
                log.error("MQTT: broker refused seq %d (%s); it stays spooled and is retried "
                          "at the next start", seq, reason)
            else:
                done.append(seq)
        if done:
            spool.ack(done)

    @property
    def last_handed(self) -> int:
        return self._last_handed

    @property
    def unacked(self) -> int:
        return len(self._sent)

    def drain(self, spool: Spool, timeout: float, step: Callable[[], None] | None = None
              ) -> bool:
        """Publish until the spool is empty and all is acknowledged, or the timeout."""
        deadline = time.monotonic() + timeout
        while spool.backlog > 0 or self._sent:
            self.pump(spool)
            if step:
                step()
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def publish_status(self, data: dict[str, Any]) -> mqtt.MQTTMessageInfo:
        """The retained device status (never older than the will it replaces)."""
        ts = max(self.wall_ms(), self._will_ts + 1)
        msg = schema.make_message(self.device, 0, ts, "status", data, synced=self.synced())
        return self.client.publish(self.topics["status"], schema.encode(msg), qos=1,
                                   retain=True)

    def reply(self, type_: str, data: dict[str, Any]) -> None:
        """A command result on the status topic, not retained (the status stays)."""
        msg = schema.make_message(self.device, 0, self.wall_ms(), type_, data,
                                  synced=self.synced())
        self.client.publish(self.topics["status"], schema.encode(msg), qos=1)

    def stop(self, final_status: dict[str, Any] | None = None, timeout: float = 3.0) -> None:
        """Say goodbye (retained offline status), then disconnect cleanly."""
        if final_status is not None and self.connected.is_set():
            info = self.publish_status(final_status)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("MQTT: offline status not confirmed: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()
