"""Validation of incoming wire messages: everything a device sends is untrusted.

``Validator.check(topic, payload)`` returns ``(kind, device, message)`` for a message
that may be stored, or raises ``Rejected(reason)`` with a short, loggable reason. It checks
size, UTF-8, JSON (no NaN/Infinity, bounded nesting), the schema version, field types and
ranges, and that the device named in the payload is the device in the topic (so a
wearer cannot write into another wearer's history even if the broker's ACL were open).
Kept flat and allocation-light: it runs once per message on the collector's hot path.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from spinesense.schema import METRIC_FIELDS, POSTURES, SCHEMA_VERSION, TIME_KEYS

STORED_KINDS = ("events", "metrics", "status")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = frozenset({"seq", "synced", "time", "device", "type"})
MAX_DATA_KEYS = 64
MAX_STRING = 1024          # characters in a string field (status texts, error messages)
MAX_ABS = 1e15           # any other number
TS_MIN_MS = 946_684_800_000   # 2000-01-01: earlier means an unsynchronised clock
TS_FUTURE_MS = 86_400_000     # a day ahead at most
SEQ_MAX = 2**63 - 1

# Plausible ranges of the metric summary's fields (anything outside is a bug or forgery).
_DAY = 86_400.0
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "interval_s": (0.0, _DAY), "flexion_mean": (-180.0, 180.0),
    "flexion_max": (-180.0, 180.0), "lateral_mean": (-180.0, 180.0),
    "slouch_s": (0.0, _DAY), "sitting_s": (0.0, _DAY), "standing_s": (0.0, _DAY),
    "walking_s": (0.0, _DAY), "lying_s": (0.0, _DAY), "unknown_s": (0.0, _DAY),
    "steps": (0.0, 1e7), "cadence_spm": (0.0, 400.0), "intensity": (0.0, 1e6),
    "bout_s": (0.0, 365 * _DAY), "sample_rate_hz": (0.0, 10_000.0),
    "i2c_errors": (0.0, 1e12), "gap_s": (0.0, 1e10), "saturated": (0.0, 1e12),
    "spool_backlog": (0.0, 1e12), "unconfirmed": (0.0, 1e12),
}
assert set(METRIC_RANGES) == set(METRIC_FIELDS)
_POSTURES = frozenset(POSTURES)
_TIME_KEYS = frozenset(TIME_KEYS)


class Rejected(ValueError):
    """A message that must not be stored; ``reason`` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _no_constants(name: str) -> Any:
    raise Rejected(f"{name} is not a number InfluxDB can store")


_decoder = json.JSONDecoder(parse_constant=_no_constants)


class Validator:
    """Checks topic and payload against the wire schema (spinesense.schema)."""

    def __init__(self, prefix: str = "spinesense", max_payload_bytes: int = 65536,
                 clock: Any = time.time):
        self.prefix = prefix
        self.prefix_levels = prefix.count("/") + 1
        self.max_payload_bytes = max_payload_bytes
        self.clock = clock

    def parse_topic(self, topic: str) -> tuple[str, str]:
        """``<prefix>/<device>/<kind>`` → (device, kind)."""
        parts = topic.rsplit("/", 2)
        if len(parts) != 3 or parts[0] != self.prefix:
            raise Rejected(f"topic {topic[:120]!r} is not {self.prefix}/<device>/<kind>")
        device, kind = parts[1], parts[2]
        if kind not in STORED_KINDS:
            raise Rejected(f"topic kind {kind[:40]!r} is not stored")
        if not _ID.fullmatch(device):
            raise Rejected(f"device id {device[:80]!r} in the topic is not 1-64 of "
                           "[A-Za-z0-9_-]")
        return device, kind

    def check(self, topic: str, payload: bytes) -> tuple[str, str, dict[str, Any]]:
        device, kind = self.parse_topic(topic)
        if len(payload) > self.max_payload_bytes:
            raise Rejected(f"payload of {len(payload)} bytes is over the limit of "
                           f"{self.max_payload_bytes}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise Rejected("payload is not valid UTF-8") from None
        try:
            msg = _decoder.decode(text)
        except RecursionError:
            raise Rejected("JSON nested too deeply") from None
        except ValueError as exc:
            if isinstance(exc, Rejected):
                raise
            raise Rejected(f"not JSON ({str(exc)[:80]})") from None
        if type(msg) is not dict:
            raise Rejected(f"payload is a JSON {type(msg).__name__}, not an object")
        self.check_message(kind, device, msg)
        return kind, device, msg

    def check_message(self, kind: str, device: str, msg: dict[str, Any]) -> None:
        v = msg.get("v")
        if v != SCHEMA_VERSION or type(v) is not int:
            raise Rejected(f"schema version {str(v)[:20]!r} is not supported "
                           f"(this collector reads v={SCHEMA_VERSION})")
        dev = msg.get("device")
        if dev != device:
            raise Rejected(f"payload device {str(dev)[:80]!r} does not match the topic's "
                           f"device {device!r}")
        ts = msg.get("ts")
        if type(ts) is not int:
            raise Rejected(f"ts must be integer UTC milliseconds, not {str(ts)[:40]!r}")
        if ts < TS_MIN_MS or ts > self.clock() * 1000 + TS_FUTURE_MS:
            raise Rejected(f"ts {ts} is outside 2000-01-01 .. now+1 day (clock not synced?)")
        seq = msg.get("seq")
        if seq is None and kind != "status":
            raise Rejected("seq is missing")
        if seq is not None and (type(seq) is not int or not 0 <= seq <= SEQ_MAX):
            raise Rejected(f"seq must be a non-negative integer, not {str(seq)[:40]!r}")
        type_ = msg.get("type")
        if type(type_) is not str or not _TYPE.fullmatch(type_):
            raise Rejected(f"type {str(type_)[:40]!r} is not a lower-case name")
        if kind == "metrics" and type_ != "metric":
            raise Rejected(f"type {type_!r} on a metrics topic (expected 'metric')")
        synced = msg.get("synced", False)
        if type(synced) is not bool:
            raise Rejected("synced must be true or false")
        data = msg.get("data")
        if type(data) is not dict:
            raise Rejected("data must be an object")
        if len(data) > MAX_DATA_KEYS:
            raise Rejected(f"data has {len(data)} keys (at most {MAX_DATA_KEYS})")
        metrics = kind == "metrics"
        for key, value in data.items():
            if not _KEY.fullmatch(key) or key in RESERVED_KEYS:
                raise Rejected(f"data key {key[:70]!r} is not an allowed field name")
            tv = type(value)
            if tv is float or tv is int:
                if tv is float and not math.isfinite(value):
                    raise Rejected(f"data.{key} is not finite")
                if metrics and key in METRIC_RANGES:
                    lo, hi = METRIC_RANGES[key]
                elif key in _TIME_KEYS:
                    lo, hi = TS_MIN_MS, self.clock() * 1000 + TS_FUTURE_MS
                else:
                    lo, hi = -MAX_ABS, MAX_ABS
                if not lo <= value <= hi:
                    raise Rejected(f"data.{key}={str(value)[:40]} is outside {lo:g}..{hi:g}")
            elif tv is str:
                if metrics and key != "posture":
                    raise Rejected(f"data.{key} must be a number in a metric")
                if key == "posture" and value not in _POSTURES:
                    raise Rejected(f"data.posture {value[:40]!r} is not one of "
                                   f"{', '.join(POSTURES)}")
                if len(value) > MAX_STRING:
                    raise Rejected(f"data.{key} is a string over {MAX_STRING} characters")
                if key in _TIME_KEYS:
                    raise Rejected(f"data.{key} must be UTC milliseconds")
            elif tv is bool:
                if (metrics and key in METRIC_RANGES) or key in _TIME_KEYS or key == "posture":
                    raise Rejected(f"data.{key} must be a number")
            elif value is not None:
                raise Rejected(f"data.{key} is a {tv.__name__}; only numbers, strings, "
                               "true/false and null are stored")
            elif metrics and key == "posture":
                raise Rejected("data.posture must be a string")
