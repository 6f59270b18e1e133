"""MQTT side of the edge: publish from the spool in seq order, delete once stored.

paho-mqtt 2.x runs its network loop in its own thread (``loop_start``); everything that
touches the spool or the pipeline stays on the service's thread. The paho thread only
records PUBACKs, the collector's stored mark and incoming commands, and ``pump()``
(called by the live loop) turns them into spool deletes and hands the next spooled
messages to paho, at most ``inflight`` unacknowledged at a time and at most
``replay_rate`` per second.

End-to-end confirmation: a PUBACK only means the broker has the message. The collector
publishes (retained, on ``<prefix>/<device>/stored``) the highest seq up to which
everything is stored, and only that deletes from the spool. Whatever the broker
acknowledged but storage has not confirmed within ``spool.resend_after_s`` is sent again
from the mark on, in seq order and through the same rate limit; the wait doubles (up to
``RESEND_MAX_S``) while nothing gets confirmed, and resets when the mark moves. Each sent
message carries ``prev``, the next lower seq the spool still holds, so the collector can
step over seqs the spool's bound dropped for good.

Ordering and delivery: paho keeps unacknowledged QoS 1 messages across a reconnect and
resends them first (with DUP set), so messages reach the broker in seq order. The session
is persistent (MQTT 5 ``clean_start=False`` with a session expiry, or a 3.1.1 non-clean
session), so commands queued for the device while it was away are delivered too.
Reconnects back off exponentially with jitter, so a fleet does not stampede a restarted
broker.
"""

from __future__ import annotations

import collections
import json
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
MARK_WAIT_S = 1.0         # after connecting, wait this long for the retained stored mark
RESEND_MAX_S = 600.0      # the re-send wait doubles up to this while nothing is confirmed
OUTAGE_LOG_FIRST_S = 10.0  # "still unreachable" warnings: after 10 s, then doubling ...
OUTAGE_LOG_MAX_S = 600.0   # ... up to every 10 minutes


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
        self.delete_on = cfg.spool.delete_on
        self.resend_after_s = cfg.spool.resend_after_s
        self._resend_wait = self.resend_after_s
        self._stored_mark = 0            # highest mark seen on the stored topic (paho thread)
        self._mark_arrived = threading.Event()
        self._applied_mark = 0           # what the spool was last trimmed to
        self._warned_future_mark = False
        self._pubacked: collections.deque[list[float]] = collections.deque()  # [seq, t]
        self._handed_max = 0             # highest seq ever handed to paho (this run)
        self._resend_upto = 0            # re-sending up to here: skip what is in flight
        self.resent = 0                  # messages handed to paho again
        self._connected_at = 0.0
        self._stopping = False
        self._down_since: float | None = None  # monotonic start of a broker outage
        self._down_log_every = OUTAGE_LOG_FIRST_S
        self._down_log_next = 0.0
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
        self._down_since = time.monotonic()  # until the first connect succeeds
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
            self._note_unreachable(f"refused: {reason_code}")
            self._backoff()
            return
        self._attempt = 0
        down = self.outage_s
        log.info("MQTT: connected (session %s)%s",
                 "resumed" if flags.session_present else "new",
                 f" after {down:.0f} s without the broker" if down >= 1 else "")
        self._down_since = None
        self._down_log_every = OUTAGE_LOG_FIRST_S
        topics = [(self.topics["cmd"], 1)]
        if self.delete_on == "stored":
            topics.append((self.topics["stored"], 1))
        client.subscribe(topics)
        self._connected_at = time.monotonic()
        self.connected.set()
        self.status_due.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set() and not self._stopping:
            log.warning("MQTT: disconnected (%s); %d messages in flight will be resent",
                        reason_code, len(self._sent))
            self._down_since = time.monotonic()
            self._down_log_next = self._down_since + self._down_log_every
        self.connected.clear()
        self._set_will()
        self._backoff()

    def _on_connect_fail(self, client, userdata) -> None:
        self._note_unreachable("no connection")
        self._backoff()

    def _note_unreachable(self, why: str) -> None:
        """Warn at the first failure, then at doubling intervals with the outage so far."""
        now = time.monotonic()
        m = self.cfg.mqtt
        if self._down_since is None:
            self._down_since = now
        if self._down_log_next == 0.0:
            log.warning("MQTT: cannot reach the broker at %s:%d (%s); retrying, at most "
                        "every %.0f s", m.host, m.port, why, self.reconnect_max_s)
            self._down_log_next = now + self._down_log_every
        elif now >= self._down_log_next:
            log.warning("MQTT: the broker at %s:%d has been unreachable for %.0f s (%s); "
                        "still retrying", m.host, m.port, now - self._down_since, why)
            self._down_log_every = min(self._down_log_every * 2, OUTAGE_LOG_MAX_S)
            self._down_log_next = now + self._down_log_every

    @property
    def outage_s(self) -> float:
        """How long the broker has been out of reach (0 while connected)."""
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acked.append((mid, reason_code.is_failure, str(reason_code)))

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics["stored"]:
            self._on_stored(msg.payload)
            return
        try:
            self.commands.put_nowait((msg.payload, bool(msg.retain)))
        except queue.Full:
            log.warning("MQTT: command queue full; dropped a command")

    def _on_stored(self, payload: bytes) -> None:
        """The collector's stored mark (paho thread): only ever raises what we know."""
        try:
            msg = json.loads(payload)
        except ValueError:
            msg = None
        if (not isinstance(msg, dict) or msg.get("device") != self.device
                or type(msg.get("seq")) is not int or msg["seq"] < 0):
            log.warning("MQTT: ignored a malformed stored mark: %r", payload[:200])
            return
        self._stored_mark = max(self._stored_mark, msg["seq"])
        self._mark_arrived.set()

    # -- publishing ---------------------------------------------------------------------
    def pump(self, spool: Spool) -> int:
        """Delete confirmed messages, re-send overdue ones, then hand the next ones to
        paho; returns how many were handed over."""
        self._process_acks(spool)
        stored = self.delete_on == "stored"
        if stored:
            self._apply_mark(spool)
        if not self.connected.is_set():
            return 0
        if stored:
            if (not self._mark_arrived.is_set()
                    and time.monotonic() - self._connected_at < MARK_WAIT_S):
                return 0  # the retained mark may spare us re-sending what is stored
            self._maybe_resend(spool)
        if spool.next_seq - 1 <= self._last_handed:
            return 0  # everything spooled is already with paho
        now = time.monotonic()
        self._tokens = min(max(self.rate, self.inflight),
                           self._tokens + (now - self._last_refill) * self.rate)
        self._last_refill = now
        budget = min(self.inflight - len(self._sent), int(self._tokens))
        if budget <= 0:
            return 0
        rows = spool.fetch(self._last_handed, budget)
        if not rows:
            return 0
        prev = spool.prev_seq(rows[0][0]) if stored else 0
        in_flight = set(self._sent.values()) if rows[0][0] <= self._resend_upto else set()
        handed = 0
        for seq, kind, payload in rows:
            self._last_handed = seq
            if seq in in_flight:  # still with paho from the first send
                prev = seq
                continue
            if stored:
                payload = schema.with_prev(payload, prev)
            info = self.client.publish(self.topics[kind], payload, qos=1)
            self._sent[info.mid] = seq
            if seq <= self._handed_max:
                self.resent += 1
            self._handed_max = max(self._handed_max, seq)
            prev = seq
            handed += 1
        self._tokens -= handed
        self.published += handed
        return handed

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
        if not done:
            return
        if self.delete_on == "puback":
            spool.ack(done)
            return
        # remember when the broker took them; one entry per half second keeps this small
        now, top = time.monotonic(), max(done)
        if self._pubacked and now - self._pubacked[-1][1] < 0.5:
            self._pubacked[-1][0] = max(self._pubacked[-1][0], top)
        else:
            self._pubacked.append([top, now])

    def _apply_mark(self, spool: Spool) -> None:
        """Delete what storage confirmed (never on a mark from a previous spool)."""
        mark = self._stored_mark
        if mark <= self._applied_mark:
            return
        if mark >= spool.next_seq:
            if not self._warned_future_mark:
                self._warned_future_mark = True
                log.warning("MQTT: the stored mark %d is beyond the last seq this spool "
                            "gave out (%d): it belongs to an earlier spool of device %s; "
                            "ignored", mark, spool.next_seq - 1, self.device)
            return
        spool.confirm(mark)
        self._applied_mark = mark
        while self._pubacked and self._pubacked[0][0] <= mark:
            self._pubacked.popleft()
        self._resend_wait = self.resend_after_s  # progress: back to the first wait
        self._last_handed = max(self._last_handed, mark)

    def _maybe_resend(self, spool: Spool) -> None:
        """Rewind to the mark when the broker took messages that never got stored."""
        if not self._pubacked:
            return
        seq, t = self._pubacked[0]
        waited = time.monotonic() - t
        if waited < self._resend_wait:
            return
        first, upto = self._applied_mark + 1, self._handed_max
        log.warning("storage has not confirmed seq %d..%d %.0f s after the broker took "
                    "them; re-sending %d messages from seq %d in order (next check in %.0f "
                    "s)", first, int(seq), waited, spool.count_upto(upto), first,
                    min(self._resend_wait * 2, RESEND_MAX_S))
        self._last_handed = self._applied_mark
        self._resend_upto = upto
        self._pubacked.clear()
        self._resend_wait = min(self._resend_wait * 2, RESEND_MAX_S)

    @property
    def last_handed(self) -> int:
        """The highest seq ever handed to MQTT: nothing at or below it may be re-stamped."""
        return self._handed_max

    @property
    def unacked(self) -> int:
        return len(self._sent)

    def unconfirmed(self, spool: Spool) -> int:
        """Messages sent but not yet confirmed: stored (or, with delete_on = "puback",
        acknowledged by the broker)."""
        if self.delete_on == "puback":
            return len(self._sent)
        return spool.count_upto(self._handed_max)

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
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
