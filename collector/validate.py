"""Validation of incoming wire messages: everything a device sends is untrusted.

``Validator.check(topic, payload)`` returns ``(kind, device, message)`` for a message
that may be stored, or raises ``Rejected(reason)`` with a short, loggable reason. It checks
size, UTF-8, JSON (no NaN/Infinity, bounded nesting), the schema version, that every data
field has the type the wire schema declares for it (spinesense.schema: per record type,
one InfluxDB type per field name and measurement), ranges, that strings are valid Unicode
(no lone surrogates, which JSON's ``\\ud800`` escape can smuggle in), and that the device
named in the payload is the device in the topic (so a wearer cannot write into another
wearer's history even if the broker's ACL were open).
Kept flat and allocation-light: it runs once per message on the collector's hot path.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any

from spinesense.schema import (
    FIELD_TABLES,
    MAX_STRING,
    NUMBER,
    ORIGINAL_TYPE_FIELD,
    SCHEMA_VERSION,
    SCHEMAS,
    FieldType,
)

STORED_KINDS = ("events", "metrics", "status")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = frozenset({"seq", "synced", "time", "device", "type", ORIGINAL_TYPE_FIELD})
MAX_DATA_KEYS = 64
TS_MIN_MS = 946_684_800_000   # 2000-01-01: earlier means an unsynchronised clock
TS_FUTURE_MS = 86_400_000     # a day ahead at most
SEQ_MAX = 2**63 - 1
_EMPTY: dict[str, FieldType] = {}


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
        declared = SCHEMAS[kind].get(type_, _EMPTY)
        table = FIELD_TABLES[kind]
        for key, value in data.items():
            if not _KEY.fullmatch(key) or key in RESERVED_KEYS:
                raise Rejected(f"data key {key[:70]!r} is not an allowed field name")
            ft = declared.get(key) or table.get(key) or NUMBER
            self._check_value(key, value, ft)

    def _check_value(self, key: str, value: Any, ft: FieldType) -> None:
        """``value`` has the declared type ``ft`` (null: not stored, allowed unless the
        field has a fixed set of values)."""
        kind, tv = ft.kind, type(value)
        if value is None:
            if ft.choices:
                raise Rejected(f"data.{key} must be one of {', '.join(ft.choices)}")
            return
        if kind == "string" or (kind == "label" and tv is str):
            if tv is not str:
                raise Rejected(f"data.{key} must be a string, not {_json_kind(value)}")
            if len(value) > MAX_STRING:
                raise Rejected(f"data.{key} is a string over {MAX_STRING} characters")
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise Rejected(f"data.{key} holds a lone surrogate (not a Unicode "
                                   "character)") from None
            if ft.choices and value not in ft.choices:
                raise Rejected(f"data.{key} {value[:40]!r} is not one of "
                               f"{', '.join(ft.choices)}")
        elif kind == "bool":
            if tv is not bool:
                raise Rejected(f"data.{key} must be true or false, not {_json_kind(value)}")
        elif tv is not int and tv is not float:  # number, time, or a label's integer
            raise Rejected(f"data.{key} must be a number, not {_json_kind(value)}")
        elif kind == "label":
            if tv is not int:
                raise Rejected(f"data.{key} must be a string or an integer")
        else:
            if tv is float and not math.isfinite(value):
                raise Rejected(f"data.{key} is not finite")
            if kind == "time":
                lo, hi = TS_MIN_MS, self.clock() * 1000 + TS_FUTURE_MS
            else:
                lo, hi = ft.lo, ft.hi
            if not lo <= value <= hi:
                raise Rejected(f"data.{key}={str(value)[:40]} is outside {lo:g}..{hi:g}")


def _json_kind(value: Any) -> str:
    """What a JSON value is, in the words of a JSON user."""
    if value is True or value is False:
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "an array"}.get(type(value), type(value).__name__)
