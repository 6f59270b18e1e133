"""Wire messages → InfluxDB line protocol (interface 6), millisecond precision.

Point identity is deterministic (DESIGN B3): measurement + tags (``device``, and ``type``
for events) + the message's own ``ts``. A redelivered message therefore produces the same
series key and timestamp and overwrites its earlier copy instead of adding a duplicate.
Numbers are always written as floats (never ints) so that a field never changes type
between messages, which InfluxDB would refuse as a field type conflict; ``seq`` is the
one integer field.

This is the collector's per-message hot path: it avoids per-character loops and only
escapes when a name actually contains a special character.
"""

from __future__ import annotations

import math
from typing import Any

MEASUREMENTS = {"metrics": "posture", "events": "posture_event", "status": "device_status"}
SELF_MEASUREMENT = "spinesense_collector"

# Tag keys/values and field keys: comma, equals and space are escaped. A newline would end
# the line, so it becomes a literal backslash-n.
_KEY_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": r"\n", "\r": r"\r"})
_KEY_SPECIAL = frozenset(",= \n\r")
_STR_SPECIAL = frozenset('\\"\n\r')


def escape_key(s: str) -> str:
    """Escape a tag key, tag value or field key."""
    return s.translate(_KEY_ESC) if not _KEY_SPECIAL.isdisjoint(s) else s


def escape_measurement(s: str) -> str:
    return s.translate(_MEAS_ESC) if not _KEY_SPECIAL.isdisjoint(s) else s


def escape_string(s: str) -> str:
    """Escape a string field value (without its surrounding quotes)."""
    return s.translate(_STR_ESC) if not _STR_SPECIAL.isdisjoint(s) else s


def format_field(key: str, value: Any) -> str | None:
    """``key=value`` for one field: numbers (and bools) as floats, strings quoted, None
    skipped (returns None). Non-finite numbers and other types raise ValueError."""
    if value is None:
        return None
    if isinstance(value, str):
        return f'{escape_key(key)}="{escape_string(value)}"'
    if isinstance(value, (int, float)):  # bool is an int: stored as 1.0 / 0.0
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"field {key!r} is {value!r}; InfluxDB stores only finite numbers")
        return f"{escape_key(key)}={f!r}"
    raise ValueError(f"field {key!r} has type {type(value).__name__}; "
                     "expected a number, a string or null")


def message_to_line(topic_kind: str, msg: dict[str, Any]) -> str:
    """One wire message (see spinesense.schema) as one line of line protocol.

    ``topic_kind`` is the topic's last level: ``metrics`` → measurement ``posture``
    (tag device), ``events`` → ``posture_event`` (tags device, type), ``status`` →
    ``device_status`` (tag device). Fields: the data values (numbers as floats, strings
    as strings), plus ``seq`` as an integer when present and ``synced`` (false/true as
    0.0/1.0) when the message carries it. The timestamp is ``msg["ts"]`` in ms.
    Raises ValueError (naming the problem) for a message that cannot be a point.
    """
    measurement = MEASUREMENTS.get(topic_kind)
    if measurement is None:
        raise ValueError(f"topic kind {topic_kind!r} is not stored; one of "
                         f"{', '.join(MEASUREMENTS)}")
    device = msg["device"]
    if not device or not isinstance(device, str):
        raise ValueError("device must be a non-empty string")
    head = f"{measurement},device={escape_key(device)}"
    if topic_kind == "events":
        type_ = msg["type"]
        if not type_ or not isinstance(type_, str):
            raise ValueError("an event's type must be a non-empty string")
        head = f"{head},type={escape_key(type_)}"
    fields: list[str] = []
    data = msg.get("data") or {}
    for key, value in data.items():
        part = format_field(key, value)
        if part is not None:
            fields.append(part)
    seq = msg.get("seq")
    if seq is not None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError(f"seq must be an integer, not {seq!r}")
        fields.append(f"seq={seq}i")
    if "synced" in msg:
        fields.append(f"synced={float(bool(msg['synced']))!r}")
    if not fields:
        raise ValueError("the message has no fields to store")
    ts = msg["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise ValueError(f"ts must be integer UTC milliseconds, not {ts!r}")
    return f"{head} {','.join(fields)} {ts}"


def stats_to_line(instance: str, stats: dict[str, float], ts_ms: int) -> str:
    """The collector's self-metrics as a ``spinesense_collector`` point (tag instance)."""
    fields = ",".join(f"{escape_key(k)}={float(v)!r}" for k, v in stats.items())
    return f"{SELF_MEASUREMENT},instance={escape_key(instance)} {fields} {ts_ms}"
