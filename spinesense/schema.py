"""The wire schema shared by the edge (producer) and the collector (consumer).

Topics: ``<prefix>/<device>/<kind>`` with kind one of events, metrics, status (retained,
with a last will) and cmd (commands to the device). Every message is a JSON object:

    {"v": 1, "device": "alice", "seq": 42, "ts": 1764071234567,
     "type": "slouch_start", "data": {...}}

``v`` is the schema version, ``seq`` a per-device sequence number that increases by one
per message the edge spools (events and metrics share it), ``ts`` the UTC time in
milliseconds. ``data`` holds the record's fields. Times inside ``data`` that name an
instant (``onset``, ``bout_start``, ``bout_end``) are UTC milliseconds as well.
``synced`` is false when the wall clock was not yet synchronised when it was stamped.
``prev`` (added by the edge each time it sends a spooled message) is the next lower seq
the edge still holds, or 0: every seq strictly between ``prev`` and ``seq`` is settled,
that is stored already or dropped by the spool's bound for good. The collector's
``<prefix>/<device>/stored`` mark (retained, ``type: "stored"``, ``seq`` = the highest
seq up to which everything is settled) is how the edge learns what it may delete.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1
KINDS = ("events", "metrics", "status", "cmd", "stored")

POSTURES = ("sitting", "standing", "walking", "lying", "unknown")
# ``end`` (a sensor gap's end) and ``until`` (a snooze's end) added by the edge service
TIME_KEYS = ("onset", "bout_start", "bout_end", "alert_t", "end", "until")

# Numeric fields of a periodic metric summary (type "metric" on .../metrics).
# ``posture`` (the interval's dominant posture) is the one string field.
METRIC_FIELDS = (
    "interval_s",      # seconds of data the summary covers
    "flexion_mean",    # mean signed flexion, degrees (negative: reclined)
    "flexion_max",     # max flexion, degrees
    "lateral_mean",    # mean lateral lean, degrees
    "slouch_s",        # seconds spent in a slouch episode (after the alert)
    "sitting_s", "standing_s", "walking_s", "lying_s", "unknown_s",  # seconds per posture
    "steps",           # steps counted
    "cadence_spm",     # steps per minute while walking (0 when not walking)
    "intensity",       # movement intensity: RMS dynamic acceleration, milli-g
    "bout_s",          # length of the current sedentary bout at the end of the interval
    # health, filled by the edge service
    "sample_rate_hz", "i2c_errors", "gap_s", "saturated", "spool_backlog",
    "unconfirmed",     # sent, but not yet confirmed stored by the collector
)


# -- declared field types (DESIGN B2: one type per field, enforced by the collector) ----
@dataclass(frozen=True)
class FieldType:
    """The type of one data field.

    ``kind``: ``number`` (int or float, stored as a float), ``time`` (integer UTC ms,
    stored as a float), ``bool`` (stored as 1.0/0.0), ``string`` (stored as a string) or
    ``label`` (a string or an integer, stored as a string: a command id, a count some
    records send as a word). ``lo``/``hi`` bound a number; ``choices`` a string.
    """

    kind: str
    lo: float = -1e15
    hi: float = 1e15
    choices: tuple[str, ...] = ()

    @property
    def stored(self) -> str:
        """The InfluxDB field type it is written as: ``float`` or ``string``."""
        return "string" if self.kind in ("string", "label") else "float"


NUMBER = FieldType("number")
TIME = FieldType("time")
BOOL = FieldType("bool")
STRING = FieldType("string")
LABEL = FieldType("label")
POSTURE = FieldType("string", choices=POSTURES)
FEEDBACK_KINDS = ("false_alarm", "missed_slouch", "break")  # DESIGN A4
MAX_STRING = 1024  # characters in any string field
_DAY = 86_400.0


def _span(lo: float, hi: float) -> FieldType:
    return FieldType("number", lo, hi)


# Per event type (.../events, measurement posture_event), each field's type. A field
# the type does not declare must be a number, unless another type of the same topic
# declares it (then that declaration holds): so every field name has exactly one
# InfluxDB type per measurement, whichever device or record type sends it.
_SENSOR = {"chip": STRING, "address": NUMBER}
_MOUNT_EVIDENCE = {"agreement": NUMBER, "n_evidence": NUMBER, "weight": NUMBER}
EVENT_SCHEMA: dict[str, dict[str, FieldType]] = {
    "slouch_start": {"onset": TIME, "threshold_deg": NUMBER},
    "slouch_end": {"onset": TIME, "alert_t": TIME, "duration_s": NUMBER, "peak_deg": NUMBER,
                   "mean_deg": NUMBER, "reason": STRING},
    "sitting_alert": {"bout_start": TIME, "bout_s": NUMBER},
    "sitting_reminder": {"n": NUMBER, "bout_start": TIME, "bout_s": NUMBER},
    "sitting_break": {"bout_start": TIME, "bout_end": TIME, "bout_s": NUMBER},
    "sit_to_stand": {"lift_m": NUMBER, "lean_deg": NUMBER},
    "stand_to_sit": {"lift_m": NUMBER, "lean_deg": NUMBER},
    # a calibration (edge/mount.py): also re-issued when the mount evidence changes it
    "calibrated": {"method": STRING, "forward_method": STRING, "forward_method_note": STRING,
                   "confidence": STRING, "facing": STRING, "mount": STRING,
                   "signed": NUMBER, "evidence": LABEL, "weight": NUMBER, "coherence": NUMBER,
                   **_MOUNT_EVIDENCE,
                   **{f"{v}_{a}": NUMBER for v in ("up", "forward") for a in "xyz"}},
    "calibration_stale": {"angle_deg": NUMBER, "limit_deg": NUMBER, "evidence": LABEL,
                          "reanchored": STRING},
    "sensor_lost": {**_SENSOR, "error": STRING},
    "sensor_back": {**_SENSOR, "down_s": NUMBER},
    "gap": {"start": NUMBER, "end": TIME, "duration_s": NUMBER, "reason": STRING,
            "lost_samples": NUMBER},
    "fifo_overflow": {"chip": STRING, "fifo_capacity_s": NUMBER},
    "snoozed": {"until": TIME, "minutes": NUMBER},
    # being added by other parts of the edge (DESIGN A3, A4): typed but permissive
    "feedback": {"kind": FieldType("string", choices=FEEDBACK_KINDS), "alert_t": TIME,
                 "t": NUMBER, "message": STRING},
    "mount_warning": {"mount": STRING, "message": STRING, "reason": STRING,
                      "method": STRING, "count": NUMBER, "t": NUMBER, **_MOUNT_EVIDENCE},
    "clip_moved": {"shift_deg": NUMBER, "reanchored": STRING, "method": STRING,
                   "message": STRING, "reason": STRING, "count": NUMBER, "t": NUMBER},
    "samples_dropped": {"count": NUMBER, "reason": STRING, "message": STRING,
                        "duration_s": NUMBER, "t": NUMBER},
}
EVENT_TYPES = tuple(EVENT_SCHEMA)
# An event type not declared above is stored under this ``type`` tag, with its own name in
# the string field ``original_type``: the tag's cardinality stays bounded (declared + 1).
OTHER_TYPE = "other"
ORIGINAL_TYPE_FIELD = "original_type"

_METRIC_RANGES: dict[str, tuple[float, float]] = {
    "interval_s": (0.0, _DAY), "flexion_mean": (-180.0, 180.0),
    "flexion_max": (-180.0, 180.0), "lateral_mean": (-180.0, 180.0),
    "slouch_s": (0.0, _DAY), "sitting_s": (0.0, _DAY), "standing_s": (0.0, _DAY),
    "walking_s": (0.0, _DAY), "lying_s": (0.0, _DAY), "unknown_s": (0.0, _DAY),
    "steps": (0.0, 1e7), "cadence_spm": (0.0, 400.0), "intensity": (0.0, 1e6),
    "bout_s": (0.0, 365 * _DAY), "sample_rate_hz": (0.0, 10_000.0),
    "i2c_errors": (0.0, 1e12), "gap_s": (0.0, 1e10), "saturated": (0.0, 1e12),
    "spool_backlog": (0.0, 1e12), "unconfirmed": (0.0, 1e12),
}
assert set(_METRIC_RANGES) == set(METRIC_FIELDS)
# The metric summary (.../metrics, measurement posture): plausible physical ranges (a
# value outside is a bug or a forgery); ``unconfirmed`` is the spool's count of messages
# the broker took but storage has not confirmed yet.
METRIC_SCHEMA: dict[str, dict[str, FieldType]] = {
    "metric": {**{k: _span(lo, hi) for k, (lo, hi) in _METRIC_RANGES.items()},
               "posture": POSTURE},
}

# The status topic (measurement device_status, tag type): the retained status, its last
# will, and command replies (edge/commands.py). ``cmd_ok`` to a ``status`` command
# carries the status fields.
_STATUS_FIELDS: dict[str, FieldType] = {
    "state": STRING, "version": STRING, "sensor": STRING, "chip": STRING,
    "reason": STRING, "rate_hz": NUMBER, "spool_backlog": NUMBER, "unconfirmed": NUMBER,
    "dropped_events": NUMBER, "clock_synced": BOOL, "uptime_s": NUMBER,
    "commands_ok": NUMBER, "commands_refused": NUMBER,
}
_CMD_FIELDS: dict[str, FieldType] = {
    "cmd": STRING, "id": LABEL, "error": STRING, "detail": STRING, "applied": STRING,
    "minutes": NUMBER, "kind": STRING, "alert_t": TIME, "t": NUMBER,
}
STATUS_SCHEMA: dict[str, dict[str, FieldType]] = {
    "status": _STATUS_FIELDS,
    "cmd_ok": {**_STATUS_FIELDS, **_CMD_FIELDS},
    "cmd_error": _CMD_FIELDS,
}
SCHEMAS: dict[str, dict[str, dict[str, FieldType]]] = {
    "events": EVENT_SCHEMA, "metrics": METRIC_SCHEMA, "status": STATUS_SCHEMA}


def _field_table(types: dict[str, dict[str, FieldType]]) -> dict[str, FieldType]:
    """Every field name of one topic kind → its kind (one per name, or a ValueError)."""
    table: dict[str, FieldType] = {}
    for type_, fields in types.items():
        for name, ft in fields.items():
            known = table.setdefault(name, FieldType(ft.kind))
            if known.kind != ft.kind:
                raise ValueError(f"field {name!r} is a {ft.kind} in {type_!r} but a "
                                 f"{known.kind} elsewhere on the same topic")
    return table


# Per topic kind: field name → type, for names of record types that do not declare them
FIELD_TABLES: dict[str, dict[str, FieldType]] = {k: _field_table(v) for k, v in SCHEMAS.items()}


def field_type(kind: str, type_: str, name: str) -> FieldType:
    """The declared type of ``data[name]`` in a ``type_`` record on topic ``kind``:
    the record type's own declaration, else the topic's, else a plain number."""
    declared = SCHEMAS[kind].get(type_)
    if declared is not None and name in declared:
        return declared[name]
    return FIELD_TABLES[kind].get(name, NUMBER)


def stored_type(kind: str, type_: str) -> str:
    """The ``type`` tag a record is stored under: its own if declared, else ``other``."""
    return type_ if type_ in SCHEMAS[kind] else OTHER_TYPE


def topic(prefix: str, device: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}; one of {KINDS}")
    return f"{prefix}/{device}/{kind}"


def make_message(device: str, seq: int, ts_ms: int, type_: str,
                 data: dict[str, Any] | None = None, *, synced: bool = True) -> dict[str, Any]:
    msg: dict[str, Any] = {"v": SCHEMA_VERSION, "device": device, "seq": int(seq),
                           "ts": int(ts_ms), "type": type_, "data": data or {}}
    if not synced:
        msg["synced"] = False
    return msg


def encode(msg: dict[str, Any]) -> bytes:
    """Compact JSON; NaN/inf are not JSON, so they are refused here rather than on the wire."""
    return json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    """Plain JSON scalars only: numpy scalars become Python ones, and a non-finite number
    (no data, e.g. the mean of an empty interval) is left out rather than sent as NaN."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return
    data[key] = value


def with_prev(payload: bytes, prev: int) -> bytes:
    """A spooled message as sent: its encoded JSON object with ``prev`` appended."""
    return b"%s,\"prev\":%d}" % (payload[:-1], prev)


def kind_of(type_: str) -> str:
    """The topic kind a pipeline record is published on."""
    return "metrics" if type_ == "metric" else "events"


def record_to_message(record: dict[str, Any], device: str, seq: int,
                      to_ms: Any, *, synced: bool = True) -> dict[str, Any]:
    """Turn a pipeline record ({"type", "t", ...fields}, times in pipeline seconds) into a
    wire message; ``to_ms`` maps a pipeline time to UTC milliseconds."""
    fields = dict(record)
    type_ = fields.pop("type")
    t = fields.pop("t")
    data: dict[str, Any] = {}
    for key, value in fields.items():
        if key in TIME_KEYS and value is not None:
            data[key] = int(to_ms(value))
        elif isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) == 1:
            # vectors (a calibration's up/forward axes) travel as flat scalar fields,
            # because an InfluxDB field holds one value: up → up_x, up_y, up_z
            names = "xyz" if len(value) == 3 else [str(i) for i in range(len(value))]
            for n, v in zip(names, value, strict=True):
                _put(data, f"{key}_{n}", v)
        elif isinstance(value, dict):
            data[key] = json.dumps(value, separators=(",", ":"), sort_keys=True, default=float)
        else:
            _put(data, key, value)
    return make_message(device, seq, int(to_ms(t)), type_, data, synced=synced)
