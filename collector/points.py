"""Wire messages → InfluxDB line protocol (interface 6), millisecond precision.

Point identity is deterministic (DESIGN B3): measurement + tags (``device``, and ``type``
for events and status) + the message's own ``ts``. A redelivered message therefore
produces the same series key and timestamp and overwrites its earlier copy instead of
adding a duplicate. A cmd_error reply and a status of the same millisecond differ in their
``type`` tag, so they are two points. Every field is written with the one InfluxDB type
its name has in the wire schema (spinesense.schema): numbers, times and booleans always as
floats, strings and labels as strings; ``seq`` is the one integer field. So no device can
give a field a type that would make InfluxDB refuse another device's points.

The text is what influxdb-client's ``Point.to_line_protocol()`` writes for the same point
(a property test checks it), and what influxd 1.x reads back unchanged (a round-trip test):
string values escape only ``\\`` and ``"``, since influxd keeps newlines, tabs and other
control characters inside a quoted string as they are. Keys and tag values cannot hold
control characters or backslashes in a way that round-trips, so they are refused.

This is the collector's per-message hot path: it avoids per-character loops and only
escapes when a name actually contains a special character. The collector's own counters
(`Stats`) live here too, next to the line they are written as (``spinesense_collector``).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from spinesense.schema import FIELD_TABLES, ORIGINAL_TYPE_FIELD, stored_type

MEASUREMENTS = {"metrics": "posture", "events": "posture_event", "status": "device_status"}
SELF_MEASUREMENT = "spinesense_collector"
TYPED_KINDS = ("events", "status")  # the topics whose records carry a ``type`` tag

_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"'})
_KEY_SPECIAL = frozenset(",= ")
_STR_SPECIAL = frozenset('\\"')
_KEY_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")
# per topic kind, the fields declared as labels (an integer is written as its text)
_LABELS = {kind: frozenset(n for n, ft in table.items() if ft.kind == "label")
           for kind, table in FIELD_TABLES.items()}


def escape_key(s: str) -> str:
    """Escape a tag key, tag value or field key (comma, equals sign and space).
    Raises ValueError for what line protocol cannot carry: empty, control characters,
    backslashes."""
    if s.isidentifier() and s.isascii():  # the common case: nothing to check or escape
        return s
    if not s or _KEY_UNSAFE.search(s):
        raise ValueError(f"name {s[:60]!r} is empty or holds a control character or a "
                         "backslash; line protocol cannot store it unchanged")
    return s.translate(_KEY_ESC) if not _KEY_SPECIAL.isdisjoint(s) else s


def escape_string(s: str) -> str:
    """Escape a string field value (without its surrounding quotes)."""
    return s.translate(_STR_ESC) if not _STR_SPECIAL.isdisjoint(s) else s


def format_float(value: float) -> str:
    """A finite float as line protocol writes it (``3`` for 3.0, ``0.5``, ``1e+16``)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not finite; InfluxDB stores only finite numbers")
    s = repr(value)
    return s[:-2] if s.endswith(".0") else s


def format_field(key: str, value: Any, label: bool = False) -> str | None:
    """``key=value`` for one field: numbers (and bools) as floats, strings quoted, None
    skipped (returns None). ``label``: an integer is written as a string. Non-finite
    numbers and other types raise ValueError."""
    if value is None:
        return None
    name = escape_key(key)
    if isinstance(value, str):
        return f'{name}="{escape_string(value)}"'
    if label and isinstance(value, int) and not isinstance(value, bool):
        return f'{name}="{value}"'
    if isinstance(value, (int, float)):  # bool is an int: stored as 1.0 / 0.0
        try:
            return f"{name}={format_float(float(value))}"
        except (ValueError, OverflowError):
            raise ValueError(f"field {key!r} is {value!r}; InfluxDB stores only finite "
                             "numbers") from None
    raise ValueError(f"field {key!r} has type {type(value).__name__}; "
                     "expected a number, a string or null")


def format_line(measurement: str, tags: dict[str, str], fields: list[str], ts: int) -> str:
    """One line from already formatted fields; tags are written in the order given."""
    head = measurement + "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in tags.items())
    return f"{head} {','.join(fields)} {ts}"


def message_to_line(topic_kind: str, msg: dict[str, Any]) -> str:
    """One validated wire message (see spinesense.schema) as one line of line protocol.

    ``topic_kind`` is the topic's last level: ``metrics`` → measurement ``posture``
    (tag device), ``events`` → ``posture_event`` and ``status`` → ``device_status``
    (tags device, type; an undeclared type is stored as ``other`` with its name in the
    field ``original_type``). Fields: the data values, plus ``seq`` as an integer when
    present and ``synced`` (0.0/1.0) when the message carries it; the timestamp is
    ``msg["ts"]`` in ms. Raises ValueError (naming the problem) for a message that cannot
    be a point.
    """
    measurement = MEASUREMENTS.get(topic_kind)
    if measurement is None:
        raise ValueError(f"topic kind {topic_kind!r} is not stored; one of "
                         f"{', '.join(MEASUREMENTS)}")
    device = msg["device"]
    if not device or not isinstance(device, str):
        raise ValueError("device must be a non-empty string")
    head = f"{measurement},device={escape_key(device)}"
    fields: list[str] = []
    if topic_kind in TYPED_KINDS:
        type_ = msg["type"]
        if not type_ or not isinstance(type_, str):
            raise ValueError("a record's type must be a non-empty string")
        tag = stored_type(topic_kind, type_)
        head = f"{head},type={escape_key(tag)}"
        if tag != type_:
            fields.append(f'{ORIGINAL_TYPE_FIELD}="{escape_string(type_)}"')
    labels = _LABELS.get(topic_kind, frozenset())
    data = msg.get("data") or {}
    for key, value in data.items():
        part = format_field(key, value, key in labels)
        if part is not None:
            fields.append(part)
    seq = msg.get("seq")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError(f"seq must be an integer, not {seq!r}")
        fields.append(f"seq={seq}i")
    if "synced" in msg:
        fields.append(f"synced={format_float(float(bool(msg['synced'])))}")
    if not fields:
        raise ValueError("the message has no fields to store")
    ts = msg["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError(f"ts must be integer UTC milliseconds, not {ts!r}")
    return f"{head} {','.join(fields)} {ts}"


def stats_to_line(instance: str, stats: dict[str, float], ts_ms: int) -> str:
    """The collector's self-metrics as a ``spinesense_collector`` point (tag instance)."""
    fields = [f"{escape_key(k)}={format_float(float(v))}" for k, v in stats.items()]
    return format_line(SELF_MEASUREMENT, {"instance": instance}, fields, ts_ms)


@dataclass
class Stats:
    """Counters since start (cumulative) plus gauges; written as spinesense_collector."""

    msgs_in: int = 0
    points_written: int = 0
    rejected: int = 0
    retries: int = 0
    batches: int = 0
    latency_sum_ms: float = 0.0
    latency_n: int = 0
    started: float = field(default_factory=time.monotonic)

    def snapshot(self, backlog: int, rate: float) -> dict[str, float]:
        mean = self.latency_sum_ms / self.latency_n if self.latency_n else 0.0
        self.latency_sum_ms, self.latency_n = 0.0, 0
        return {"msgs_in": self.msgs_in, "points_written": self.points_written,
                "rejected": self.rejected, "retries": self.retries,
                "batch_latency_ms": round(mean, 3), "backlog": backlog,
                "batches": self.batches, "msgs_per_s": round(rate, 1)}
