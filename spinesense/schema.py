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
"""

from __future__ import annotations

import json
import math
from typing import Any

SCHEMA_VERSION = 1
KINDS = ("events", "metrics", "status", "cmd")

# Event types the edge sends on .../events (DESIGN A2 plus the sensor's own).
EVENT_TYPES = (
    "slouch_start", "slouch_end", "sitting_alert", "sitting_reminder", "sitting_break",
    "sit_to_stand", "stand_to_sit", "calibrated", "calibration_stale",
    "sensor_lost", "sensor_back", "gap", "fifo_overflow", "snoozed", "samples_dropped",
)

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
)
POSTURES = ("sitting", "standing", "walking", "lying", "unknown")
# ``end`` (a sensor gap's end) and ``until`` (a snooze's end) added by the edge service
TIME_KEYS = ("onset", "bout_start", "bout_end", "alert_t", "end", "until")


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
