"""Per-device stored watermarks: what the collector tells each edge it may delete.

A device's seqs are *settled* when they are stored in InfluxDB (or dead-lettered: a
re-send cannot change that verdict), or when the edge says they will never come (its
``prev`` link: every seq strictly between ``prev`` and ``seq`` is stored already or was
dropped by its spool's bound). The mark is the highest seq up to which every seq is
settled. It is published retained on ``<prefix>/<device>/stored``::

    {"v":1,"device":"alice","seq":1234,"ts":1764071234567,"type":"stored",
     "data":{"above":[[1240,1251]],"by":"c1"}}

``above`` lists settled ranges past the mark (inclusive, at most ``MAX_PUBLISHED_RANGES``).
Several collectors in one shared group each store only part of a device's stream, so no
one of them sees it contiguously. Each one subscribes to every ``stored`` topic and merges
what the others published (the larger mark, the union of the ranges): settled sets only
grow, so the merge converges whatever the order. A collector republishes when it knows
more than the topic says, and when a device sends it something at or below the mark (the
edge evidently missed the mark, e.g. a broker restarted without persistence lost it).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from spinesense import schema
from spinesense.collector.validate import Rejected, Validator

MAX_PUBLISHED_RANGES = 64    # ranges past the mark in one stored message
MAX_KEPT_RANGES = 4096       # per device in memory; beyond, the highest are forgotten
REPUBLISH_MIN_S = 0.2        # a device's mark is published at most this often


# (device, seq, prev) of one sequenced message
Mark = tuple[str, int, int]


def mark_of(kind: str, device: str, msg: Any) -> Mark | None:
    """(device, seq, prev) of a sequenced message; prev defaults to seq - 1."""
    if kind == "status" or not isinstance(msg, dict) or msg.get("device") != device:
        return None
    seq, prev = msg.get("seq"), msg.get("prev")
    if type(seq) is not int or seq <= 0:
        return None
    return device, seq, prev if type(prev) is int and 0 <= prev < seq else seq - 1


def rejected_mark_of(validator: Validator, topic: str, payload: bytes) -> Mark | None:
    """A dead-lettered message is settled too: a re-send gets the same verdict. Its
    ``prev`` is not trusted (the message is not valid), so it settles only itself."""
    try:
        device, kind = validator.parse_topic(topic)
        mark = mark_of(kind, device, json.loads(payload))
    except (Rejected, ValueError, RecursionError):
        return None
    return None if mark is None else (mark[0], mark[1], mark[1] - 1)


@dataclass
class _Device:
    mark: int = 0
    ranges: list[list[int]] = field(default_factory=list)  # sorted, disjoint, > mark + 1
    topic_state: tuple[int, tuple[tuple[int, int], ...]] | None = None  # last seen on MQTT
    stale_seen: bool = False     # a message at or below the mark arrived
    published_at: float = -1e9

    def settle(self, lo: int, hi: int) -> None:
        """Mark lo..hi (inclusive) settled and fold what became contiguous into the mark."""
        if hi <= self.mark:
            return
        lo = max(lo, self.mark + 1)
        rs = self.ranges
        i = bisect.bisect_left(rs, [lo, lo]) - 1
        if i < 0 or rs[i][1] < lo - 1:
            i += 1
        j = i
        while j < len(rs) and rs[j][0] <= hi + 1:
            lo, hi = min(lo, rs[j][0]), max(hi, rs[j][1])
            j += 1
        rs[i:j] = [[lo, hi]]
        if rs[0][0] <= self.mark + 1:
            self.mark = rs.pop(0)[1]
        if len(rs) > MAX_KEPT_RANGES:
            del rs[MAX_KEPT_RANGES:]  # only liveness is lost: the edge re-sends those

    def published_form(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        return self.mark, tuple((lo, hi) for lo, hi in self.ranges[:MAX_PUBLISHED_RANGES])


def _covers(outer: tuple[int, tuple[tuple[int, int], ...]] | None,
            inner: tuple[int, tuple[tuple[int, int], ...]]) -> bool:
    """Whether the settled set ``outer`` includes all of ``inner``."""
    if outer is None:
        return False
    mark, ranges = outer
    if inner[0] > mark:
        return False
    for lo, hi in inner[1]:
        if hi <= mark:
            continue
        lo = max(lo, mark + 1)
        if not any(a <= lo and hi <= b for a, b in ranges):
            return False
    return True


class Watermarks:
    """Thread-safe: the writer thread settles, paho's thread merges the topic."""

    def __init__(self, prefix: str, instance: str):
        self.prefix, self.instance = prefix, instance
        self._devices: dict[str, _Device] = {}
        self._lock = threading.Lock()

    def topic(self, device: str) -> str:
        return schema.topic(self.prefix, device, "stored")

    def settled(self, items: Iterable[tuple[str, int, int]]) -> None:
        """(device, seq, prev) of messages now stored or dead-lettered."""
        with self._lock:
            for device, seq, prev in items:
                dev = self._devices.setdefault(device, _Device())
                if seq <= dev.mark:
                    dev.stale_seen = True
                dev.settle(prev + 1 if 0 <= prev < seq else seq, seq)

    def merge(self, device: str, payload: bytes) -> None:
        """A stored message from the broker (ours or another collector's)."""
        msg = schema_decode(payload)
        if msg is None or msg.get("device") != device:
            return
        mark = msg["seq"]
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        ranges = tuple(_ranges(data.get("above")))
        with self._lock:
            dev = self._devices.setdefault(device, _Device())
            if data.get("by") != self.instance:  # our own echo says nothing new
                dev.topic_state = (mark, ranges)
            if mark > 0:
                dev.settle(1, mark)
            for lo, hi in ranges:
                dev.settle(lo, hi)

    def forget_topic(self) -> None:
        """After a reconnect the broker may have lost the retained marks: republish all."""
        with self._lock:
            for dev in self._devices.values():
                dev.topic_state = None

    def due(self, now_ms: int | None = None) -> list[tuple[str, bytes]]:
        """(topic, payload) of every mark the topic does not show yet (throttled)."""
        now = time.monotonic()
        out = []
        with self._lock:
            for device, dev in self._devices.items():
                if dev.mark <= 0 and not dev.ranges:
                    continue
                form = dev.published_form()
                if _covers(dev.topic_state, form) and not dev.stale_seen:
                    continue
                advanced = dev.topic_state is None or form[0] > dev.topic_state[0]
                if not advanced and now - dev.published_at < REPUBLISH_MIN_S:
                    continue
                dev.topic_state, dev.stale_seen, dev.published_at = form, False, now
                msg = schema.make_message(
                    device, form[0], now_ms or int(time.time() * 1000), "stored",
                    {"above": [list(r) for r in form[1]], "by": self.instance})
                out.append((self.topic(device), schema.encode(msg)))
        return out

    def mark(self, device: str) -> int:
        with self._lock:
            dev = self._devices.get(device)
            return dev.mark if dev else 0


def schema_decode(payload: bytes) -> dict[str, Any] | None:
    """A stored message, or None if it is not one (never trusted beyond its shape)."""
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if (type(msg) is not dict or msg.get("type") != "stored"
            or type(msg.get("seq")) is not int or msg["seq"] < 0):
        return None
    return msg


def _ranges(value: Any) -> list[tuple[int, int]]:
    out = []
    if isinstance(value, list):
        for r in value[:MAX_PUBLISHED_RANGES]:
            if (isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)
                    and 0 < r[0] <= r[1]):
                out.append((r[0], r[1]))
    return out
